"""Property-based hostile input (hypothesis): pagination, mission bounds, the credential gate.

* Pagination: any text for ``limit`` and ``offset`` on every list endpoint of the
  OpenAPI document answers 200 or 422, never 5xx; a 200 stays within the bounds
  (F9), and plain integers get exactly the answer the bounds say.
* Mission bounds (F17): any JSON value for any bound answers 201 or 422, and a
  422 names the offending bound; numbers get exactly the answer the ceilings say.
* Credential gate (F14): random text with secrets planted in it (corpus examples
  whose secret part is re-randomised, so not a fixed list) never keeps a secret;
  redaction is idempotent; the same holds through the API's memory store.

The application runs in-process (in an anyio blocking portal, an event loop in a
thread) on one database for the module; every example is a real HTTP request
through the whole middleware stack.
"""

from __future__ import annotations

import json
import math
import random
import re
import string
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.core.pagination import MAX_LIMIT, MAX_OFFSET
from app.core.settings import Settings
from app.main import create_app
from app.security.credential_gate import CredentialKind, redact, scan
from app.security.principal import Scope
from tests.support.server import bearer, create_tokens

CORPUS = Path(__file__).resolve().parents[1] / "corpora" / "credentials"
PROPERTY = settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


class SyncClient:
    """Synchronous HTTP calls into an app running in a portal (hypothesis tests are
    synchronous; the app, its lifespan and its database stay on one event loop)."""

    def __init__(self, portal: BlockingPortal, client: httpx.AsyncClient) -> None:
        self.portal = portal
        self.client = client

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.portal.call(lambda: self.client.get(url, **kwargs))

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.portal.call(lambda: self.client.post(url, **kwargs))


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SyncClient, dict[str, str]]]:
    folder = tmp_path_factory.mktemp("properties")
    token = create_tokens(folder, {"admin": Scope.ADMIN})["admin"]
    app: FastAPI = create_app(
        Settings(
            database_path=folder / "mc.db",
            state_dir=folder / "state",
            rate_limit_per_client=1e6,
            rate_limit_burst_per_client=10**6,
            rate_limit_per_credential=1e6,
            rate_limit_burst_per_credential=10**6,
        )
    )
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    with (
        start_blocking_portal() as portal,
        portal.wrap_async_context_manager(app.router.lifespan_context(app)),
    ):
        http = httpx.AsyncClient(
            transport=transport, base_url="http://testserver", headers=bearer(token)
        )
        client = SyncClient(portal, http)
        agent = client.post("/api/agents", json={"name": "prop-agent", "role": "r", "model": "m"})
        assert agent.status_code == 201, agent.text
        try:
            yield client, {"agent_id": str(agent.json()["id"])}
        finally:
            portal.call(http.aclose)


def assert_clean_error(response: Any) -> dict[str, Any]:
    body: dict[str, Any] = response.json()
    assert set(body) == {"error"}, body
    assert "Traceback" not in response.text and "sqlite3" not in response.text
    return body


# ----------------------------------------------------------------------- pagination


def _list_paths() -> list[str]:
    nowhere = Path("/nonexistent/mission-control")
    spec = create_app(Settings(database_path=nowhere / "db", state_dir=nowhere)).openapi()
    paths = []
    for path, operations in spec["paths"].items():
        get = operations.get("get")
        names = {p["name"] for p in (get or {}).get("parameters", [])}
        if {"limit", "offset"} <= names:
            paths.append(path)
    return sorted(paths)


LIST_PATHS = _list_paths()

_numberish = st.one_of(
    st.integers(-(10**30), 10**30).map(str),
    st.integers(-5, MAX_LIMIT + 5).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(
        ["", " ", " 7", "7 ", "+7", "0x10", "1e3", "1_0", "٣", "NaN", "-0", "00050", "50\x00"]
    ),
    st.text(max_size=24),
)


def _canonical_int(text: str) -> int | None:
    return (
        int(text)
        if text.lstrip("-").isdigit() and text.isascii() and text == text.strip()
        else None
    )


@PROPERTY
@given(path=st.sampled_from(LIST_PATHS), limit=_numberish, offset=_numberish)
def test_pagination_answers_200_or_422(
    api: tuple[SyncClient, dict[str, str]], path: str, limit: str, offset: str
) -> None:
    client, seeded = api
    url = path.replace("{agent_id}", seeded["agent_id"])
    url = re.sub(r"\{[a-z_]+_id\}", "1", url)  # every other id: 1 (404 when absent)
    response = client.get(url, params={"limit": limit, "offset": offset})
    assert response.status_code in (200, 404, 422), (url, limit, offset, response.text)
    if response.status_code == 200:
        body = response.json()
        assert 1 <= body["limit"] <= MAX_LIMIT and 0 <= body["offset"] <= MAX_OFFSET
        assert len(body["items"]) <= body["limit"]
    else:
        assert_clean_error(response)
    parsed_limit, parsed_offset = _canonical_int(limit), _canonical_int(offset)
    if parsed_limit is not None and parsed_offset is not None and response.status_code != 404:
        in_bounds = 1 <= parsed_limit <= MAX_LIMIT and 0 <= parsed_offset <= MAX_OFFSET
        assert (response.status_code == 200) == in_bounds, (limit, offset, response.text)
        if in_bounds:
            assert response.json()["limit"] == parsed_limit
        else:
            assert assert_clean_error(response)["error"]["code"] == "validation_failed"


def test_every_list_endpoint_is_covered() -> None:
    assert len(LIST_PATHS) >= 12
    assert "/api/tasks" in LIST_PATHS and "/api/audit" in LIST_PATHS


# ----------------------------------------------------------------------- mission bounds

CEILINGS = {"cost_usd": 10.0, "steps": 10, "step_minutes": 15, "tokens": 500_000}

_json_value = st.one_of(
    st.integers(-(10**25), 10**25),
    st.integers(-3, 600_000),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=0, max_value=20),
    st.booleans(),
    st.none(),
    st.text(max_size=10),
    st.lists(st.integers(), max_size=2),
    st.just({"nested": 1}),
)


def _valid(name: str, value: Any) -> bool | None:
    """Whether a plain number is within its bound; None for other JSON types."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return False
    if name == "cost_usd":
        return 0 < value <= CEILINGS["cost_usd"]
    if isinstance(value, float):
        return None  # an integral float for an integer bound: the parser's choice
    return 1 <= value <= CEILINGS[name]


@PROPERTY
@given(bounds=st.dictionaries(st.sampled_from(sorted(CEILINGS)), _json_value, max_size=4))
def test_mission_bounds_answer_201_or_a_422_naming_the_bound(
    api: tuple[SyncClient, dict[str, str]], bounds: dict[str, Any]
) -> None:
    client, seeded = api
    proposal = {
        "title": "bounded",
        "goal": "stay within the bounds",
        "steps": [{"title": "one", "agent_id": int(seeded["agent_id"])}],
        "bounds": bounds,
    }
    # allow_nan: NaN and Infinity travel as the (non-standard) JSON literals
    content = json.dumps(proposal, allow_nan=True)
    response = client.post(
        "/api/missions", content=content, headers={"content-type": "application/json"}
    )
    assert response.status_code in (201, 422), (bounds, response.text)
    verdicts = {name: _valid(name, value) for name, value in bounds.items()}
    if response.status_code == 201:
        stored = response.json()["bounds"]
        for name, ceiling in CEILINGS.items():
            assert 0 < stored[name] <= ceiling
            if verdicts.get(name):
                assert stored[name] == bounds[name]
        assert False not in verdicts.values(), (bounds, stored)
        return
    error = assert_clean_error(response)["error"]
    details = error["details"] or []
    if error["code"] == "validation_failed":
        named = {str(d["loc"][2]) for d in details if d["loc"][:2] == ["body", "bounds"]}
    else:
        assert error["code"] == "proposal_refused", error
        named = {str(d.get("bound")) for d in details}
    assert named, error
    assert named <= set(bounds), (named, bounds)
    assert not any(verdicts[name] for name in named), (named, bounds)
    if all(v is not None for v in verdicts.values()):
        assert False in verdicts.values(), (bounds, error)


# ----------------------------------------------------------------------- credential gate


def _corpus_examples() -> list[tuple[str, str, str, CredentialKind]]:
    """(text before, secret, text after, kind) for every corpus example."""
    examples = []
    for kind in CredentialKind:
        raw = (CORPUS / f"{kind.value}.txt").read_text(encoding="utf-8")
        chunks = (
            raw.rstrip("\n").split("\n%%\n")
            if "\n%%\n" in raw
            else [ln for ln in raw.splitlines() if ln.strip() and not ln.startswith("#")]
        )
        for chunk in chunks:
            if chunk.count("«") != 1:
                continue
            before, rest = chunk.split("«", 1)
            secret, after = rest.split("»", 1)
            examples.append((before, secret, after, kind))
    return examples


EXAMPLES = _corpus_examples()


def rerandomise(secret: str, seed: int) -> str:
    """The secret with the characters of its second half replaced by random ones of
    the same class, keeping its alphabet (hex stays hex, base32 stays base32): the
    same format, a value never seen."""
    rng = random.Random(seed)
    keep = max(8, len(secret) // 2)
    uppers = set(string.ascii_uppercase) & set(secret)
    lowers = set(string.ascii_lowercase) & set(secret)
    upper_pool = "ABCDEF" if uppers <= set("ABCDEF") else string.ascii_uppercase
    lower_pool = "abcdef" if lowers <= set("abcdef") else string.ascii_lowercase
    digit_pool = "234567"  # digits of base32, decimal and hex alike
    out = list(secret)
    for index in range(keep, len(secret)):
        char = secret[index]
        if char in string.ascii_uppercase:
            out[index] = rng.choice(upper_pool)
        elif char in string.ascii_lowercase:
            out[index] = rng.choice(lower_pool)
        elif char in string.digits:
            out[index] = rng.choice(digit_pool)
    return "".join(out)


_noise = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=80
) | st.sampled_from(["", "see below", "config:", "# TODO rotate", "[REDACTED:password]"])


@st.composite
def planted(draw: st.DrawFn) -> tuple[str, list[str]]:
    """Random text with one to three secrets planted on lines of their own."""
    lines: list[str] = []
    secrets: list[str] = []
    for _ in range(draw(st.integers(1, 3))):
        before, secret, after, _kind = draw(st.sampled_from(EXAMPLES))
        # a Basic credential is base64 of "user:password": random characters would not
        # be one (the gate decodes it), so it is planted as it is
        basic = "basic" in before[-8:].lower()
        fresh = secret if basic else rerandomise(secret, draw(st.integers(0, 2**32)))
        lines.append(draw(_noise))
        lines.append(before + fresh + after)
        secrets.append(fresh)
    lines.append(draw(_noise))
    return "\n".join(lines), secrets


def test_the_corpus_gives_examples_of_every_kind() -> None:
    assert {kind for *_, kind in EXAMPLES} == set(CredentialKind)


@settings(PROPERTY, max_examples=300)
@given(case=planted())
def test_planted_secrets_are_always_redacted(case: tuple[str, list[str]]) -> None:
    text, secrets = case
    once = redact(text)
    for secret in secrets:
        assert secret not in once.text, (secret, once.text)
    assert scan(once.text) == []
    assert redact(once.text).text == once.text  # idempotent


@settings(PROPERTY, max_examples=300)
@given(text=st.text(max_size=400))
def test_redaction_of_random_text_is_idempotent(text: str) -> None:
    once = redact(text).text
    assert redact(once).text == once


@settings(PROPERTY, max_examples=40)
@given(case=planted())
def test_the_memory_store_never_keeps_a_planted_secret(
    api: tuple[SyncClient, dict[str, str]], case: tuple[str, list[str]]
) -> None:
    client, seeded = api
    text, secrets = case
    response = client.post(
        f"/api/agents/{seeded['agent_id']}/memory", json={"content": text[:20_000]}
    )
    assert response.status_code in (201, 422), response.text
    if response.status_code == 201:
        stored = response.json()["content"]
        for secret in secrets:
            assert secret not in stored
        assert response.json()["redacted"] is True
