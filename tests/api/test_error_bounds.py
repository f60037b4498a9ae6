"""Bounded error bodies: too many keys refused before validation, 422s capped.

A 0.98 MB body of 90,000 unknown keys used to get an 8.4 MB 422 (one detail
per key) and hold the event loop for most of a second, with or without a
credential. Now the edge counts the keys while the body is still bytes
(``app/core/jsonlimits.py``) and validation answers are capped
(``app/core/errors.py``).
"""

from __future__ import annotations

import json

import httpx
import pytest

from app.core import errors as core_errors
from app.core.jsonlimits import MAX_JSON_KEYS, count_keys, too_many_keys
from tests.support.api import assert_error_shape

JSON = {"Content-Type": "application/json"}


def unknown_keys(n: int) -> bytes:
    return json.dumps({f"k{i:05d}": 1 for i in range(n)}, separators=(",", ":")).encode()


def test_keys_inside_strings_are_not_keys() -> None:
    body = json.dumps({"a": 'x": 1, "y": "z', "b": ["c:", 'd\\":'], "e": {"f": 1}}).encode()
    assert count_keys(body, 100) == 4
    assert count_keys(b'{"a\\"": {"b": {"c": 1}}}', 100) == 3
    assert not too_many_keys(body, limit=4)
    assert too_many_keys(body, limit=3)


def test_few_colons_skip_the_count() -> None:
    assert not too_many_keys(b'{"a": 1}' + b" " * 100_000)
    assert too_many_keys(unknown_keys(MAX_JSON_KEYS + 1))
    assert not too_many_keys(unknown_keys(MAX_JSON_KEYS))


@pytest.mark.parametrize("n", [90_000, MAX_JSON_KEYS + 1])
async def test_too_many_keys_refused_without_credentials(client: httpx.AsyncClient, n: int) -> None:
    body = unknown_keys(n)
    response = await client.post("/api/auth/login", content=body, headers=JSON)
    assert_error_shape(response, 400, "too_many_keys")
    assert str(MAX_JSON_KEYS) in response.json()["error"]["message"]
    assert len(response.content) < 1024


async def test_too_many_keys_refused_for_an_admin(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    body = unknown_keys(90_000)
    assert len(body) < 1024 * 1024
    response = await client.post("/api/users", content=body, headers={**admin_headers, **JSON})
    assert_error_shape(response, 400, "too_many_keys")
    assert len(response.content) < 1024


async def test_validation_answer_is_capped(client: httpx.AsyncClient) -> None:
    # Just under the key limit: validation runs and reports a bounded subset.
    body = unknown_keys(MAX_JSON_KEYS)
    response = await client.post("/api/auth/login", content=body, headers=JSON)
    assert_error_shape(response, 422, "validation_failed")
    error = response.json()["error"]
    assert 0 < len(error["details"]) <= core_errors.MAX_ERROR_DETAILS
    assert len(response.content) <= core_errors.MAX_ERROR_BODY_BYTES
    assert "problems" in error["message"]


async def test_long_locations_are_cut(client: httpx.AsyncClient) -> None:
    body = json.dumps({"k" * 5000 + str(i): 1 for i in range(30)}).encode()
    response = await client.post("/api/auth/login", content=body, headers=JSON)
    assert_error_shape(response, 422, "validation_failed")
    assert len(response.content) <= core_errors.MAX_ERROR_BODY_BYTES
    for detail in response.json()["error"]["details"]:
        assert all(len(part) <= core_errors.MAX_TEXT_CHARS for part in detail["loc"])
