"""Check 10: updates with rollback (``provisioning/update.yml``), run as a user
would, from the laptop over SSH through the tunnel.

(a) A release whose ``/healthz`` answers 503 (a copy of the tree whose database
check always fails) is installed, started, found unhealthy within the bound and
rolled back by the playbook itself, which then fails saying ROLLED BACK:
``current`` is the release before again, the appliance answers through the
tunnel, and data written before the update is still there.

(b) A good release (the tree with a bumped version) stays: ``current`` is the
new release, ``previous`` the one before, the health API and page show both,
older releases are pruned, the data is kept. The Pi is left on this good
release for the checks after this one.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.e2e import REPO, Testbed, https_client, login, wait_for

ROOT = "/opt/mission-control"
# what scripts/e2e-pi.sh snapshots for its own runs (write_playbook_inputs)
TREE = [
    "pyproject.toml",
    "requirements.lock",
    "app",
    "provisioning",
    "systemd",
    "nginx",
    "wireguard",
    "scripts/mc-vpn",
    "scripts/mc-vpn-helper",
]
PLAYBOOK_TIMEOUT_S = 900
# the bad release: its database check always fails, so /healthz answers 503
# (and the systemd watchdog gets no ping); appended to app/core/database.py,
# this definition replaces the real one for every importer
BROKEN_HEALTH = """

# tests/e2e/test_e2e_10_update.py: a release that is not healthy
async def database_ok(db: Database, timeout_s: float = 2.0) -> bool:  # type: ignore[no-redef]
    return False
"""


@dataclass
class PlaybookRun:
    rc: int
    log: str
    seconds: float
    log_path: Path


def make_tree(dest: Path, version_suffix: str, *, broken: bool) -> str:
    """A copy of this checkout (or of MC_E2E_SOURCE, as the harness) with its
    version bumped; ``broken``: with a new migration and a failing health."""
    base = Path(os.environ.get("MC_E2E_SOURCE") or REPO)
    dest.mkdir(parents=True)
    for part in TREE:
        src = base / part
        target = dest / part
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(src, target)
    for inventory in ("inventory.ini", "group_vars/all.yml"):
        (dest / "provisioning" / inventory).unlink(missing_ok=True)
    pyproject = dest / "pyproject.toml"
    text = pyproject.read_text()
    version = re.search(r'(?m)^version = "([^"]+)"', text)
    assert version, "no version in pyproject.toml"
    new = f"{version.group(1)}{version_suffix}"
    pyproject.write_text(text.replace(version.group(0), f'version = "{new}"', 1))
    init = dest / "app" / "__init__.py"
    init.write_text(
        re.sub(r'(?m)^__version__ = "[^"]+"', f'__version__ = "{new}"', init.read_text())
    )
    if broken:
        probes = dest / "app" / "core" / "database.py"
        assert "async def database_ok(" in probes.read_text(), "database_ok moved"
        probes.write_text(probes.read_text() + BROKEN_HEALTH)
        # a schema change the release before cannot start on: only the restore
        # of the pre-update backup lets it run again
        number = len(list((dest / "app" / "migrations").glob("[0-9][0-9][0-9][0-9]_*.sql"))) + 1
        (dest / "app" / "migrations" / f"{number:04d}_e2e_bad_release.sql").write_text(
            "CREATE TABLE e2e_bad_release (id INTEGER PRIMARY KEY);\n"
        )
    return new


def run_playbook(tb: Testbed, source: Path, playbook: str, name: str) -> PlaybookRun:
    """As scripts/e2e-pi.sh runs its second provisioning: from the laptop, over
    SSH through the tunnel, with the settings of vars.yml; built from ``source``."""
    state = tb.state_dir
    log_path = state / f"{name}.log"
    cmd = [
        "ip", "netns", "exec", tb["NS_LAPTOP"],
        "env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", f"HOME={state}/home", "LANG=C.UTF-8",
        f"ANSIBLE_CONFIG={source}/provisioning/ansible.cfg", "ANSIBLE_NOCOLOR=1",
        f"ANSIBLE_SSH_CONTROL_PATH_DIR={state}/cp", "ANSIBLE_CALLBACKS_ENABLED=profile_tasks",
        "ansible-playbook", "-i", str(state / "inventory-ssh.ini"), "--limit", tb.host,
        "-e", f"@{state}/vars.yml", "-e", f"app_source_dir={source}",
        str(source / "provisioning" / playbook),
    ]  # fmt: skip
    start = time.monotonic()
    proc = subprocess.run(
        cmd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=PLAYBOOK_TIMEOUT_S,
        check=False,
    )
    seconds = time.monotonic() - start
    log = proc.stdout + proc.stderr
    log_path.write_text(log)
    return PlaybookRun(proc.returncode, log, seconds, log_path)


def link(tb: Testbed, name: str) -> str:
    """The release a link points at ('' when there is no such link)."""
    target = tb.run(["readlink", f"{ROOT}/{name}"], check=False).stdout.strip()
    return Path(target).name if target else ""


def releases(tb: Testbed) -> list[str]:
    return sorted(tb.run(["ls", "-1", f"{ROOT}/releases"]).stdout.split())


def running(tb: Testbed, unit: str) -> str:
    """The release the unit's main process runs (from its command line)."""
    pid = tb.main_pid(unit)
    assert pid, f"{unit} has no main process"
    cmdline = tb.read(f"/proc/{pid}/cmdline").replace("\0", " ")
    found = re.search(r"/releases/([^/]+)/", cmdline)
    assert found, f"{unit} does not run from a release: {cmdline}"
    return found.group(1)


def add_agent(tb: Testbed, label: str) -> int:
    with https_client(tb) as client:
        csrf = login(client, tb)
        response = client.post(
            "/api/agents",
            json={
                "name": f"{label} {int(time.time() * 1000) % 10**9}",
                "role": "r",
                "model": "demo-1",
            },
            headers=csrf,
        )
        assert response.status_code == 201, response.text
        return int(response.json()["id"])


def agent_ids(tb: Testbed) -> set[int]:
    with https_client(tb) as client:
        login(client, tb)
        response = client.get("/api/agents", params={"limit": 200})
        assert response.status_code == 200, response.text
        return {item["id"] for item in response.json()["items"]}


SCHEMA = """
import sqlite3
db = sqlite3.connect("file:/var/lib/mission-control/mission-control.db?mode=ro", uri=True)
version = db.execute("SELECT max(version) FROM schema_migrations").fetchone()[0]
table = db.execute("SELECT count(*) FROM sqlite_master WHERE name = 'e2e_bad_release'").fetchone()
print(version, table[0])
"""


def schema(tb: Testbed) -> tuple[int, int]:
    """The database's schema version and whether the bad release's table exists."""
    # as the service's user: a -shm file SQLite makes must stay the service's
    argv = ["runuser", "-u", "mission-control", "--", "python3", "-c", SCHEMA]
    version, table = tb.run(argv).stdout.split()
    return int(version), int(table)


def healthz_ok(tb: Testbed) -> bool:
    with https_client(tb) as client:
        response = client.get("/healthz", timeout=3.0)
        return response.status_code == 200 and response.json() == {"status": "ok"}


class Downtime:
    """Polls /healthz through the tunnel (a thread in the laptop's namespace) and
    keeps the longest stretch without an ok answer."""

    def __init__(self, tb: Testbed) -> None:
        self.tb = tb
        self.stop = threading.Event()
        self.longest = 0.0
        self.thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        down_since: float | None = None
        while not self.stop.is_set():
            try:
                ok = healthz_ok(self.tb)
            except (OSError, httpx.HTTPError, ValueError):
                ok = False
            now = time.monotonic()
            if ok:
                if down_since is not None:
                    self.longest = max(self.longest, now - down_since)
                down_since = None
            elif down_since is None:
                down_since = now
            self.stop.wait(0.25)
        if down_since is not None:
            self.longest = max(self.longest, time.monotonic() - down_since)

    def __enter__(self) -> Downtime:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join(30)


def failure_lines(log: str) -> str:
    return "\n".join(line for line in log.splitlines() if "fatal:" in line or "msg" in line)[-3000:]


@pytest.fixture(scope="module")
def work() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="mc-e2e-update.", dir="/var/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def before(testbed: Testbed) -> str:
    """The release the Pi runs before these checks (site.yml installed it)."""
    current = link(testbed, "current")
    assert current, f"no {ROOT}/current link: site.yml did not install the release layout"
    assert running(testbed, "mission-control.service") == current
    return current


def test_an_unhealthy_release_is_rolled_back(testbed: Testbed, before: str, work: Path) -> None:
    tb = testbed
    previous_before = link(tb, "previous")
    kept = add_agent(tb, "before a bad update")
    schema_before = schema(tb)
    assert schema_before[1] == 0
    version = make_tree(work / "bad", f".post{int(time.time())}1", broken=True)

    result = run_playbook(tb, work / "bad", "update.yml", "update-bad")

    assert result.rc != 0, (
        f"update.yml to a release whose /healthz answers 503 succeeded ({result.log_path}):\n"
        f"{result.log[-2000:]}"
    )
    assert "ROLLED BACK: release " in result.log, (
        f"update.yml failed without saying it rolled back ({result.log_path}):\n"
        f"{failure_lines(result.log)}"
    )
    # it was the bounded health check of the new release that failed, not the build
    assert "Wait until the new release is healthy (bounded)" in result.log.split("ROLLED BACK")[1]
    assert "503" in result.log.split("ROLLED BACK")[1]
    # bounded: 60 s (app_update_health_timeout_s) and the poll in flight, not more
    waited = re.search(r'\\?"seconds\\?": ([0-9.]+)', result.log.split("ROLLED BACK")[1])
    assert waited and 60 <= float(waited.group(1)) <= 66, waited
    took = re.search(r"Rollback took ([0-9.]+) s", result.log)
    assert took, failure_lines(result.log)
    bad = re.search(r"ROLLED BACK: release (\S+) ", result.log)
    assert bad and bad.group(1).startswith(version), bad

    assert link(tb, "current") == before, f"current is {link(tb, 'current')}, not {before}"
    assert link(tb, "previous") == previous_before
    assert running(tb, "mission-control.service") == before
    assert running(tb, "mission-control-worker.service") == before
    assert tb.is_active("mission-control.service") == "active"
    wait_for("/healthz through the tunnel after the rollback", lambda: healthz_ok(tb), 30)
    assert kept in agent_ids(tb), "the agent added before the update is gone after the rollback"
    assert "restored from " in result.log.split("ROLLED BACK")[1]
    # the bad release had migrated the database; the restore undid it
    migrated = re.search(
        r"TASK \[app : Migrate the database with the new release\][^\n]*\n(?:[^\n]*\n)?(\w+):",
        result.log,
    )
    assert migrated and migrated.group(1) == "changed", "the bad release did not migrate"
    assert schema(tb) == schema_before, f"schema after the rollback: {schema(tb)}"
    print(
        f"bad release {bad.group(1)} rolled back to {before}: playbook {result.seconds:.1f} s "
        f"(the bound is 60 s), rollback {took.group(1)} s"
    )


def test_a_healthy_release_stays(testbed: Testbed, before: str, work: Path) -> None:
    tb = testbed
    kept = add_agent(tb, "before a good update")
    version = make_tree(work / "good", f".post{int(time.time())}2", broken=False)

    with Downtime(tb) as downtime:
        result = run_playbook(tb, work / "good", "update.yml", "update-good")

    assert result.rc == 0, (
        f"update.yml to a good release failed ({result.log_path}):\n{failure_lines(result.log)}"
    )
    updated = re.search(r"Updated \S+ from (\S+) to (\S+)\s+in ([0-9.]+) s", result.log)
    assert updated, result.log[-3000:]
    new = updated.group(2)
    assert new.startswith(f"{version}-"), new
    assert updated.group(1) == before

    assert (link(tb, "current"), link(tb, "previous")) == (new, before)
    assert running(tb, "mission-control.service") == new
    assert running(tb, "mission-control-worker.service") == new
    # older releases are gone (the rolled-back one of the check before, too)
    assert releases(tb) == sorted([new, before])
    wait_for("/healthz through the tunnel after the update", lambda: healthz_ok(tb), 30)
    with https_client(tb) as client:
        login(client, tb)
        health = client.get("/api/health").json()
        page = client.get("/ui/health").text
        agents = client.get("/api/agents", params={"limit": 200}).json()["items"]
    release = health["release"]
    assert (release["running"], release["current"], release["previous"]) == (new, new, before), (
        release
    )
    assert release["version"] == health["version"] == version
    assert new in page and before in page, "the UI health page does not show both releases"
    assert kept in {item["id"] for item in agents}, "the agent added before the update is gone"
    print(
        f"updated {before} -> {new}: playbook {result.seconds:.1f} s, "
        f"stop-to-healthy {updated.group(3)} s (including 5 s of settling), "
        f"/healthz through the tunnel failed for {downtime.longest:.1f} s at most"
    )


def test_the_appliance_works_on_the_new_release(testbed: Testbed) -> None:
    """What the checks after this one rely on (check 1 runs a demo task through the
    worker again): every unit up, the new worker connected to the database."""
    tb = testbed
    failed = tb.run(["systemctl", "--failed", "--no-legend", "--plain"]).stdout.strip()
    assert failed == "", f"failed units after the updates:\n{failed}"
    for unit in ("mission-control.service", "mission-control-worker.service", "nginx.service"):
        assert tb.is_active(unit) == "active", f"{unit} is {tb.is_active(unit)}"
    # the compatibility link for the old venv path follows the current release
    assert tb.run(["test", "-x", f"{ROOT}/venv/bin/missionctl"], check=False).returncode == 0
    worker_pid = tb.main_pid("mission-control-worker.service")

    def worker_reported() -> bool:
        with https_client(tb) as client:
            login(client, tb)
            workers = client.get("/api/health").json()["workers"]
        return any(w["pid"] == worker_pid for w in workers)

    wait_for("a heartbeat of the new release's worker", worker_reported, 30, interval_s=1.0)
