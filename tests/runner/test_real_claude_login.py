"""The real Claude Code CLI on a subscription login (app/profiles/login.py): the
login file of a root-owned login directory, linked read-only into the run's HOME,
authenticates its model calls, under the real worker and Landlock, against the
scripted Messages API on loopback (tests/support/model_server.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.runner.test_real_claude_code import MODEL, claude_profile, pytestmark
from tests.runner.test_runner_login import ACCESS, REFRESH, make_login
from tests.support.model_server import ModelServer, text
from tests.support.worker import Rows, make_settings, running_worker, write_profiles

pytestmark = [
    *pytestmark,
    pytest.mark.skipif(os.geteuid() != 0, reason="a login directory must be owned by root"),
]


async def test_claude_code_runs_on_its_login_and_never_shows_the_token(tmp_path: Path) -> None:
    login = make_login(tmp_path)
    credentials = login / ".claude" / ".credentials.json"
    before = credentials.read_bytes()
    settings = make_settings(tmp_path, runner_sandbox="required")
    rows = Rows(settings.database_path)
    with ModelServer([text(f"the token was {ACCESS}")]) as server:
        spec = claude_profile(tmp_path, server, login_dir=str(login))
        # no API key: the endpoint and the switch that keeps the CLI to it only
        env_file = Path(spec["credential_file"])
        env_file.write_text(
            f"ANTHROPIC_BASE_URL={server.base_url}\nCLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1\n"
        )
        spec["env_allow"] = ["ANTHROPIC_BASE_URL", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"]
        write_profiles(tmp_path, {"claude": spec})
        agent = rows.agent(profile="claude", model=MODEL, tools=("read_files",))
        _, conversation = rows.task(agent, "Say it", "Please answer.")
        async with running_worker(settings) as worker:
            assert worker.sandbox is not None and worker.sandbox.enforced
            outcome = await worker.run_once()
    assert outcome is not None and outcome.status == "SUCCEEDED", outcome
    calls = server.messages()
    assert calls and all(seen.auth == f"bearer:{ACCESS}" for seen in calls), [
        s.auth[:20] for s in calls
    ]
    assert credentials.read_bytes() == before
    assert conversation is not None
    row = rows.conversation(conversation)
    assert "the token was [REDACTED:profile_credential]" in row["transcript"]
    stored = json.dumps([dict(r) for r in rows.all("SELECT * FROM conversations")])
    stored += json.dumps([dict(r) for r in rows.events()])
    assert ACCESS not in stored and REFRESH not in stored
