"""Check 1: through the tunnel from the laptop, HTTPS verified against the Pi's
CA, login with the password generated on the Pi, an agent, a demo task run by
the worker, its result, and the run's events on the live feed (one-time ticket)."""

from __future__ import annotations

from tests.support.e2e import Testbed
from tests.support.e2e_checks import check_vpn_user_flow


def test_laptop_uses_the_ui_and_api_through_the_tunnel(each_pi: Testbed) -> None:
    print(f"{each_pi.host} ({each_pi.suite}): " + check_vpn_user_flow(each_pi, "first boot"))
