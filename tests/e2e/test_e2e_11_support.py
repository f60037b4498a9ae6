"""Appliance care on the stand-in Pi: ``sudo missionctl support-bundle`` writes one
archive with what a helper needs (versions, settings, doctor, unit states, the
journal, the health report) and none of the Pi's real secrets: the generated
admin password, the server key, an API token that was just used."""

from __future__ import annotations

import json

from tests.support.e2e import MISSIONCTL, Testbed, https_client

BUNDLE = "/root/mc-support-e2e.tar.gz"
SERVER_KEY = "/var/lib/mission-control/secrets/server.key"
WANTED = {
    "README.txt",
    "versions.json",
    "settings.json",
    "doctor.txt",
    "units.txt",
    "logs.txt",
    "health.json",
    "manifest.json",
}

# runs on the Pi: the members, their sizes, and which of the secrets (given on
# stdin, one per line) any member holds
SCAN = """
import json, sys, tarfile
secrets = [s for s in sys.stdin.read().splitlines() if s]
found, members = [], {}
with tarfile.open(sys.argv[1]) as tar:
    for member in tar.getmembers():
        if not member.isfile():
            continue
        data = tar.extractfile(member).read()
        members[member.name.split("/", 1)[-1]] = len(data)
        found += [f"{member.name}: secret {i}" for i, s in enumerate(secrets) if s.encode() in data]
print(json.dumps({"members": members, "found": found}))
"""


def test_support_bundle_is_complete_and_holds_no_secret(testbed: Testbed) -> None:
    tb = testbed
    as_service = ["runuser", "-u", "mission-control", "--", MISSIONCTL]
    create = [*as_service, "token", "create", "--name", "support-e2e", "--scope", "read"]
    create += ["--owner", "admin"]  # the provisioned admin (app_admin_user)
    made = tb.run(create).stdout
    token = next(word for word in made.split() if word.startswith("mc_"))
    with https_client(tb) as client:
        used = client.get("/api/health", headers={"Authorization": f"Bearer {token}"})
    assert used.status_code == 200, f"the new token: {used.status_code}"
    secrets = [tb.admin_password(), tb.read(SERVER_KEY).strip(), token]
    assert all(len(s) >= 16 for s in secrets), "a secret to look for is too short to mean much"

    tb.run(["rm", "-f", BUNDLE])
    tb.run([MISSIONCTL, "support-bundle", "--output", BUNDLE], timeout=120)
    size = int(tb.run(["stat", "-c", "%s", BUNDLE]).stdout)
    mode = tb.run(["stat", "-c", "%a", BUNDLE]).stdout.strip()
    scan = json.loads(tb.run(["python3", "-c", SCAN, BUNDLE], input="\n".join(secrets)).stdout)
    members: dict[str, int] = scan["members"]
    assert not scan["found"], f"the support bundle holds a secret: {scan['found']}"
    assert set(members) >= WANTED, f"missing from the bundle: {sorted(WANTED - set(members))}"
    assert mode == "600", f"the bundle is mode {mode}"
    assert members["logs.txt"] > 1000, "the bundle carries (almost) no journal lines"
    units = tb.run(["python3", "-c", _read_member("units.txt"), BUNDLE]).stdout
    assert "mission-control.service" in units and "active" in units, units[:500]
    tb.run(["rm", "-f", BUNDLE])
    print(
        f"support bundle on the Pi: {size} bytes (mode {mode}); members: "
        + ", ".join(f"{name} {length}" for name, length in sorted(members.items()))
    )


def _read_member(name: str) -> str:
    return (
        "import sys, tarfile\n"
        "with tarfile.open(sys.argv[1]) as tar:\n"
        f"    m = [x for x in tar.getmembers() if x.name.endswith('/{name}')][0]\n"
        "    sys.stdout.write(tar.extractfile(m).read().decode())\n"
    )
