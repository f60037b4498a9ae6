"""Repairs: the authenticated health lists each current problem with a
plain-language cause and the command or page that fixes it; and the releases."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from app import __version__
from app.backup.archive import create_backup
from app.care import checks, clock, repairs
from app.core.clock import now_iso
from app.core.context import AppContext
from app.notifications import store as notify_store
from app.security.principal import Scope
from tests.support.api import TokenFactory, bearer


@pytest.fixture(autouse=True)
def calm_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A host with nothing wrong: each test plants the problem it is about."""
    monkeypatch.setattr(checks, "cpu_temperature_c", lambda: 48.0)
    monkeypatch.setattr(checks, "THROTTLED_SYSFS", tmp_path / "get_throttled")
    (tmp_path / "get_throttled").write_text("0x0\n")
    monkeypatch.setattr(checks, "SYSTEMD_RUNTIME", tmp_path / "no-systemd")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ.get('PATH', '')}")
    repairs.forget_cache()
    with clock.use_probe(clock.fixed(True)):
        yield
    repairs.forget_cache()


@pytest.fixture
def settings_overrides(tmp_path: Path) -> dict[str, Any]:
    return {
        "repairs_cache_s": 0.0,
        "vpn_status_path": tmp_path / "vpn" / "peers.json",
        "monitor_cert_path": tmp_path / "tls" / "server.crt",
        "monitor_disk_warn_percent": 99.9,
        "disk_reserve_mb": 0,
        "release_root": tmp_path / "opt",
    }


def heartbeat(ctx: AppContext, circuits: dict[str, Any]) -> None:
    import sqlite3

    conn = sqlite3.connect(ctx.settings.database_path)
    with conn:
        conn.execute(
            "INSERT OR REPLACE INTO worker_heartbeats"
            " (worker_id, pid, hostname, started_at, seen_at, state) VALUES (?, 1, 'pi', ?, ?, ?)",
            ("pi:worker", now_iso(), now_iso(), json.dumps({"circuits": circuits, "running": []})),
        )
    conn.close()


async def all_is_well(ctx: AppContext) -> None:
    create_backup(ctx.settings.database_path, ctx.settings.backups_path)
    heartbeat(ctx, {"demo": {"state": "closed", "consecutive_failures": 0}})
    # a notifier with one channel, reporting (as mission-control-notify does)
    async with ctx.db.write() as conn:
        await notify_store.set_channels(conn, [("phone", "ntfy")])
        await notify_store.beat(conn, 1, now_iso(), 1)


async def repairs_of(client: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, Any]:
    response = await client.get("/api/health", headers=headers)
    assert response.status_code == 200, response.text
    found = {r["check"]: r for r in response.json()["repairs"]}
    for repair in found.values():
        assert set(repair) == {"check", "severity", "title", "cause", "fix"}
        assert repair["severity"] in ("warning", "critical")
        assert len(repair["cause"]) > 20 and repair["fix"], repair
    return found


def certificate(path: Path, days_left: float) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mission-control.local")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=80))
        .not_valid_after(now + timedelta(days=days_left))
        .sign(key, hashes.SHA256())
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def vpn_status(
    path: Path, peers: list[dict[str, Any]], *, up: bool = True, age_s: int = 30
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(
            {"interface": "wg0", "up": up, "generated_at": int(time.time()) - age_s, "peers": peers}
        )
    )


def fake_tool(tmp_path: Path, name: str, script: str) -> None:
    folder = tmp_path / "bin"
    folder.mkdir(exist_ok=True)
    tool = folder / name
    tool.write_text("#!/bin/sh\n" + script)
    tool.chmod(0o755)


# --- the health page --------------------------------------------------------------------


async def test_a_healthy_appliance_has_no_repairs(
    client: httpx.AsyncClient, ctx: AppContext, admin_headers: dict[str, str]
) -> None:
    await all_is_well(ctx)
    assert await repairs_of(client, admin_headers) == {}


async def test_each_current_problem_is_listed_with_its_cause_and_fix(
    client: httpx.AsyncClient,
    ctx: AppContext,
    make_token: TokenFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = ctx.settings
    certificate(settings.monitor_cert_path, days_left=5)
    heartbeat(
        ctx,
        {
            "demo": {"state": "closed", "consecutive_failures": 0},
            "claude": {"state": "open", "consecutive_failures": 5, "retry_after_s": 120.5},
        },
    )
    vpn_status(
        settings.vpn_status_path,
        [
            {"name": "laptop", "address": "10.8.0.2", "latest_handshake": 1_700_000_000},
            {"name": "phone", "address": "10.8.0.3", "latest_handshake": 0},
        ],
    )
    (tmp_path / "get_throttled").write_text("0x50005\n")  # under-voltage now
    monkeypatch.setattr(checks, "cpu_temperature_c", lambda: 83.0)
    (tmp_path / "no-systemd").mkdir()
    fake_tool(
        tmp_path,
        "systemctl",
        'echo "mission-control-worker.service loaded failed failed Mission Control worker"\n',
    )
    settings.disk_reserve_mb = 10**9  # the guard says: nearly full
    settings.disk_reserve_percent = 99.0
    reader = bearer(await make_token(Scope.READ))  # any scope may read the health page

    with clock.use_probe(clock.fixed(False)):
        found = await repairs_of(client, reader)

    assert set(found) == {
        "backup",
        "certificate",
        "clock",
        "disk",
        "notify_channels",
        "runner_circuit:claude",
        "temperature",
        "throttling",
        "units",
        "vpn_peer",
    }
    assert found["backup"]["fix"] == "sudo systemctl start mission-control-backup.service"
    assert "5 days" in found["certificate"]["cause"] or "4 days" in found["certificate"]["cause"]
    assert "tls-renew" in found["certificate"]["fix"]
    assert "not synchronised" in found["clock"]["cause"] and "timedatectl" in found["clock"]["fix"]
    assert found["disk"]["severity"] == "critical" and "journalctl --vacuum" in found["disk"]["fix"]
    assert "5 runs" in found["runner_circuit:claude"]["cause"]
    assert "restart mission-control-worker" in found["runner_circuit:claude"]["fix"]
    assert "83" in found["temperature"]["cause"]
    assert "under-voltage" in found["throttling"]["cause"]
    assert "power supply" in found["throttling"]["fix"]
    assert "mission-control-worker.service" in found["units"]["cause"]
    assert found["units"]["fix"].endswith("sudo systemctl restart mission-control-worker.service'")
    assert "phone" in found["vpn_peer"]["cause"] and "laptop" not in found["vpn_peer"]["cause"]
    assert "mc-vpn show phone --qr" in found["vpn_peer"]["fix"]
    # critical problems first
    response = await client.get("/api/health", headers=reader)
    severities = [r["severity"] for r in response.json()["repairs"]]
    assert severities == sorted(severities, key=lambda s: s != "critical")


async def test_no_live_worker_and_an_old_backup_are_repairs(
    client: httpx.AsyncClient, ctx: AppContext, admin_headers: dict[str, str]
) -> None:
    old = datetime.now(UTC) - timedelta(hours=50)
    create_backup(ctx.settings.database_path, ctx.settings.backups_path, now=old)
    found = await repairs_of(client, admin_headers)
    assert set(found) == {"backup", "notify_channels", "worker"}
    assert found["backup"]["title"] == "Backup is old" and "50 h" in found["backup"]["cause"]
    assert "mission-control-worker" in found["worker"]["fix"]


async def test_the_unauthenticated_health_says_nothing_of_repairs(
    client: httpx.AsyncClient,
) -> None:
    assert (await client.get("/api/health")).status_code == 401
    public = await client.get("/healthz")
    assert public.json() == {"status": "ok"}


async def test_repairs_are_cached_between_requests(
    client: httpx.AsyncClient, ctx: AppContext, admin_headers: dict[str, str]
) -> None:
    ctx.settings.repairs_cache_s = 60.0
    await all_is_well(ctx)
    assert await repairs_of(client, admin_headers) == {}
    certificate(ctx.settings.monitor_cert_path, days_left=2)
    assert await repairs_of(client, admin_headers) == {}  # host checks not run again yet
    repairs.forget_cache()
    assert "certificate" in await repairs_of(client, admin_headers)


# --- the checks, one by one -------------------------------------------------------------


def test_vpn_status_variants(tmp_path: Path) -> None:
    path = tmp_path / "peers.json"
    assert checks.check_vpn_peers(path) == []  # no VPN provisioned: nothing to say
    vpn_status(path, [{"name": "a", "latest_handshake": 1}])
    assert checks.check_vpn_peers(path) == []
    vpn_status(path, [], up=False)
    assert [f.check for f in checks.check_vpn_peers(path)] == ["vpn"]
    vpn_status(path, [], age_s=3600)
    assert [f.check for f in checks.check_vpn_peers(path)] == ["vpn_status"]
    path.write_text("{not json")
    assert [f.title for f in checks.check_vpn_peers(path)] == ["VPN status unreadable"]


def test_half_open_and_closed_circuits_are_not_repairs() -> None:
    states = [
        json.dumps({"circuits": {"a": {"state": "half_open"}, "b": {"state": "closed"}}}),
        "not json",
        json.dumps({"circuits": "nonsense"}),
    ]
    assert checks.check_circuits(states) == []


def test_throttling_in_the_past_only_is_not_a_repair(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    flags = tmp_path / "flags"
    monkeypatch.setattr(checks, "THROTTLED_SYSFS", flags)
    flags.write_text("0x50000\n")  # happened since boot, not now
    assert checks.check_throttling() is None
    flags.write_text("0x4\n")  # throttled now (heat)
    finding = checks.check_throttling()
    assert finding is not None and "cooling" in finding.fix


# --- releases -----------------------------------------------------------------------------


async def test_the_health_page_shows_the_release(
    client: httpx.AsyncClient, ctx: AppContext, admin_headers: dict[str, str]
) -> None:
    body = (await client.get("/api/health", headers=admin_headers)).json()
    expected = {"running": "development checkout", "version": __version__, "layout": False}
    assert body["release"] == expected
    root = ctx.settings.release_root
    (root / "releases" / "0.0.9").mkdir(parents=True)
    (root / "releases" / __version__).mkdir(parents=True)
    (root / "current").symlink_to(root / "releases" / __version__)
    body = (await client.get("/api/health", headers=admin_headers)).json()
    assert body["release"]["current"] == __version__
    assert body["release"]["previous"] == "0.0.9"


async def test_the_monitor_notifies_with_the_same_cause_and_fix(
    ctx: AppContext, capsys: pytest.CaptureFixture[str]
) -> None:
    from app.care.monitor import monitor

    heartbeat(ctx, {"claude": {"state": "open", "consecutive_failures": 7}})
    status = await monitor(ctx.db, ctx.settings)
    assert status == 1  # an open circuit is critical
    out = capsys.readouterr().out
    assert "Fix: sudo systemctl start mission-control-backup.service" in out
    rows = await ctx.db.fetch_all("SELECT title, body FROM notifications ORDER BY id")
    bodies = {row[0]: row[1] for row in rows}
    assert bodies["No backup yet"].endswith(
        "Fix: sudo systemctl start mission-control-backup.service"
    )
    assert "7 runs of agent profile 'claude'" in bodies["Runner circuit open: claude"]


async def test_the_monitor_notifies_when_agent_runs_are_not_sandboxed(ctx: AppContext) -> None:
    """The runner sandbox reaches `missionctl monitor` too, not only /api/health."""
    import sqlite3

    from app.care.monitor import monitor

    await all_is_well(ctx)
    refused = {"mode": "required", "status": "refused", "landlock_abi": 0, "reason": "no Landlock"}
    conn = sqlite3.connect(ctx.settings.database_path)
    with conn:
        conn.execute(
            "UPDATE worker_heartbeats SET state = ?",
            (json.dumps({"circuits": {}, "running": [], "sandbox": refused}),),
        )
    conn.close()
    status = await monitor(ctx.db, ctx.settings)
    assert status == 1  # refused agent runs are critical
    rows = await ctx.db.fetch_all("SELECT title, body FROM notifications ORDER BY id")
    bodies = {row[0]: row[1] for row in rows}
    title = "Agent runs refused: the filesystem sandbox is unavailable"
    assert title in bodies, sorted(bodies)
    assert "lsm=" in bodies[title]
