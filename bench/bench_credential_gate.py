"""Benchmark of the credential gate (F14): throughput, adversarial inputs, corpora.

Run from the repository root::

    python bench/bench_credential_gate.py

Prints plain lines, asserts nothing, and takes well under a minute.
"""

from __future__ import annotations

import base64
import functools
import random
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from app.security.credential_gate import CredentialKind, redact, scan  # noqa: E402

CORPORA = ROOT / "tests" / "corpora"
SIZE = 5 * 1024 * 1024


def _fill(unit: str, size: int = SIZE) -> str:
    return (unit * (size // len(unit) + 1))[:size]


def adversarial_inputs(size: int = SIZE) -> Iterator[tuple[str, Callable[[], str]]]:
    """Inputs built to provoke backtracking or per-candidate rescans."""
    rng = random.Random(1)
    yield "a-run", lambda: "a" * size
    yield "A-run", lambda: "A" * size
    yield "equals-run", lambda: "=" * size
    yield "newlines", lambda: "\n" * size
    yield "begin-repeated", lambda: _fill("-----BEGIN ", size)
    yield "pem-header-repeated", lambda: _fill("-----BEGIN RSA PRIVATE KEY-----\n", size)
    yield "pem-header-then-base64", lambda: "-----BEGIN PRIVATE KEY-----\n" + _fill("QUJD", size)
    yield "pem-end-repeated", lambda: _fill("-----END PRIVATE KEY-----\n", size)
    yield "sk-repeated", lambda: _fill("sk-", size)
    yield "sk-long-token", lambda: "sk-" + _fill("a1", size)
    yield "postgres-no-at", lambda: _fill("postgres://", size)
    yield "postgres-user-no-at", lambda: "postgres://user:" + "a" * size
    yield "userinfo-repeated", lambda: _fill("://a:b", size)
    yield "base64-blob", lambda: base64.b64encode(rng.randbytes(size * 3 // 4)).decode()
    yield "single-line-words", lambda: _fill("the password token secret key bearer value ", size)
    yield "password-eq-repeated", lambda: _fill("password=", size)
    yield "password-pairs", lambda: _fill("password=x1y2 ", size)
    yield "password-decoys", lambda: _fill("password=a ", size)
    yield "token-pairs", lambda: _fill("token=Ab3dEf7hIj9kLm1nOp ", size)
    yield "secret-open-quote", lambda: 'secret="' + _fill("\\a", size)
    yield "token-long-value", lambda: "token=" + _fill("Ab1", size)
    yield "api-key-repeated", lambda: _fill("api_key", size)
    yield "jwt-prefix-repeated", lambda: _fill("eyJ", size)
    yield "jwt-header-repeated", lambda: _fill("eyJhbGciOiJIUzI1NiJ9.", size)
    yield "bearer-repeated", lambda: _fill("Authorization: Bearer ", size)
    yield "ghp-repeated", lambda: _fill("ghp_", size)
    yield "xoxb-repeated", lambda: _fill("xoxb-", size)
    yield "akia-repeated", lambda: _fill("AKIA", size)
    yield "slack-hook-repeated", lambda: _fill("https://hooks.slack.com/services/", size)
    yield "marker-repeated", lambda: _fill("[REDACTED:password]", size)
    # Mission Control tokens, command lines, cookies, hashes and evasions.
    yield "mc-repeated", lambda: _fill("mc_", size)
    yield "mc-id-repeated", lambda: _fill("mc_a1b2c3d4e5_", size)
    yield "percent-run", lambda: _fill("%41", size)
    yield "zero-width-run", lambda: _fill("\u200b", size)
    yield "zero-width-between", lambda: _fill("a\u200b", size)
    yield "wrapped-lines", lambda: _fill("ab1c\n", size)
    yield "wrapped-long-lines", lambda: _fill("Zk3mQ9vR2xT7pL0wYc4n" * 20 + "\n", size)
    yield "continuation-lines", lambda: _fill("ab1c\\\r\n    ", size)
    yield "mysql-p-repeated", lambda: _fill("mysql -pX1 ", size)
    yield "flag-repeated", lambda: "curl " + _fill(" -u a:b1", size)
    yield "cookie-repeated", lambda: _fill("Cookie: ", size)
    yield "cookie-pairs", lambda: "Cookie: " + _fill("s=Ab3dEf7hIj9kLm1nOp; ", size)
    yield "hash-prefix-repeated", lambda: _fill("$6$", size)
    yield "argon-repeated", lambda: _fill("$argon2id$v=19$", size)
    yield "discord-repeated", lambda: _fill("discord.com/api/webhooks/1/", size)
    yield "sas-sig-repeated", lambda: _fill("&sig=", size)
    yield "docker-auth-repeated", lambda: _fill('"auth": "', size)
    yield "prefix-lines", lambda: _fill("ghp_a1\nb2c3\n", size)
    yield "prefix-token-lines", lambda: _fill("sk-a1b2c3d4\n", size)


def realistic_text(size: int = SIZE) -> str:
    """Prose and code from the benign corpus with corpus secrets sprinkled in."""
    rng = random.Random(2)
    benign = [
        line
        for path in sorted((CORPORA / "benign").glob("*.txt"))
        for line in path.read_text(encoding="utf-8").splitlines()
        if len(line) < 400
    ]
    secrets = [text for _, text, _ in credential_examples()]
    parts: list[str] = []
    total = 0
    while total < size:
        chunk = rng.choice(secrets) if rng.random() < 0.01 else rng.choice(benign)
        parts.append(chunk)
        total += len(chunk) + 1
    return "\n".join(parts)[:size]


def parse_example(raw: str) -> tuple[str, list[tuple[int, int]]]:
    """Strip the «secret» annotations; return the text and the annotated spans."""
    out: list[str] = []
    spans: list[tuple[int, int]] = []
    length = 0
    start = 0
    for ch in raw:
        if ch == "«":
            start = length
        elif ch == "»":
            spans.append((start, length))
        else:
            out.append(ch)
            length += 1
    return "".join(out), spans


def credential_examples() -> list[tuple[CredentialKind, str, list[tuple[int, int]]]]:
    examples: list[tuple[CredentialKind, str, list[tuple[int, int]]]] = []
    for kind in CredentialKind:
        raw = (CORPORA / "credentials" / f"{kind.value}.txt").read_text(encoding="utf-8")
        if "\n%%\n" in raw:
            chunks = raw.rstrip("\n").split("\n%%\n")
        else:
            chunks = [line for line in raw.splitlines() if line.strip() and line[0] != "#"]
        for chunk in chunks:
            text, spans = parse_example(chunk)
            examples.append((kind, text, spans))
    return examples


def evasion_examples() -> list[tuple[CredentialKind, str, list[tuple[int, int]]]]:
    """``tests/corpora/evasions.txt``: blocks whose first line names the kind."""
    raw = (CORPORA / "evasions.txt").read_text(encoding="utf-8").rstrip("\n")
    out = []
    for block in raw.split("\n%%\n"):
        kind, _, body = block.partition("\n")
        text, spans = parse_example(body)
        out.append((CredentialKind(kind), text, spans))
    return out


def _timed(func: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    func()
    return time.perf_counter() - t0


def main() -> None:
    started = time.perf_counter()
    print(f"python {sys.version.split()[0]}")

    text = realistic_text()
    mb = len(text.encode("utf-8")) / 1e6
    runs = [_timed(lambda: scan(text)) for _ in range(3)]
    best = min(runs)
    findings = len(scan(text))
    print(f"realistic mixed text: {mb:.2f} MB, {findings} findings")
    print(f"scan throughput: {mb / best:.1f} MB/s (best of 3: {best * 1000:.0f} ms)")
    red = _timed(lambda: redact(text))
    print(f"redact throughput: {mb / red:.1f} MB/s ({red * 1000:.0f} ms)")

    worst_name, worst = "", 0.0
    for name, build in adversarial_inputs():
        data = build()
        elapsed = _timed(functools.partial(scan, data))
        print(f"adversarial {name}: {elapsed * 1000:.0f} ms ({len(data) / 1e6:.1f} MB)")
        if elapsed > worst:
            worst_name, worst = name, elapsed
    print(f"adversarial worst case: {worst * 1000:.0f} ms ({worst_name})")

    examples = credential_examples()
    detected = 0
    per_kind: dict[CredentialKind, list[int]] = {kind: [0, 0] for kind in CredentialKind}
    for kind, example, spans in examples:
        found = scan(example)
        ok = (
            bool(found)
            and all(f.kind is kind for f in found)
            and all(any(f.start <= s and e <= f.end for f in found) for s, e in spans)
        )
        per_kind[kind][1] += 1
        if ok:
            detected += 1
            per_kind[kind][0] += 1
    for kind, (hit, total) in per_kind.items():
        print(f"detection {kind.value}: {hit}/{total}")
    print(f"detection rate: {detected}/{len(examples)} = {100 * detected / len(examples):.1f} %")

    evasions = evasion_examples()
    caught = 0
    for kind, example, spans in evasions:
        found = scan(example)
        if {f.kind for f in found} == {kind} and all(
            any(f.start <= s and e <= f.end for f in found) for s, e in spans
        ):
            caught += 1
    print(f"evasions (zero-width, wrapped, percent-encoded): {caught}/{len(evasions)}")

    false_positives = 0
    benign_bytes = 0
    for path in sorted((CORPORA / "benign").glob("*.txt")):
        content = path.read_text(encoding="utf-8")
        benign_bytes += len(content)
        hits = scan(content)
        false_positives += len(hits)
        print(f"benign {path.name}: {len(hits)} false positives")
    print(f"false positives: {false_positives} in {benign_bytes} bytes of benign corpus")
    print(f"bench runtime: {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
