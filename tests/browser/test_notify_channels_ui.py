"""The notification channels page in Chromium: the channel's name and state
(never its URL) and "Send test", which the API only queues and the real
notifier process sends to a receiver on loopback; the page shows the outcome,
delivered and then refused by the service."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.browser import REPO, Console, Server
from tests.support.cli import cli_env
from tests.support.receiver import SECRET_PATH, Receiver
from tests.support.ui import log_in, shot

UI_WORKER = False
RECEIVER: list[Receiver] = []


def UI_ENV(root: Path) -> dict[str, str]:
    """The server's settings and the notifier's: one receiver, one channel file."""
    path = root / "notify.toml"
    if not RECEIVER:
        RECEIVER.append(Receiver())
        path.write_text(f'[[channel]]\nname = "phone"\nurl = "{RECEIVER[0].url}"\n')
        path.chmod(0o600)
    return {"MC_NOTIFY_CHANNELS_PATH": str(path), "MC_NOTIFY_POLL_S": "0.2"}


@pytest.fixture(scope="module")
def notifier(server: Server) -> Iterator[Receiver]:
    env = cli_env(server.root, **UI_ENV(server.root))
    with (server.root / "logs" / "notifier.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "notify", "run"],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        yield RECEIVER[0]
    finally:
        process.terminate()
        process.wait(timeout=15)
        RECEIVER.pop().stop()


def test_send_test_shows_the_outcome(
    browser: Any, server: Server, console: Console, notifier: Receiver
) -> None:
    page = browser.new_page()
    log_in(page, "alice")
    page.goto("/ui/notifications")
    page.get_by_role("link", name="Channels").click()
    page.wait_for_url("**/ui/notifications/channels")
    row = page.locator("#channel-phone")
    row.wait_for()
    assert "JSON" in row.inner_text() and "working" in row.inner_text()

    row.get_by_role("button", name="Send a test to phone").click()
    page.locator('#channel-phone [data-test-state="delivered"]').wait_for(timeout=20_000)
    assert [r["title"] for r in notifier.received] == ["Mission Control: test notification"]

    notifier.status = 500  # the service refuses the next one
    page.locator("#channel-phone").get_by_role("button", name="Send a test to phone").click()
    page.locator('#channel-phone [data-test-state="failed"]').wait_for(timeout=20_000)
    assert "HTTP 500" in page.locator("#channel-phone").inner_text()
    shot(page, "notify-channels")
    html = page.content()
    assert SECRET_PATH not in html and f":{notifier.port}" not in html
    console.assert_clean()
