"""Health samples (the Health page's charts): the sampler and its request counter, the JSON series
``GET /api/health/samples``, removal of old samples, and the Health page's four
charts under the strict CSP."""

from __future__ import annotations

import asyncio
import re
import xml.etree.ElementTree as ET
from datetime import timedelta
from typing import Any

import httpx
import pytest

from app import main
from app.core.clock import iso, utcnow
from app.core.context import AppContext
from app.core.headers import CONTENT_SECURITY_POLICY
from app.core.middleware import REQUESTS, RequestCounter
from app.health import sampler as sampler_module
from app.health import samples as samples_module
from app.health.sampler import Readings, RequestRate, health_sampler, take_sample
from app.security.principal import Scope
from tests.api.test_ui_pages import parse
from tests.support.api import TokenFactory, assert_error_shape, bearer, login

READINGS = Readings(
    cpu_temperature_c=48.25, memory_used_percent=61.5, disk_used_percent=33.0, load1=0.42
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def add_sample(ctx: AppContext, age: timedelta, **values: Any) -> None:
    row = {
        "sampled_at": iso(utcnow() - age),
        "cpu_temperature_c": 45.0,
        "memory_used_percent": 50.0,
        "disk_used_percent": 20.0,
        "load1": 0.1,
        "requests_per_minute": 3.0,
    }
    row.update(values)
    async with ctx.db.write() as conn:
        await samples_module.insert_sample(conn, samples_module.Sample(**row))


async def stored(ctx: AppContext) -> list[dict[str, Any]]:
    rows = await ctx.db.fetch_all("SELECT * FROM health_samples ORDER BY id")
    return [dict(r) for r in rows]


# --- the sampler -------------------------------------------------------------------------


async def test_a_sample_is_one_row_with_the_readings(ctx: AppContext) -> None:
    clock = Clock()
    counter = RequestCounter()
    rate = RequestRate(counter, clock)
    counter.total += 30
    clock.now += 300  # 30 requests in 5 minutes
    moment = utcnow()
    sample = await take_sample(ctx, rate, readings=READINGS, now=moment)
    rows = await stored(ctx)
    assert len(rows) == 1
    row = rows[0]
    assert row["sampled_at"] == iso(moment) == sample.sampled_at
    assert row["cpu_temperature_c"] == 48.25
    assert row["memory_used_percent"] == 61.5 and row["disk_used_percent"] == 33.0
    assert row["load1"] == 0.42
    assert row["requests_per_minute"] == 6.0


async def test_a_host_without_sensor_stores_null_and_percentages_stay_in_range(
    ctx: AppContext,
) -> None:
    odd = Readings(
        cpu_temperature_c=None, memory_used_percent=100.4, disk_used_percent=-1, load1=None
    )
    await take_sample(ctx, RequestRate(RequestCounter()), readings=odd)
    (row,) = await stored(ctx)
    assert row["cpu_temperature_c"] is None and row["load1"] is None
    assert row["memory_used_percent"] == 100.0 and row["disk_used_percent"] == 0.0


async def test_the_real_host_can_be_read(ctx: AppContext) -> None:
    sample = await take_sample(ctx, RequestRate(RequestCounter()))
    assert 0 <= sample.memory_used_percent <= 100
    assert 0 <= sample.disk_used_percent <= 100
    assert len(await stored(ctx)) == 1


async def test_the_edge_counts_every_request(client: httpx.AsyncClient) -> None:
    before = REQUESTS.total
    await client.get("/healthz")
    await client.get("/api/health")  # refused (401): still a request
    await client.get("/no/such/page")
    assert REQUESTS.total - before == 3


async def test_the_request_counter_feeds_requests_per_minute(
    ctx: AppContext, client: httpx.AsyncClient
) -> None:
    clock = Clock()
    rate = RequestRate(monotonic=clock)  # the edge's own counter
    for _ in range(12):
        assert (await client.get("/healthz")).status_code == 200
    clock.now += 120  # 12 requests in two minutes
    sample = await take_sample(ctx, rate, readings=READINGS)
    assert sample.requests_per_minute == 6.0
    # the next sample counts only what came after this one
    await client.get("/healthz")
    clock.now += 60
    assert (await take_sample(ctx, rate, readings=READINGS)).requests_per_minute == 1.0
    clock.now += 60
    assert (await take_sample(ctx, rate, readings=READINGS)).requests_per_minute == 0.0
    assert [r["requests_per_minute"] for r in await stored(ctx)] == [6.0, 1.0, 0.0]


async def test_the_job_is_registered_and_samples_with_its_interval(
    ctx: AppContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert health_sampler in main.BACKGROUND_JOBS
    monkeypatch.setattr(sampler_module, "FIRST_SAMPLE_AFTER_S", 0.0)
    ctx.settings.health_sample_interval_s = 0.05
    task = asyncio.create_task(health_sampler(ctx))
    try:
        for _ in range(100):
            if len(await stored(ctx)) >= 2:
                break
            await asyncio.sleep(0.05)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    rows = await stored(ctx)
    assert len(rows) >= 2
    assert all(0 <= r["memory_used_percent"] <= 100 for r in rows)


async def test_the_job_survives_a_failed_sample(
    ctx: AppContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sampler_module, "FIRST_SAMPLE_AFTER_S", 0.0)
    ctx.settings.health_sample_interval_s = 0.02
    calls = {"n": 0}

    def flaky(state_dir: str, database_path: str) -> Readings:
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError("sensor gone")
        return READINGS

    monkeypatch.setattr(sampler_module, "read_host", flaky)
    task = asyncio.create_task(health_sampler(ctx))
    try:
        for _ in range(100):
            if await stored(ctx):
                break
            await asyncio.sleep(0.02)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert calls["n"] >= 2 and len(await stored(ctx)) >= 1


# --- old samples are removed -------------------------------------------------------------


async def test_samples_older_than_the_retention_period_are_removed(ctx: AppContext) -> None:
    for days in (30, 8, 7.1):
        await add_sample(ctx, timedelta(days=days))
    await add_sample(ctx, timedelta(days=6.9))
    await add_sample(ctx, timedelta(hours=1))
    # without pruning nothing goes
    await take_sample(ctx, RequestRate(RequestCounter()), readings=READINGS)
    assert len(await stored(ctx)) == 6
    await take_sample(ctx, RequestRate(RequestCounter()), readings=READINGS, prune=True)
    rows = await stored(ctx)
    assert len(rows) == 4
    oldest = min(r["sampled_at"] for r in rows)
    assert oldest > iso(utcnow() - timedelta(days=7))


@pytest.mark.parametrize("settings_overrides", [{"health_sample_retention_days": 2}])
async def test_the_retention_period_comes_from_the_settings(ctx: AppContext) -> None:
    await add_sample(ctx, timedelta(days=3))
    await add_sample(ctx, timedelta(days=1))
    await take_sample(ctx, RequestRate(RequestCounter()), readings=READINGS, prune=True)
    assert len(await stored(ctx)) == 2


async def test_removal_is_bounded_per_statement(ctx: AppContext) -> None:
    for _ in range(5):
        await add_sample(ctx, timedelta(days=10))
    async with ctx.db.write() as conn:
        removed = await samples_module.delete_samples(conn, iso(utcnow()), 3)
    assert removed == 3 and len(await stored(ctx)) == 2


async def test_the_job_prunes_with_its_first_sample(
    ctx: AppContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    await add_sample(ctx, timedelta(days=20))
    monkeypatch.setattr(sampler_module, "FIRST_SAMPLE_AFTER_S", 0.0)
    monkeypatch.setattr(sampler_module, "read_host", lambda *_: READINGS)
    task = asyncio.create_task(health_sampler(ctx))
    try:
        for _ in range(100):
            rows = await stored(ctx)
            if rows and all(r["memory_used_percent"] == 61.5 for r in rows):
                break
            await asyncio.sleep(0.02)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    rows = await stored(ctx)
    assert len(rows) == 1 and rows[0]["memory_used_percent"] == 61.5


# --- GET /api/health/samples -------------------------------------------------------------


async def test_the_series_needs_a_credential(client: httpx.AsyncClient) -> None:
    assert_error_shape(await client.get("/api/health/samples"), 401, "unauthenticated")
    bogus = bearer("mc_aaaaaaaaaa_" + "A" * 43)
    assert_error_shape(await client.get("/api/health/samples", headers=bogus), 401)


async def test_a_read_token_gets_the_window_oldest_first(
    ctx: AppContext, client: httpx.AsyncClient, make_token: TokenFactory
) -> None:
    headers = bearer(await make_token(Scope.READ))
    await add_sample(ctx, timedelta(hours=30), requests_per_minute=1.0)
    await add_sample(ctx, timedelta(hours=2), requests_per_minute=2.0, cpu_temperature_c=None)
    await add_sample(ctx, timedelta(hours=1), requests_per_minute=3.0)
    await add_sample(ctx, -timedelta(hours=1), requests_per_minute=99.0)  # "from the future"
    response = await client.get("/api/health/samples", headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["hours"] == 24 and body["interval_s"] == 300.0
    assert body["count"] == 2 and body["truncated"] is False
    assert [s["requests_per_minute"] for s in body["items"]] == [2.0, 3.0]
    assert body["items"][0]["cpu_temperature_c"] is None
    assert set(body["items"][0]) == {
        "sampled_at",
        "cpu_temperature_c",
        "memory_used_percent",
        "disk_used_percent",
        "load1",
        "requests_per_minute",
    }
    assert body["since"] < body["items"][0]["sampled_at"] < body["until"]
    wider = (await client.get("/api/health/samples?hours=48", headers=headers)).json()
    assert [s["requests_per_minute"] for s in wider["items"]] == [1.0, 2.0, 3.0]
    assert wider["hours"] == 48


@pytest.mark.parametrize("hours", ["0", "169", "-1", "abc", "1.5"])
async def test_hours_outside_1_to_168_are_refused(
    client: httpx.AsyncClient, make_token: TokenFactory, hours: str
) -> None:
    headers = bearer(await make_token(Scope.READ))
    response = await client.get(f"/api/health/samples?hours={hours}", headers=headers)
    assert_error_shape(response, 422)


async def test_hours_at_the_bounds_are_accepted(
    client: httpx.AsyncClient, make_token: TokenFactory
) -> None:
    headers = bearer(await make_token(Scope.READ))
    for hours in (1, 168):
        response = await client.get(f"/api/health/samples?hours={hours}", headers=headers)
        assert response.status_code == 200 and response.json()["hours"] == hours


async def test_the_series_is_capped_to_the_newest_samples(
    ctx: AppContext,
    client: httpx.AsyncClient,
    make_token: TokenFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert samples_module.MAX_POINTS == 2016
    monkeypatch.setattr(samples_module, "MAX_POINTS", 5)
    for minutes in range(8, 0, -1):
        await add_sample(ctx, timedelta(minutes=minutes), requests_per_minute=float(minutes))
    headers = bearer(await make_token(Scope.READ))
    body = (await client.get("/api/health/samples", headers=headers)).json()
    assert body["count"] == 5 and body["truncated"] is True
    assert [s["requests_per_minute"] for s in body["items"]] == [5.0, 4.0, 3.0, 2.0, 1.0]


# --- the Health page ---------------------------------------------------------------------

SVG_RE = re.compile(r"<svg\b.*?</svg>", re.S)


async def health_page(client: httpx.AsyncClient, admin_user: str) -> httpx.Response:
    assert (await login(client, admin_user)).status_code == 200
    response = await client.get("/ui/health")
    assert response.status_code == 200, response.text
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    return response


async def test_the_health_page_shows_four_charts_under_the_csp(
    ctx: AppContext, client: httpx.AsyncClient, admin_user: str
) -> None:
    for minutes in range(0, 24 * 60, 5):
        await add_sample(ctx, timedelta(minutes=minutes + 1), memory_used_percent=40 + minutes % 11)
    page = (await health_page(client, admin_user)).text
    doc = parse(page)
    assert doc.problems == []
    svgs = SVG_RE.findall(page)
    assert len(svgs) == 4
    for svg in svgs:
        root = ET.fromstring(svg)
        assert root.get("role") == "img" and root.get("aria-label")
        assert not any("style" in e.attrib for e in root.iter())
        assert len(list(root.iter("{http://www.w3.org/2000/svg}polyline"))) == 1
    for title in ("CPU temperature", "Memory used", "Disk used", "Request rate"):
        assert f"<strong>{title}</strong>" in page
    assert "lowest 40.0 · highest 50.0 · 288 samples" in page
    assert "No samples yet" not in page
    # the existing detail view is still there
    assert 'id="h-host"' in page and "Workers" in page


async def test_the_health_page_says_when_there_are_no_samples_yet(
    client: httpx.AsyncClient, admin_user: str
) -> None:
    page = (await health_page(client, admin_user)).text
    assert parse(page).problems == []
    assert len(SVG_RE.findall(page)) == 4
    assert page.count("No samples yet") == 4
    assert page.count("no samples yet") >= 4
