"""Check 3: from the internet only WireGuard's UDP port is open (all TCP ports and
the common UDP ports scanned, services planted on the Pi), and a handshake
with an unknown key gets no answer."""

from __future__ import annotations

from tests.support.e2e import Testbed
from tests.support.e2e_checks import check_outside


def test_outside_sees_only_wireguard(each_pi: Testbed) -> None:
    print(f"{each_pi.host} ({each_pi.suite}): " + check_outside(each_pi))
