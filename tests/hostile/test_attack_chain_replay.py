"""The audit's attack chain replayed from every principal below a second human.

The chain (docs/security-model.md; /work/shared/threat-model.md): **mute** the
owner (silence security notifications), **rewrite** a shell agent's identity and
**plant** words in its memory, **plant a rule** that pipes work to it, and **run
a shell** on it. Each step is tried against a real ``missionctl serve`` from:

* an ``operate`` token;
* an ``operate`` browser session (the session cookie and CSRF token the web UI's
  script sends);
* an agent run with a shell, inside the real per-run sandbox (Landlock and the
  unix-socket filter, ``app/runner/sandbox*.py``): it tries the API's unix socket
  (a second ``serve --uds`` on the same database) and TCP, and to read the
  database and the secrets for a credential;
* a lone ``admin`` token (one stolen credential).

Every step must be refused or held for a second human, and every attempt must
leave a security notification row (for requests without a credential, the
aggregated one of the F40 design: one per client and window, with one counted
audit row per route). Nothing may change. The test names
(``test_chain_replay_*``) are what the notifier's end-to-end check reuses to
see the same rows reach the owner's channel.

Where the product does not (yet) refuse or hold a step, the case is an
``xfail(strict=True)`` naming the gap, so it turns into a failure the day the
control lands and the mark must go.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.core.settings import Settings
from app.profiles.profiles import Limits
from app.runner.process import run_confined
from app.runner.sandbox import RunRights, default_policy, landlock_status
from app.security.principal import Scope
from tests.support.chain import STEPS, request_for
from tests.support.cli import missionctl
from tests.support.server import REPO, RealServer, bearer, create_tokens

PASSWORD = "correct horse battery staple"
LANDLOCK = landlock_status()

#: steps a principal can still take, with the reason (xfail strict: the mark must go
#: when the control lands); none left: each step is refused or held
GAPS: dict[tuple[str, str], str] = {}


@dataclass
class Chain:
    server: RealServer
    tokens: dict[str, str]
    ids: dict[str, int]
    uds: Path

    def security_rows(self) -> list[sqlite3.Row]:
        conn = sqlite3.connect(f"file:{self.server.db_path}?mode=ro", uri=True, timeout=10)
        conn.row_factory = sqlite3.Row
        try:
            return conn.execute(
                "SELECT id, title, body FROM notifications WHERE category = 'security' ORDER BY id"
            ).fetchall()
        finally:
            conn.close()

    def value(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        conn = sqlite3.connect(f"file:{self.server.db_path}?mode=ro", uri=True, timeout=10)
        try:
            row = conn.execute(sql, params).fetchone()
            return None if row is None else row[0]
        finally:
            conn.close()


def wait_for(predicate: Any, deadline_s: float = 10.0) -> Any:
    deadline = time.monotonic() + deadline_s
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def start_uds_server(server: RealServer, uds: Path) -> subprocess.Popen[bytes]:
    """A second ``serve`` on the same database, on a unix socket (as on the Pi)."""
    with (server.folder / "uds-server.log").open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--uds", str(uds)],
            env=server.env(),
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    transport = httpx.HTTPTransport(uds=str(uds))
    with httpx.Client(transport=transport, base_url="http://mc") as client:

        def ready() -> bool:
            try:
                return client.get("/healthz", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        assert wait_for(ready, 30), (server.folder / "uds-server.log").read_text()[-3000:]
    return process


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    folder = tmp_path_factory.mktemp("chain")
    tokens = create_tokens(folder, {"operate": Scope.OPERATE, "admin": Scope.ADMIN})
    made = missionctl(
        folder, "user", "create", "bob", "--role", "operate", "--password-stdin",
        stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    server = RealServer(folder, {"MC_REFUSED_ANONYMOUS_WINDOW_S": "2"})
    server.start()
    uds = folder / "run-mission-control" / "api.sock"
    uds.parent.mkdir(mode=0o750)
    second = start_uds_server(server, uds)
    try:
        ids: dict[str, int] = {}
        with httpx.Client(base_url=server.base, timeout=10) as http:
            for name, shell in (("chad", False), ("shelly", True)):
                created = http.post(
                    "/api/agents",
                    json={
                        "name": name,
                        "role": "ops",
                        "model": "claude-sonnet",
                        "identity": "You are careful.",
                        "shell_access": shell,
                        "allowed_tools": ["shell"] if shell else [],
                    },
                    headers=bearer(tokens["admin"]),
                )
                assert created.status_code == 201, created.text
                ids[name] = created.json()["id"]
        yield Chain(server, tokens, ids, uds)
    finally:
        second.terminate()
        second.wait(timeout=15)
        server.stop()


def targets(chain: Chain) -> tuple[Any, ...]:
    """What the chain aims at: policies, the shell agent's identity and memory, live
    rules, shell tasks for it (compared before and after each attempt)."""
    shell = chain.ids["shelly"]
    return (
        chain.value("SELECT count(*) FROM policies"),
        chain.value("SELECT identity_version FROM agents WHERE id = ?", (shell,)),
        chain.value("SELECT count(*) FROM agent_memory WHERE agent_id = ?", (shell,)),
        chain.value("SELECT count(*) FROM rules WHERE enabled = 1"),
        chain.value(
            "SELECT count(*) FROM tasks WHERE agent_id = ? AND needs_shell = 1"
            " AND approval != 'pending'",
            (shell,),
        ),
        chain.value("SELECT count(*) FROM conversations WHERE agent_id = ?", (shell,)),
    )


def replay(chain: Chain, principal: str, step: str, send: Any) -> None:
    """One step from one principal: refused (or held), and a new security row."""
    before, untouched = len(chain.security_rows()), targets(chain)
    method, path, body = request_for(step, chain.ids)
    response = send(method, path, body)
    if step == "rule" and response.status_code == 201:
        held = response.json()  # a rule reaching a shell agent waits for a second human
        assert held["enabled"] is False and held["approval"] == "pending", held
    elif step == "shell" and response.status_code == 201:
        held = response.json()  # a shell no person decided waits for a person
        assert held["approval"] == "pending" and held["active_conversation_id"] is None, held
    else:
        assert response.status_code in (401, 403, 422), (principal, step, response.text)
    assert targets(chain) == untouched, (principal, step, "changed")
    rows = wait_for(lambda: chain.security_rows()[before:])
    assert rows, (principal, step, "no security notification")


def params(principal: str) -> list[Any]:
    return [
        pytest.param(
            step,
            marks=pytest.mark.xfail(strict=True, reason=GAPS[(principal, step)])
            if (principal, step) in GAPS
            else (),
            id=step,
        )
        for step in STEPS
    ]


@pytest.mark.parametrize("step", params("operate"))
def test_chain_replay_operate_token(chain: Chain, step: str) -> None:
    headers = bearer(chain.tokens["operate"])
    with httpx.Client(base_url=chain.server.base, timeout=10) as http:
        replay(
            chain,
            "operate",
            step,
            lambda method, path, body: http.request(method, path, json=body, headers=headers),
        )


@pytest.mark.parametrize("step", params("operate"))
def test_chain_replay_operate_browser_session(chain: Chain, step: str) -> None:
    with httpx.Client(base_url=chain.server.base, timeout=10) as http:
        login = http.post("/api/auth/login", json={"username": "bob", "password": PASSWORD})
        assert login.status_code == 200, login.text
        csrf = {"X-CSRF-Token": login.json()["csrf_token"]}
        replay(
            chain,
            "operate",
            step,
            lambda method, path, body: http.request(method, path, json=body, headers=csrf),
        )


@pytest.mark.parametrize("step", params("admin"))
def test_chain_replay_lone_admin_token(chain: Chain, step: str) -> None:
    headers = bearer(chain.tokens["admin"])
    with httpx.Client(base_url=chain.server.base, timeout=10) as http:
        replay(
            chain,
            "admin",
            step,
            lambda method, path, body: http.request(method, path, json=body, headers=headers),
        )
        if step == "rule":  # held: and the same credential cannot release it
            rule_id = chain.value("SELECT max(id) FROM rules")
            version = chain.value("SELECT version FROM rules WHERE id = ?", (rule_id,))
            own = http.post(
                f"/api/rules/{rule_id}/approve", json={"version": version}, headers=headers
            )
            assert own.status_code == 403, own.text
        if step == "shell":  # held: and the same credential cannot release it
            task_id = chain.value("SELECT max(id) FROM tasks")
            own = http.post(f"/api/tasks/{task_id}/approve", json={"version": 1}, headers=headers)
            assert own.status_code == 403, own.text
            assert chain.value("SELECT approval FROM tasks WHERE id = ?", (task_id,)) == "pending"


#: the agent's program: every step over the unix socket and over TCP, and a look
#: for a credential in the database and the secrets
AGENT = r"""
import errno, http.client, json, os, socket, sys

cfg = json.loads(sys.argv[1])
out = {"uds": {}, "tcp": {}, "read": {}}

def err(exc):
    return errno.errorcode.get(exc.errno, str(exc.errno))

for name, path in cfg["read"].items():
    try:
        with open(path, "rb") as handle:
            handle.read(16)
        out["read"][name] = "ok"
    except OSError as exc:
        out["read"][name] = err(exc)

for step, (method, path, body) in cfg["steps"].items():
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(cfg["uds"])
        sock.close()
        out["uds"][step] = "connected"
    except OSError as exc:
        out["uds"][step] = err(exc)
    conn = http.client.HTTPConnection("127.0.0.1", cfg["port"], timeout=10)
    conn.request(method, path, body=json.dumps(body),
                 headers={"Content-Type": "application/json"})
    out["tcp"][step] = conn.getresponse().status
    conn.close()
print(json.dumps(out))
"""


@pytest.mark.skipif(LANDLOCK.abi < 1, reason=f"no Landlock here: {LANDLOCK.reason}")
def test_chain_replay_agent_run_with_a_shell(chain: Chain) -> None:
    """An agent run with a shell (rights of a shell task) inside the real sandbox:
    the unix socket cannot even be opened, TCP without a credential is refused
    (anonymous: one notification per client and window, a counted audit row per
    route), and no credential can be read from the database or the secrets."""
    server = chain.server
    settings = Settings(**{"database_path": server.db_path, "state_dir": server.folder / "state"})
    base = server.folder / "state" / "agent-run"
    workspace = base / "workspace"
    workspace.mkdir(parents=True, exist_ok=True)
    script = workspace / "agent.py"
    script.write_text(AGENT)
    policy = default_policy(
        database_path=server.db_path.absolute(),
        state_dir=settings.state_dir.absolute(),
        secrets_dir=settings.secrets_dir.absolute(),
        backups_dir=settings.backups_path.absolute(),
    )
    secret = next(p for p in settings.secrets_dir.iterdir() if p.is_file())
    config = {
        "uds": str(chain.uds),
        "port": server.port,
        "steps": {step: request_for(step, chain.ids) for step in STEPS},
        "read": {"database": str(server.db_path), "secret": str(secret)},
    }
    before, untouched = len(chain.security_rows()), targets(chain)
    run = asyncio.run(
        run_confined(
            [sys.executable, "-I", str(script), json.dumps(config)],
            stdin_data=b"",
            env={},
            cwd=workspace,
            limits=Limits(
                cpu_seconds=30, address_space_mb=1024, open_files=64, wall_clock_seconds=60
            ),
            sandbox=policy,
            tmp_root=base,
            rights=RunRights(shell=True, write=True),
        )
    )
    assert run.started and run.sandboxed and run.exit_code == 0, (run.reason, run.stderr[-2000:])
    seen = json.loads(run.stdout)
    assert seen["uds"] == dict.fromkeys(STEPS, "EACCES"), seen
    assert seen["tcp"] == dict.fromkeys(STEPS, 401), seen
    assert seen["read"] == {"database": "EACCES", "secret": "EACCES"}, seen

    def refused_routes() -> set[str]:
        conn = sqlite3.connect(f"file:{server.db_path}?mode=ro", uri=True, timeout=10)
        try:
            rows = conn.execute(
                "SELECT action FROM audit_log WHERE actor = 'anonymous' AND outcome = 'refused'"
            ).fetchall()
        finally:
            conn.close()
        return {str(row[0]) for row in rows}

    routes = {
        "PUT /api/policies/notifications",
        "PUT /api/agents/{agent_id}/identity",
        "POST /api/agents/{agent_id}/memory",
        "POST /api/rules",
        "POST /api/tasks",
    }
    assert wait_for(lambda: routes <= refused_routes(), 30), refused_routes()
    rows = chain.security_rows()[before:]
    assert rows, "no security notification for the agent's attempts"
    assert targets(chain) == untouched
    assert os.path.exists(chain.uds)  # the socket was there all along
