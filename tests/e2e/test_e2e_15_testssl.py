"""TLS as a scanner rates it: testssl.sh (Debian trixie's package, 3.2: the
release that grades) from the laptop, through the tunnel, against the Pi's UI,
with the Pi's CA added. The grade must be A+; the score and the key-exchange
groups the Pi offers are printed (X25519MLKEM768 where OpenSSL has it, the
classic curves for older clients: provisioning/roles/nginx, ssl_ecdh_curve).

testssl.sh comes from the Debian mirror (no internet): the trixie Pi's own apt
downloads the package through the harness's relay (its hashes checked against
the signed lists), and it is unpacked on the host, cached by the package's
file name. It probes with its own sockets, so the host's older OpenSSL does
not limit what it sees."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.e2e import Testbed, in_ns, run

CACHE = Path(
    os.environ.get("MC_E2E_CACHE")
    or os.environ.get("MC_TESTBED_CACHE")
    or "/var/cache/mission-control-testbed"
)
#: a full testssl.sh run took about 2 min here (load 10 on 2 cores); this bounds it
TESTSSL_TIMEOUT_S = 600
PI_DOWNLOAD_DIR = "/var/tmp/mc-e2e-testssl"


def trixie_pi(tb: Testbed) -> Testbed:
    """A Pi of the testbed on trixie (its mirror has testssl.sh 3.2)."""
    for pi in (tb, tb.second_pi()):
        if pi is not None and pi.suite == "trixie":
            return pi
    pytest.skip("testssl.sh with ratings is trixie's package (3.2); the testbed has no trixie Pi")


def install_testssl(tb: Testbed) -> Path:
    """testssl.sh from the trixie Pi's mirror, unpacked under the cache: the
    directory holding usr/bin/testssl and etc/testssl."""
    pi = trixie_pi(tb)
    pi.sh(
        f"rm -rf {PI_DOWNLOAD_DIR} && install -d -o _apt {PI_DOWNLOAD_DIR} && "
        f"cd {PI_DOWNLOAD_DIR} && apt-get download -q testssl.sh",
        timeout=120,
    )
    try:
        names = pi.run(["ls", PI_DOWNLOAD_DIR]).stdout.split()
        debs = [name for name in names if name.startswith("testssl.sh_") and name.endswith(".deb")]
        assert len(debs) == 1, f"apt-get download testssl.sh on {pi.host}: {names}"
        target = CACHE / "testssl" / debs[0].removesuffix(".deb")
        if not (target / ".complete").exists():
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir(parents=True)
            deb = Path(pi["ROOT"]) / PI_DOWNLOAD_DIR.lstrip("/") / debs[0]
            unpacked = run(["dpkg-deb", "-x", str(deb), str(target)])
            assert unpacked.returncode == 0, f"dpkg-deb -x {deb.name}: {unpacked.stderr}"
            (target / ".complete").touch()
    finally:
        pi.run(["rm", "-rf", PI_DOWNLOAD_DIR], check=False)
    return target


def test_testssl_grades_the_ui_a_plus(testbed: Testbed) -> None:
    tb = testbed
    install = install_testssl(tb)
    out = tb.state_dir / "testssl.json"
    out.unlink(missing_ok=True)
    argv = [
        "env",
        f"TESTSSL_INSTALL_DIR={install}/etc/testssl",
        "timeout",
        str(TESTSSL_TIMEOUT_S),
        str(install / "usr/bin/testssl"),
        "--quiet",
        "--color",
        "0",
        "--warnings",
        "off",
        "--nodns",
        "none",
        "--connect-timeout",
        "5",
        "--openssl-timeout",
        "5",
        "--add-ca",
        str(tb.ca_cert),
        "--jsonfile",
        str(out),
        f"https://{tb.tunnel}/",
    ]
    try:
        proc = in_ns(tb["NS_LAPTOP"], argv, timeout=TESTSSL_TIMEOUT_S + 30)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"testssl.sh did not finish in {TESTSSL_TIMEOUT_S} s") from exc
    assert out.is_file(), (
        f"testssl.sh wrote no JSON (exit {proc.returncode}): {proc.stderr[-2000:]}"
    )
    findings = {item["id"]: item for item in json.loads(out.read_text())}

    def finding(key: str) -> str:
        return str(findings.get(key, {}).get("finding", ""))

    grade, score = finding("overall_grade"), finding("final_score")
    kems, curves = finding("FS_KEMs"), finding("FS_ECDHE_curves")
    caps = {k: v["finding"] for k, v in findings.items() if k.startswith("grade_cap")}
    parts = {
        k.removesuffix("_score"): finding(k)
        for k in ("protocol_support_score", "key_exchange_score", "cipher_strength_score")
    }
    version = install.name.split("_", 1)[1]
    print(
        f"testssl.sh {version} from the laptop to https://{tb.tunnel}/ ({tb.suite} Pi): "
        f"grade {grade}, score {score} {parts}; groups offered: {curves} {kems}".rstrip()
        + (f"; grade caps: {caps}" if caps else "")
    )
    assert findings.get("cert_chain_of_trust", {}).get("severity") == "OK", (
        f"testssl.sh does not trust the Pi's certificate with its CA added: "
        f"{finding('cert_chain_of_trust')}"
    )
    assert grade == "A+", f"testssl.sh grades the Pi's UI {grade!r} (score {score}); caps: {caps}"
    offered = set(curves.split()) | set(kems.split())
    assert {"X25519", "prime256v1"} <= offered, f"classic groups not offered: {offered}"
    if tb.suite == "trixie":
        assert "X25519MLKEM768" in offered, f"the trixie Pi offers no X25519MLKEM768: {offered}"
