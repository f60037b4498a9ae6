"""API fuzzing with schemathesis against the application's own OpenAPI document.

The document is the one ``GET /api/openapi.json`` serves (a test proves it), built
in-process from the real application; requests go through the ASGI app in-process,
on a database seeded with one row of each kind so small ids hit real rows.

Two modes, each one pytest test per operation (the SSE stream is left out: it
streams forever):

* **admin**: with an admin token. No 5xx, every response matches its documented
  schema and content type, every error has the one error shape, a status from the
  known set, and no body carries a stack trace or internal text (SQLite messages,
  file paths) that the request did not contain itself.
* **anonymous**: no credential, well-formed requests (schemathesis' positive mode).
  Every operation not on ``PUBLIC_ROUTES`` answers 401 ``unauthenticated``; the
  public ones never answer 5xx. (Malformed requests are refused *before* the
  credential check by design or by FastAPI: a declared body over the limit is a
  413 at the edge, a body that is not JSON at all a 400 ``invalid_json``; see
  ``tests/hostile/test_hostile_http.py``.)

Bounded and reproducible: a fixed seed, derandomized generation, at most
``ADMIN_EXAMPLES`` / ``ANON_EXAMPLES`` generated cases per operation (plus, in
admin mode, schemathesis' coverage phase: boundary values of every parameter).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import os
import re
import shutil
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from fastapi import FastAPI
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi as schemathesis_asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
)

from app.auth import service
from app.core.settings import Settings
from app.main import PUBLIC_ROUTES, create_app
from app.security.principal import Scope
from tests.support.owners import owner_id
from tests.support.vpn import make_state, running_helper

STREAM_PATH = "/api/events/stream"
ADMIN_EXAMPLES = 20
ANON_EXAMPLES = 4
SEED = 20260808

#: statuses an error may have (the documented ones are checked by schemathesis)
KNOWN_ERROR_STATUSES = frozenset({400, 401, 403, 404, 405, 409, 413, 415, 422, 429})
#: text that would betray internals; a body may only contain it if the request did
INTERNAL_MARKERS = (
    "Traceback",
    'File "',
    "sqlite3",
    "OperationalError",
    "IntegrityError",
    "OverflowError",
    "site-packages",
    "/app/",
    ".py",
    "aiosqlite",
    "pydantic_core",
    "NoneType",
)


def _spec() -> dict[str, Any]:
    """The application's OpenAPI document; building it touches no database."""
    nowhere = Path("/nonexistent/mission-control")
    application = create_app(Settings(database_path=nowhere / "mc.db", state_dir=nowhere))
    return application.openapi()


SPEC = _spec()


def _config(examples: int, *, coverage: bool, mode: str) -> schemathesis.Config:
    return schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "suppress-health-check": ["all"],
            "generation": {
                "mode": mode,
                "max-examples": examples,
                "deterministic": True,
                "database": "none",
            },
            "phases": {
                "examples": {"enabled": False},
                "coverage": {"enabled": coverage},
                "fuzzing": {"enabled": True},
                "stateful": {"enabled": False},
            },
        }
    )


admin_schema = schemathesis.openapi.from_dict(
    copy.deepcopy(SPEC), config=_config(ADMIN_EXAMPLES, coverage=True, mode="all")
).exclude(path=STREAM_PATH)
anon_schema = schemathesis.openapi.from_dict(
    copy.deepcopy(SPEC), config=_config(ANON_EXAMPLES, coverage=False, mode="positive")
).exclude(path=STREAM_PATH)

#: (mode, "METHOD /path") -> requests sent; (mode, status) -> responses
SENT: Counter[tuple[str, str]] = Counter()
STATUSES: Counter[tuple[str, int]] = Counter()


@dataclass
class FuzzTarget:
    app: FastAPI
    token: str
    seeded: dict[str, int]
    #: the real VPN helper is running (else the VPN routes rightly answer 503)
    vpn_helper: bool

    @property
    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def _seed(app: FastAPI) -> tuple[str, dict[str, int]]:
    """An admin token and one row of each kind, through the API itself."""
    async with app.router.lifespan_context(app):
        ctx = app.state.context
        created = await service.create_token(
            ctx.db,
            ctx.server_key,
            name="fuzz-admin",
            scope=Scope.ADMIN,
            expires_days=None,
            actor="test",
            client="test",
            owner_user_id=await owner_id(ctx.db),
        )
        headers = {"Authorization": f"Bearer {created.token}"}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://seed", headers=headers
        ) as http:

            async def post(path: str, body: dict[str, Any]) -> int:
                response = await http.post(path, json=body)
                assert response.status_code in (200, 201), response.text
                return int(response.json()["id"])

            agent = await post("/api/agents", {"name": "fuzz-agent", "role": "r", "model": "m"})
            project = await post("/api/projects", {"name": "fuzz-project"})
            document = await post(
                f"/api/projects/{project}/documents", {"title": "readme", "body": "hello"}
            )
            rule = await post(
                "/api/rules",
                {
                    "name": "fuzz-rule",
                    "on": "task.created",
                    "then": [
                        {
                            "type": "notify",
                            "category": "task",
                            "severity": "info",
                            "title": "task {subject_id}",
                            "body": "created",
                        }
                    ],
                },
            )
            task = await post("/api/tasks", {"title": "fuzz task", "agent_id": agent})
            mission = await post(
                "/api/missions",
                {"title": "m", "goal": "g", "steps": [{"title": "s", "agent_id": agent}]},
            )
            memory = await post(f"/api/agents/{agent}/memory", {"content": "remember"})
    seeded = {
        "agent": agent,
        "project": project,
        "document": document,
        "rule": rule,
        "task": task,
        "mission": mission,
        "memory": memory,
    }
    return created.token, seeded


def _vpn_helper(stack: contextlib.ExitStack, folder: Path) -> Path:
    """The real VPN root helper (scripts/mc-vpn-helper with the real mc-vpn on a
    private state) where this machine can run it (root, wireguard-tools, as CI);
    elsewhere its socket stays absent and the VPN routes answer 503."""
    socket_path = folder / "vpn-helper.sock"
    if os.geteuid() == 0 and shutil.which("wg") and shutil.which("wg-quick"):
        stack.enter_context(running_helper(make_state(folder / "vpn"), socket_path))
    return socket_path


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzTarget]:
    folder = tmp_path_factory.mktemp("fuzz")
    stack = contextlib.ExitStack()
    helper_socket = _vpn_helper(stack, folder)
    settings = Settings(
        vpn_helper_socket=helper_socket,
        database_path=folder / "mc.db",
        state_dir=folder / "state",
        rate_limit_per_client=1e6,
        rate_limit_burst_per_client=10**6,
        rate_limit_per_credential=1e6,
        rate_limit_burst_per_credential=10**6,
        login_rate_per_minute=10**6,
        ticket_rate_per_minute=10**6,
    )
    app = create_app(settings)
    token, seeded = asyncio.run(_seed(app))
    try:
        yield FuzzTarget(app, token, seeded, helper_socket.exists())
    finally:
        # schemathesis ran the app's lifespan in its own event-loop thread: end it
        schemathesis_asgi.shutdown_lifespans()
        stack.close()
        for mode in ("admin", "anonymous"):
            sent = sum(n for (m, _), n in SENT.items() if m == mode)
            operations = len({op for m, op in SENT if m == mode})
            statuses = sorted((s, n) for (m, s), n in STATUSES.items() if m == mode)
            print(f"\nfuzz {mode}: {sent} requests over {operations} operations; {statuses}")


def _request_text(case: schemathesis.Case) -> str:
    parts = [case.formatted_path, json.dumps(case.query, default=str)]
    parts.append(json.dumps(case.body, default=str) if not isinstance(case.body, bytes) else "")
    parts.append(json.dumps(dict(case.headers or {}), default=str))
    return " ".join(parts)


def assert_no_internal_text(case: schemathesis.Case, text: str) -> None:
    sent = _request_text(case)
    for marker in INTERNAL_MARKERS:
        if marker in text:
            assert marker in sent, f"{marker!r} in the answer to {case.operation.label}: {text}"
    # an absolute path that the request did not send
    for path in re.findall(r"/(?:home|usr|tmp|work|var|etc|root)/[\w./-]+", text):
        assert path in sent, f"a file path in the answer to {case.operation.label}: {path}"


def header(response: schemathesis.Response, name: str) -> str:
    """One header of a schemathesis response (its headers map names to lists)."""
    for key, values in response.headers.items():
        if key.lower() == name:
            return values[0] if isinstance(values, list) else str(values)
    return ""


def assert_error_shape(response: schemathesis.Response, label: str) -> None:
    assert response.status_code in KNOWN_ERROR_STATUSES, (label, response.status_code)
    assert header(response, "content-type").startswith("application/json"), label
    body = response.json()
    assert set(body) == {"error"}, (label, body)
    assert set(body["error"]) == {"code", "message", "details"}, (label, body)
    assert isinstance(body["error"]["code"], str) and body["error"]["code"]
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]


@admin_schema.parametrize()
def test_fuzz_with_an_admin_token(case: schemathesis.Case, target: FuzzTarget) -> None:
    response = case.call(app=target.app, headers=target.admin)
    SENT["admin", case.operation.label] += 1
    STATUSES["admin", response.status_code] += 1
    helper_down = (
        not target.vpn_helper
        and response.status_code == 503
        and response.json()["error"]["code"] == "vpn_helper_unavailable"
    )
    checks = [response_schema_conformance, content_type_conformance]
    case.validate_response(
        response,
        checks=checks if helper_down else [not_a_server_error, *checks],
        headers=target.admin,
    )
    assert_no_internal_text(case, response.text)
    if response.status_code >= 400 and not helper_down:
        assert_error_shape(response, case.operation.label)


@anon_schema.parametrize()
def test_fuzz_without_credentials(case: schemathesis.Case, target: FuzzTarget) -> None:
    response = case.call(app=target.app)
    SENT["anonymous", case.operation.label] += 1
    STATUSES["anonymous", response.status_code] += 1
    assert_no_internal_text(case, response.text)
    if (case.method.upper(), case.path) in PUBLIC_ROUTES:
        assert response.status_code < 500, response.text
        if response.status_code >= 400:
            assert_error_shape(response, case.operation.label)
        return
    assert response.status_code == 401, (case.operation.label, response.status_code, response.text)
    assert_error_shape(response, case.operation.label)
    assert response.json()["error"]["code"] == "unauthenticated"
    assert header(response, "www-authenticate") == "Bearer"


def test_the_fuzzed_document_is_the_served_one(target: FuzzTarget) -> None:
    """What was fuzzed is exactly what ``/api/openapi.json`` gives a credential holder;
    without one it gives nothing."""

    # through schemathesis' own ASGI client: the same running application and lifespan
    with schemathesis_asgi.get_client(target.app) as client:
        served = client.get("/api/openapi.json", headers=target.admin)
        anonymous = client.get("/api/openapi.json")
    assert served.status_code == 200
    assert served.json() == SPEC
    assert anonymous.status_code == 401
    operations = {(m.upper(), p) for p, ops in SPEC["paths"].items() for m in ops}
    assert len(operations) >= 70
    assert ("GET", STREAM_PATH) in operations  # the one operation not fuzzed


def test_every_operation_was_fuzzed_in_both_modes() -> None:
    """Runs after the fuzz tests of this module (skipped when they were deselected)."""
    if not SENT:
        pytest.skip("the fuzz tests did not run in this session")
    operations = {
        f"{m.upper()} {p}" for p, ops in SPEC["paths"].items() for m in ops if p != STREAM_PATH
    }
    for mode in ("admin", "anonymous"):
        fuzzed = {op for m, op in SENT if m == mode}
        if fuzzed:
            assert fuzzed == operations, (mode, sorted(operations - fuzzed))
    admin_total = sum(n for (m, _), n in SENT.items() if m == "admin")
    if admin_total:
        assert admin_total >= 5 * len(operations)
