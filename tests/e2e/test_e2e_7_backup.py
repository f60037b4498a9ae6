"""Check 7: the nightly backup service, started by hand, writes a verified
archive; after data is added and deleted, ``missionctl backup restore`` brings
back exactly what was backed up, and the appliance keeps working."""

from __future__ import annotations

import time

import httpx

from tests.support.e2e import MISSIONCTL, Testbed, https_client, login, wait_for

BACKUP_UNIT = "mission-control-backup.service"


def _agents(client: httpx.Client) -> dict[int, str]:
    response = client.get("/api/agents", params={"limit": 200})
    assert response.status_code == 200, response.text
    return {item["id"]: item["name"] for item in response.json()["items"]}


def _backups(tb: Testbed) -> list[str]:
    lines = tb.run(["runuser", "-u", "mission-control", "--", MISSIONCTL, "backup", "list"]).stdout
    return [line.split()[-1] for line in lines.splitlines() if line.strip()]


def _run_demo_task(
    client: httpx.Client, csrf: dict[str, str], agent_id: int, title: str, timeout_s: float = 60
) -> str:
    task = client.post(
        "/api/tasks",
        json={"title": title, "description": "One line, please.", "agent_id": agent_id},
        headers=csrf,
    )
    assert task.status_code == 201, f"create task: {task.status_code} {task.text}"
    task_id = task.json()["id"]

    def finished() -> str:
        status = str(client.get(f"/api/tasks/{task_id}").json()["status"])
        return status if status in ("succeeded", "failed", "cancelled") else ""

    return str(wait_for(f"task {task_id} to finish", finished, timeout_s, interval_s=0.5))


def test_backup_restore_brings_back_the_same_content(testbed: Testbed) -> None:
    tb = testbed
    stamp = int(time.time()) % 10**6
    with https_client(tb) as client:
        csrf = login(client, tb)
        kept, dropped = [
            client.post(
                "/api/agents",
                json={"name": f"backup {name} {stamp}", "role": "r", "model": "demo-1"},
                headers=csrf,
            ).json()["id"]
            for name in ("kept", "deleted later")
        ]
        before = _agents(client)
        assert kept in before and dropped in before

        newest = _backup_now(tb)

        # change the data: one agent added, one deleted
        added = client.post(
            "/api/agents",
            json={"name": f"backup added {stamp}", "role": "r", "model": "demo-1"},
            headers=csrf,
        ).json()["id"]
        assert client.delete(f"/api/agents/{dropped}", headers=csrf).status_code == 204
        changed = _agents(client)
        assert added in changed and dropped not in changed

    try:
        _restore(tb, newest)
        with https_client(tb) as client:
            login(client, tb)
            after = _agents(client)
            assert after == before, (
                f"restored agents differ: missing {set(before) - set(after)}, "
                f"extra {set(after) - set(before)}"
            )
    finally:
        # see the next test: the worker must be restarted after a restore
        tb.run(["systemctl", "restart", "mission-control-worker.service"], check=False)
    print(
        f"backup {newest} verified; after adding {added} and deleting {dropped}, the restore "
        f"brought back {len(before)} agents exactly"
    )


def test_the_worker_runs_tasks_after_a_restore(testbed: Testbed) -> None:
    tb = testbed
    stamp = int(time.time()) % 10**6
    try:
        with https_client(tb) as client:
            csrf = login(client, tb)
            agent = client.post(
                "/api/agents",
                json={"name": f"after restore {stamp}", "role": "r", "model": "demo-1"},
                headers=csrf,
            ).json()["id"]
        _restore(tb, _backup_now(tb))
        with https_client(tb) as client:
            csrf = login(client, tb)
            # the demo agent takes a second or two; the worker looks every second
            outcome = _run_demo_task(client, csrf, agent, f"After the restore {stamp}", 20)
        assert outcome == "succeeded", f"a task after the restore ended {outcome}"
    finally:
        # leave a working appliance to the checks that follow
        tb.run(["systemctl", "restart", "mission-control-worker.service"], check=False)


def _backup_now(tb: Testbed) -> str:
    """The nightly unit, by hand (a oneshot: start returns when it is done)."""
    earlier = set(_backups(tb))
    time.sleep(1.1)  # archives are named to the second
    tb.run(["systemctl", "start", BACKUP_UNIT], timeout=300)
    assert tb.unit(BACKUP_UNIT, "Result") == "success", tb.unit(BACKUP_UNIT, "Result")
    made = [path for path in _backups(tb) if path not in earlier]
    assert len(made) == 1, f"{BACKUP_UNIT} wrote {made or 'no new archive'}"
    newest = made[0]
    verified = tb.run(
        ["runuser", "-u", "mission-control", "--", MISSIONCTL, "backup", "verify", newest]
    )
    assert "checksum and integrity ok" in verified.stdout, verified.stdout
    assert tb.run(["test", "-s", f"{newest}.sha256"], check=False).returncode == 0, (
        f"no checksum file beside {newest}"
    )
    return newest


def _restore(tb: Testbed, archive: str) -> None:
    """As the operator would: root on the Pi; it stops and starts the API."""
    restored = tb.run([MISSIONCTL, "backup", "restore", archive], timeout=180)
    assert f"restored {archive}" in restored.stdout, restored.stdout
    owner = tb.run(["stat", "-c", "%U:%G %a", "/var/lib/mission-control/mission-control.db"]).stdout
    assert owner.strip() == "mission-control:mission-control 600", owner

    def serving() -> bool:
        with https_client(tb) as client:
            return client.get("/healthz").status_code == 200

    wait_for("the API after the restore", serving, 60)
