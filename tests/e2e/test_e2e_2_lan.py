"""Check 2: a host on the Pi's LAN that is not a VPN peer reaches the health page
and nothing else (every TCP port scanned, with services planted on the Pi)."""

from __future__ import annotations

from tests.support.e2e import Testbed
from tests.support.e2e_checks import check_lan


def test_lan_sees_only_the_health_page(each_pi: Testbed) -> None:
    print(f"{each_pi.host} ({each_pi.suite}): " + check_lan(each_pi))
