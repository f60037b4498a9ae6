"""The credential gate around a run (F14) and the clean child environment (F24)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support.cli import cli_env
from tests.support.worker import (
    REPO,
    Rows,
    make_settings,
    running_worker,
    script_profile,
    write_agent,
    write_profiles,
)

GITHUB = "ghp_0b2C6UXQx4skJiPGgOBGwXGSYZ5XDnWTroPa"
AWS_ID = "AKIAMHO73MIV2H4VYWF6"
AWS_SECRET = "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"
ANTHROPIC = (
    "sk-ant-api03-62FGHiEZ1yZZkcRwzkkKLYmmd9p2-aN1OFk5x3rSFtH-kymZEQZvuP4gBewqyIbpgPUbZMl4m5V"
    "-l4KFy1FPZVHvjVMl9AA"
)
DB_URL = "postgres://app_user:ENW0QQgDUmkOoY@db.internal.example:5432/missions"
LEAKS = (
    f"GITHUB_TOKEN={GITHUB}\n"
    f"aws_access_key_id = {AWS_ID}\naws_secret_access_key = {AWS_SECRET}\n"
    f"ANTHROPIC_API_KEY={ANTHROPIC}\nDATABASE_URL={DB_URL}\n"
)
SECRETS = (GITHUB, AWS_ID, AWS_SECRET, ANTHROPIC, "ENW0QQgDUmkOoY")


def assert_clean(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text
    assert "[REDACTED:" in text


async def run_one(tmp_path: Path, body: str, **profile_limits: object) -> dict[str, object]:
    script = write_agent(tmp_path, "agent", body)
    write_profiles(tmp_path, {"fake": script_profile(script, **profile_limits)})
    settings = make_settings(tmp_path)
    rows = Rows(settings.database_path)
    agent = rows.agent(profile="fake")
    _, conversation = rows.task(agent)
    async with running_worker(settings) as worker:
        outcome = await worker.run_once()
    assert outcome is not None
    assert conversation is not None
    return dict(rows.conversation(conversation))


async def test_credentials_in_the_reply_are_not_stored(tmp_path: Path) -> None:
    row = await run_one(tmp_path, f"emit({LEAKS!r})")
    assert row["status"] == "SUCCEEDED"
    assert_clean(str(row["transcript"]))
    assert "[REDACTED:github_token]" in str(row["transcript"])


async def test_credentials_in_unparsable_output_and_stderr_are_not_stored(tmp_path: Path) -> None:
    body = f"""
    import sys
    sys.stdout.write("not json at all\\n" + {LEAKS!r})
    sys.stderr.write("debug: " + {LEAKS!r})
    sys.exit(2)
    """
    row = await run_one(tmp_path, body)
    assert row["status"] == "FAILED" and row["exit_code"] == 2
    transcript = str(row["transcript"])
    assert "[agent output, first" in transcript and "[agent stderr, last" in transcript
    assert "not json at all" in transcript and "debug:" in transcript
    assert_clean(transcript)


async def test_credentials_in_the_agent_reported_error_reason_are_not_stored(
    tmp_path: Path,
) -> None:
    body = f"""
    import json, sys
    print(json.dumps({{"type": "result", "subtype": {GITHUB!r}, "is_error": True}}))
    """
    row = await run_one(tmp_path, body)
    assert row["status"] == "FAILED"
    assert GITHUB not in str(row["reason"]) and GITHUB not in str(row["transcript"])


async def test_a_truncated_flood_of_credentials_is_redacted(tmp_path: Path) -> None:
    body = f"""
    import sys
    for _ in range(2000):
        sys.stdout.write({LEAKS!r})
    sys.stdout.flush()
    """
    row = await run_one(tmp_path, body, stdout_cap_bytes=50_000)
    assert row["truncated"] == 1
    assert_clean(str(row["transcript"]))


async def test_the_prompt_handed_to_the_agent_is_gated(tmp_path: Path) -> None:
    """Secrets planted straight into the stores (bypassing their own gate) never reach
    the agent: it saves its stdin, which the worker's output redaction cannot touch."""
    seen = tmp_path / "stdin.txt"
    script = write_agent(
        tmp_path,
        "saver",
        f"""
        import sys
        open({str(seen)!r}, "w").write(sys.stdin.read())
        emit("saved")
        """,
    )
    write_profiles(tmp_path, {"saver": script_profile(script)})
    settings = make_settings(tmp_path)
    rows = Rows(settings.database_path)
    agent = rows.agent(profile="saver", identity=f"You deploy with {GITHUB}")
    rows.memory(agent, f"the aws pair: aws_access_key_id = {AWS_ID}")
    project = rows.project(documents=(("env", f"DATABASE_URL={DB_URL}"),))
    # a memory entry longer than its bound, with a key across the cut
    rows.memory(agent, "x" * 1970 + f" ANTHROPIC_API_KEY={ANTHROPIC}")
    # pre-flight refuses a task whose text holds a credential: a row written around it
    # (an older one, or a path pre-flight missed) must still not reach the agent
    rows.raw_task_row(
        agent, f"use {GITHUB}", f"aws_secret_access_key = {AWS_SECRET}", project_id=project
    )
    async with running_worker(settings) as worker:
        outcome = await worker.run_once()
    assert outcome is not None and outcome.status == "SUCCEEDED"
    prompt = seen.read_text()
    assert_clean(prompt)
    assert ANTHROPIC[:11] not in prompt  # not even the part of the key before the cut
    assert "You deploy with [REDACTED:github_token]" in prompt
    alerts = rows.all("SELECT title FROM notifications WHERE category = 'security' ORDER BY id")
    assert [a[0] for a in alerts] == ["Credential kept out of an agent prompt"]
    audit = rows.value(
        "SELECT summary FROM audit_log WHERE action = 'conversation.finished' ORDER BY id DESC"
    )
    assert "github_token" in json.loads(audit)["prompt_redacted"]


async def test_profile_credential_values_are_redacted_from_the_output(tmp_path: Path) -> None:
    """A value from the profile's credential file reaches the agent (it is allowed to)
    but never the stored transcript, whatever its shape."""
    credentials = tmp_path / "creds"
    credentials.mkdir(mode=0o700)
    credential_file = credentials / "service.env"
    credential_file.write_text("SERVICE_TOKEN=plain-looking-value-42\n")
    credential_file.chmod(0o600)
    script = write_agent(
        tmp_path, "echo", 'import os\nemit("token is " + os.environ["SERVICE_TOKEN"])'
    )
    spec = script_profile(script)
    spec["env_allow"] = ["SERVICE_TOKEN"]
    spec["credential_file"] = str(credential_file)
    write_profiles(tmp_path, {"svc": spec})
    settings = make_settings(tmp_path)
    rows = Rows(settings.database_path)
    agent = rows.agent(profile="svc")
    _, conversation = rows.task(agent)
    async with running_worker(settings) as worker:
        outcome = await worker.run_once()
    assert outcome is not None and outcome.status == "SUCCEEDED"
    assert conversation is not None
    transcript = rows.conversation(conversation)["transcript"]
    assert transcript == "token is [REDACTED:profile_credential]"


def test_the_agent_never_sees_the_worker_environment(tmp_path: Path) -> None:
    """A real ``missionctl worker --once`` with secrets in its environment: the agent
    prints its whole environment, which must hold only what the runner sets."""
    script = write_agent(tmp_path, "env", "import json, os\nemit(json.dumps(dict(os.environ)))")
    write_profiles(tmp_path, {"envdump": script_profile(script)})
    rows = Rows(tmp_path / "mc.db")
    agent = rows.agent(profile="envdump")
    _, conversation = rows.task(agent)
    env = cli_env(
        tmp_path,
        MC_PROFILES_PATH=str(tmp_path / "etc" / "profiles.toml"),
        MC_SECRET_KEY="worker-secret-key-0123456789-abcdefghijklmnop",
        ANTHROPIC_API_KEY=ANTHROPIC,
        CANARY_VALUE="canary-8f3a1c",
        MC_RUNNER_SANDBOX="off",  # the fake agent lives in tmp_path (test_sandbox.py)
    )
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "worker", "--once", "--name", "envtest"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"conversation {conversation}: SUCCEEDED" in done.stdout
    assert conversation is not None
    seen = json.loads(rows.conversation(conversation)["transcript"])
    assert sorted(seen) == ["HOME", "LANG", "PATH", "TMPDIR"]
    assert "canary-8f3a1c" not in json.dumps(seen)
    # a fresh home inside the run's private TMPDIR (removed after the run)
    assert seen["HOME"].startswith(str(tmp_path / "state" / "run-tmp"))
    assert seen["HOME"] == os.path.join(seen["TMPDIR"], "home")
