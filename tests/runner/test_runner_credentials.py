"""An agent that prints credentials. Redaction of agent output is the credential
gate's job (app/security/credential_gate/, another engineer); these tests pin
what the runner itself guarantees without depending on it:

* only the profile's own provider key reaches the agent, from the credential file;
  the worker's secrets (MC_*) and anything else in its environment never do;
* nothing the runner returns shows the key in ``repr``/``str`` (so logging a
  result or an environment cannot leak it);
* the exact key values are exposed to the worker (``ChildEnv.secret_values``) so
  the gate can redact them from the output before it is stored.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from app.profiles.environment import build_child_env
from app.profiles.profiles import Profile
from app.runner.process import run_confined
from tests.support.processes import fast_limits

PROVIDER_KEY = "sk-ant-api03-" + "k" * 40
WORKER_SECRET = "mc-server-signing-secret-0123456789"

PRINTER = """
import os
for name in ("ANTHROPIC_API_KEY", "MC_SECRET_KEY", "OPENAI_API_KEY"):
    print(f"{name}={os.environ.get(name, '<absent>')}")
try:
    print("environ of pid 1 readable:", bool(open("/proc/1/environ", "rb").read()))
except OSError:
    print("environ of pid 1 readable: False")
"""


def test_agent_printing_credentials(fake_agent, workspace, tmp_path, monkeypatch):
    monkeypatch.setenv("MC_SECRET_KEY", WORKER_SECRET)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-from-worker-env")
    credentials = tmp_path / "creds"
    credentials.mkdir(mode=0o700)
    credential_file = credentials / "anthropic.env"
    credential_file.write_text(f"ANTHROPIC_API_KEY={PROVIDER_KEY}\n")
    credential_file.chmod(0o600)
    profile = Profile(
        argv=["/bin/agent"],
        env_allow=["ANTHROPIC_API_KEY", "OPENAI_API_KEY"],
        credential_file=credential_file,
    )
    env = build_child_env(profile, require_root_owned=True)
    run = asyncio.run(
        run_confined(
            fake_agent("printer", PRINTER),
            stdin_data=b"",
            env=env,
            cwd=workspace,
            limits=fast_limits(),
        )
    )
    text = run.stdout.decode()
    # the runner does not redact: the gate does, with the exact values it is given
    assert f"ANTHROPIC_API_KEY={PROVIDER_KEY}" in text
    assert PROVIDER_KEY in env.secret_values
    # the worker's own secrets never reach the agent (F24)
    assert "MC_SECRET_KEY=<absent>" in text
    assert "OPENAI_API_KEY=<absent>" in text  # allow-listed, but not in the credential file
    assert WORKER_SECRET not in text
    # nothing printable by the runner shows the key
    for shown in (repr(run), str(run), repr(env), str(env)):
        assert PROVIDER_KEY not in shown


def test_credential_values_never_appear_in_results_of_failed_reads(tmp_path: Path):
    folder = tmp_path / "c"
    folder.mkdir(mode=0o700)
    path = folder / "bad.env"
    path.write_text(f"{PROVIDER_KEY}\n")
    path.chmod(0o644)  # world-readable: refused before parsing
    profile = Profile(argv=["/bin/agent"], env_allow=["ANTHROPIC_API_KEY"], credential_file=path)
    try:
        build_child_env(profile, require_root_owned=True)
    except Exception as exc:
        assert PROVIDER_KEY not in str(exc)
        assert "mode 0644" in str(exc)
    else:
        raise AssertionError("a world-readable credential file was accepted")
