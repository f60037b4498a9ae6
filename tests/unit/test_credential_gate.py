"""Credential gate (F14): detection, redaction, false positives, linear time.

The corpora live in ``tests/corpora``. In ``credentials/<kind>.txt`` each
example is one line, or, in files that contain a ``%%`` line, one
``%%``-separated block; the secret part is annotated as ``«secret»`` and the
annotation is stripped before scanning. ``benign/*.txt`` must yield nothing.
"""

from __future__ import annotations

import base64
import dataclasses
import importlib
import itertools
import pkgutil
import random
import re
import sysconfig
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.security import credential_gate as gate
from app.security.credential_gate import (
    CredentialKind,
    Finding,
    contains_credential,
    evasions,
    keyed,
    patterns,
    redact,
    scan,
    scanner,
)

# The stdlib regex parser (private, but stable in 3.11+) gives the structure of a pattern.
sre_constants = importlib.import_module("re._constants")
sre_parser = importlib.import_module("re._parser")

CORPORA = Path(__file__).resolve().parents[1] / "corpora"
CREDENTIALS = CORPORA / "credentials"
BENIGN = CORPORA / "benign"
MB5 = 5 * 1024 * 1024
# Generous: a catastrophic pattern takes minutes on 5 MB; a loaded CI machine
# must not turn a 0.5 s scan into a red run.
ADVERSARIAL_BOUND_S = 30.0
_ALPHANUMERIC = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def rand(n: int, seed: int = 0) -> str:
    """A fake, random-looking token body (deterministic)."""
    rng = random.Random(seed * 1000 + n)
    return "".join(rng.choice(_ALPHANUMERIC) for _ in range(n))


# --------------------------------------------------------------------------
# Corpus loading
# --------------------------------------------------------------------------


def parse_example(raw: str) -> tuple[str, list[tuple[int, int]]]:
    """Strip the «secret» annotations; return the text and the annotated spans."""
    out: list[str] = []
    spans: list[tuple[int, int]] = []
    start = 0
    length = 0
    for ch in raw:
        if ch == "«":
            start = length
        elif ch == "»":
            spans.append((start, length))
        else:
            out.append(ch)
            length += 1
    return "".join(out), spans


def load_examples(kind: CredentialKind) -> list[tuple[str, list[tuple[int, int]]]]:
    raw = (CREDENTIALS / f"{kind.value}.txt").read_text(encoding="utf-8")
    if "\n%%\n" in raw:
        chunks = raw.rstrip("\n").split("\n%%\n")
    else:
        chunks = [line for line in raw.splitlines() if line.strip() and not line.startswith("#")]
    return [parse_example(chunk) for chunk in chunks]


def all_examples() -> list[tuple[CredentialKind, str, list[tuple[int, int]]]]:
    return [(kind, text, spans) for kind in CredentialKind for text, spans in load_examples(kind)]


def benign_files() -> list[Path]:
    return sorted(BENIGN.glob("*.txt"))


def _detection_failures(kind: CredentialKind) -> list[str]:
    failures = []
    for text, spans in load_examples(kind):
        found = scan(text)
        kinds = sorted({f.kind.value for f in found})
        covered = all(any(f.start <= s and e <= f.end for f in found) for s, e in spans)
        if not found or kinds != [kind.value] or not covered:
            failures.append(f"{text[:80]!r}: kinds={kinds} covered={covered}")
    return failures


# --------------------------------------------------------------------------
# Public API shape
# --------------------------------------------------------------------------


def test_eleven_kinds_with_snake_case_names() -> None:
    assert len(CredentialKind) == 11
    assert {kind.value for kind in CredentialKind} == {
        "api_key",
        "bearer_token",
        "database_url",
        "aws_key",
        "private_key",
        "oauth_token",
        "github_token",
        "slack_token",
        "password",
        "stripe_key",
        "generic_secret",
    }


def test_marker_format() -> None:
    assert gate.marker(CredentialKind.GITHUB_TOKEN) == "[REDACTED:github_token]"
    result = redact("GITHUB_TOKEN=ghp_" + rand(36))
    assert result.text == "GITHUB_TOKEN=[REDACTED:github_token]"
    assert result.counts == {CredentialKind.GITHUB_TOKEN: 1}
    assert result.found is True


def test_clean_text_is_returned_unchanged() -> None:
    text = "nothing to see here: version 1.2.3, commit 3f2c1ab\n"
    result = redact(text)
    assert result.text == text
    assert result.counts == {}
    assert result.found is False
    assert scan(text) == []
    assert contains_credential(text) is False
    assert scan("") == []
    assert redact("").text == ""


def test_finding_is_frozen() -> None:
    finding = Finding(CredentialKind.PASSWORD, 1, 5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        finding.start = 0  # type: ignore[misc]


def test_contains_credential() -> None:
    assert contains_credential("password: Xk9#mQ2vL7pR")
    assert not contains_credential("password: ${DB_PASSWORD}")


# --------------------------------------------------------------------------
# Credential corpus: 100 % detection with the right kind, full redaction
# --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(CredentialKind), ids=lambda k: k.value)
def test_corpus_has_at_least_five_examples(kind: CredentialKind) -> None:
    examples = load_examples(kind)
    assert len(examples) >= 5
    for text, spans in examples:
        assert spans, f"example without a «secret» annotation: {text[:80]!r}"


@pytest.mark.parametrize("kind", list(CredentialKind), ids=lambda k: k.value)
def test_corpus_detected_with_the_right_kind(kind: CredentialKind) -> None:
    assert _detection_failures(kind) == []


@pytest.mark.parametrize("kind", list(CredentialKind), ids=lambda k: k.value)
def test_corpus_redaction_leaves_no_secret(kind: CredentialKind) -> None:
    for text, spans in load_examples(kind):
        result = redact(text)
        for start, end in spans:
            secret = text[start:end]
            assert secret not in result.text, f"{kind.value} survived: {text[:80]!r}"
        assert gate.marker(kind) in result.text
        assert result.counts[kind] >= len(spans)
        assert set(result.counts) == {kind}
        assert scan(result.text) == []
        assert redact(result.text).text == result.text


def test_whole_corpus_detection_rate_is_100_percent() -> None:
    examples = all_examples()
    assert len(examples) >= 11 * 5
    missed = [
        text[:60] for kind, text, _ in examples if not any(f.kind is kind for f in scan(text))
    ]
    assert missed == []


def test_corpus_concatenated_is_fully_redacted() -> None:
    examples = all_examples()
    text = "\n\n".join(example for _, example, _ in examples)
    result = redact(text)
    for _, example, spans in examples:
        for start, end in spans:
            assert example[start:end] not in result.text
    assert set(result.counts) == set(CredentialKind)


@pytest.mark.parametrize("kind", list(CredentialKind), ids=lambda k: k.value)
def test_removing_a_detector_fails_the_corpus_test(
    kind: CredentialKind, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Mutation check: without the candidates of ``kind`` its corpus test fails."""
    original = scanner.resolve_findings

    def without_kind(text: str, candidates: list[Any]) -> list[Finding]:
        return original(text, [c for c in candidates if c[3] is not kind])

    monkeypatch.setattr(scanner, "resolve_findings", without_kind)
    assert len(_detection_failures(kind)) == len(load_examples(kind))


# --------------------------------------------------------------------------
# Benign corpus: zero false positives
# --------------------------------------------------------------------------


def test_benign_corpus_covers_the_required_categories() -> None:
    names = {path.stem for path in benign_files()}
    assert {
        "uuids",
        "git_hashes",
        "checksums",
        "base64_images",
        "prose",
        "python_code",
        "javascript_code",
        "yaml_config",
        "urls",
        "versions_timestamps",
    } <= names
    assert "data:image/png;base64," in (BENIGN / "base64_images.txt").read_text(encoding="utf-8")


@pytest.mark.parametrize("path", benign_files(), ids=lambda p: p.name)
def test_benign_corpus_has_no_false_positive(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    hits = [(f.kind.value, text[f.start : f.end][:60]) for f in scan(text)]
    assert hits == []
    for line in text.splitlines():
        assert scan(line) == [], line
    assert redact(text).text == text


# --------------------------------------------------------------------------
# Redaction shape
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("password=Xk9mQ2vL7pR", "password=[REDACTED:password]"),
        ('{"passwd": "s3cr3t-Pa55"}', '{"passwd": "[REDACTED:password]"}'),
        ("PASSWORD: Tr0ub4dor&3", "PASSWORD: [REDACTED:password]"),
        ("DB_PASSWORD='hunter2-Xy'", "DB_PASSWORD='[REDACTED:password]'"),
        ("<password>Zk2mQ9vL</password>", "<password>[REDACTED:password]</password>"),
        ("?user=bob&password=Zk2mQ9vL&next=/", "?user=bob&password=[REDACTED:password]&next=/"),
        (
            "client_secret: q7Vn2LkP9sX4wR8tY3mB6cH1",
            "client_secret: [REDACTED:generic_secret]",
        ),
        (
            "aws_secret_access_key = wJalrXUtnFEMIK7MDENGbPxRfiCY1234567890ab",
            "aws_secret_access_key = [REDACTED:aws_key]",
        ),
        (
            "Authorization: Bearer q7Vn2LkP9sX4wR8tY3mB6cH1",
            "Authorization: Bearer [REDACTED:bearer_token]",
        ),
        (
            "DATABASE_URL=postgres://app:Xk9mQ2vL7pR@db:5432/app",
            "DATABASE_URL=[REDACTED:database_url]",
        ),
        (
            "https://deploy:Xk9mQ2vL7pR@ci.example.org/hook",
            "https://deploy:[REDACTED:password]@ci.example.org/hook",
        ),
    ],
)
def test_key_names_are_kept_and_values_redacted(text: str, expected: str) -> None:
    assert redact(text).text == expected


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("Authorization: Bearer ghp_" + rand(36), CredentialKind.GITHUB_TOKEN),
        ("Authorization: Bearer sk-ant-api03-" + rand(80), CredentialKind.API_KEY),
        ('password = "sk_live_' + rand(40) + '"', CredentialKind.STRIPE_KEY),
        ("token: xoxb-123456789012-" + rand(24), CredentialKind.SLACK_TOKEN),
        ("api_key=AKIA" + "ABCDEFGH23456723", CredentialKind.AWS_KEY),
    ],
)
def test_specific_format_wins_over_context(text: str, kind: CredentialKind) -> None:
    assert [f.kind for f in scan(text)] == [kind]


def test_jwt_under_an_oauth_key_is_an_oauth_token() -> None:
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJlLXNpZ25hdHVyZQ"
    assert [f.kind for f in scan(f'"id_token": "{jwt}"')] == [CredentialKind.OAUTH_TOKEN]
    assert [f.kind for f in scan(f"token in log: {jwt}")] == [CredentialKind.BEARER_TOKEN]


def test_offsets_survive_characters_whose_lowercase_is_longer() -> None:
    # "İ".lower() is two characters; the gate must keep its offsets aligned.
    text = "İİİ note: password=Xk9mQ2vL7pR and İ"
    assert redact(text).text == "İİİ note: password=[REDACTED:password] and İ"


def test_crlf_private_key_block() -> None:
    body = "\r\n".join(["MIIEowIBAAKCAQEAx7Vn2LkP9sX4wR8tY3mB6cH1q7Vn2LkP9sX4wR8tY3mB6cH1"] * 5)
    text = f"key:\r\n-----BEGIN RSA PRIVATE KEY-----\r\n{body}\r\n-----END RSA PRIVATE KEY-----\r\n"
    assert redact(text).text == "key:\r\n[REDACTED:private_key]\r\n"


def test_truncated_private_key_is_still_redacted() -> None:
    body = "\n".join(["b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAAB3jCAq8hRwmW"] * 4)
    text = f"-----BEGIN OPENSSH PRIVATE KEY-----\n{body}\n"
    assert redact(text).text == "[REDACTED:private_key]\n"


def test_header_mentioned_in_prose_is_not_a_key() -> None:
    text = "A PEM key starts with -----BEGIN PRIVATE KEY----- and ends with a footer."
    assert scan(text) == []


# --------------------------------------------------------------------------
# Idempotence: markers are never detected again
# --------------------------------------------------------------------------


def test_markers_are_not_detected() -> None:
    text = " ".join(gate.marker(kind) for kind in CredentialKind)
    assert scan(text) == []
    assert scan("password=[REDACTED:password]") == []
    assert scan('"token": "[REDACTED:generic_secret]"') == []
    assert scan("Authorization: Bearer [REDACTED:bearer_token]") == []


def test_a_marker_cannot_smuggle_a_secret() -> None:
    result = redact("password=[REDACTED:password]Xk9mQ2vL7pR")
    assert "Xk9mQ2vL7pR" not in result.text
    assert redact(result.text).text == result.text


def test_unknown_marker_kinds_are_not_markers() -> None:
    # Only the eleven real kinds form a marker, so this cannot hide a token.
    token = "ghp_" + rand(36)
    assert token not in redact(f"[REDACTED:{token}]").text


_FRAGMENTS = [text for _, text, _ in all_examples()] + [
    line for path in benign_files() for line in path.read_text(encoding="utf-8").splitlines()
]
_GLUE = ["", " ", "\n", "=", ": ", '"', "'", "&", ",", "@", "://u:", "]", "[REDACTED:"]
_GLUE += [gate.marker(kind) for kind in CredentialKind]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.one_of(st.sampled_from(_FRAGMENTS), st.sampled_from(_GLUE), st.text(max_size=12)),
        min_size=1,
        max_size=8,
    )
)
def test_redaction_is_idempotent(parts: list[str]) -> None:
    text = "".join(parts)
    once = redact(text)
    assert scan(once.text) == []
    assert redact(once.text).text == once.text


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(_FRAGMENTS + _GLUE), min_size=1, max_size=8))
def test_findings_are_sorted_and_disjoint(parts: list[str]) -> None:
    text = "".join(parts)
    findings = scan(text)
    for finding in findings:
        assert 0 <= finding.start < finding.end <= len(text)
    for before, after in itertools.pairwise(findings):
        assert before.end <= after.start


# --------------------------------------------------------------------------
# Linear time: adversarial inputs and the structure of every expression
# --------------------------------------------------------------------------


def _fill(unit: str, size: int = MB5) -> str:
    return (unit * (size // len(unit) + 1))[:size]


def _adversarial() -> Iterator[tuple[str, Callable[[], str]]]:
    rng = random.Random(1)
    yield "a-run", lambda: "a" * MB5
    yield "equals-run", lambda: "=" * MB5
    yield "begin-repeated", lambda: _fill("-----BEGIN ")
    yield "pem-header-repeated", lambda: _fill("-----BEGIN RSA PRIVATE KEY-----\n")
    yield "pem-header-then-base64", lambda: "-----BEGIN PRIVATE KEY-----\n" + _fill("QUJD")
    yield "pem-end-repeated", lambda: _fill("-----END PRIVATE KEY-----\n")
    yield "sk-repeated", lambda: _fill("sk-")
    yield "sk-long-token", lambda: "sk-" + _fill("a1")
    yield "postgres-no-at", lambda: _fill("postgres://")
    yield "postgres-user-no-at", lambda: "postgres://user:" + "a" * MB5
    yield "userinfo-repeated", lambda: _fill("://a:b")
    yield "base64-blob", lambda: base64.b64encode(rng.randbytes(MB5 * 3 // 4)).decode()
    yield "single-line", lambda: _fill("the password token secret key bearer value ")
    yield "password-eq-repeated", lambda: _fill("password=")
    yield "password-pairs", lambda: _fill("password=x1y2 ")
    yield "password-decoys", lambda: _fill("password=a ")
    yield "token-pairs", lambda: _fill("token=Ab3dEf7hIj9kLm1nOp ")
    yield "secret-open-quote", lambda: 'secret="' + _fill("\\a")
    yield "token-long-value", lambda: "token=" + _fill("Ab1")
    yield "api-key-repeated", lambda: _fill("api_key")
    yield "jwt-prefix-repeated", lambda: _fill("eyJ")
    yield "jwt-header-repeated", lambda: _fill("eyJhbGciOiJIUzI1NiJ9.")
    yield "bearer-repeated", lambda: _fill("Authorization: Bearer ")
    yield "ghp-repeated", lambda: _fill("ghp_")
    yield "akia-repeated", lambda: _fill("AKIA")
    yield "slack-hook-repeated", lambda: _fill("https://hooks.slack.com/services/")
    yield "marker-repeated", lambda: _fill("[REDACTED:password]")
    yield "marker-after-key", lambda: "password=" + _fill("[REDACTED:password]")
    # Detectors and normalisation added for the second audit's list.
    yield "mc-repeated", lambda: _fill("mc_")
    yield "mc-id-repeated", lambda: _fill("mc_a1b2c3d4e5_")
    yield "percent-run", lambda: _fill("%41")
    yield "zero-width-run", lambda: _fill("\u200b")
    yield "zero-width-between", lambda: _fill("a\u200b")
    yield "wrapped-lines", lambda: _fill("ab1c\n")
    yield "wrapped-long-lines", lambda: _fill("Zk3mQ9vR2xT7pL0wYc4n" * 20 + "\n")
    yield "continuation-lines", lambda: _fill("ab1c\\\r\n    ")
    yield "mysql-p-repeated", lambda: _fill("mysql -pX1 ")
    yield "flag-repeated", lambda: "curl " + _fill(" -u a:b1")
    yield "cookie-repeated", lambda: _fill("Cookie: ")
    yield "cookie-pairs", lambda: "Cookie: " + _fill("s=Ab3dEf7hIj9kLm1nOp; ")
    yield "hash-prefix-repeated", lambda: _fill("$6$")
    yield "argon-repeated", lambda: _fill("$argon2id$v=19$")
    yield "discord-repeated", lambda: _fill("discord.com/api/webhooks/1/")
    yield "sas-sig-repeated", lambda: _fill("&sig=")
    yield "docker-auth-repeated", lambda: _fill('"auth": "')
    yield "prefix-lines", lambda: _fill("ghp_a1\nb2c3\n")
    yield "prefix-token-lines", lambda: _fill("sk-a1b2c3d4\n")


@pytest.mark.parametrize(
    ("name", "build"), list(_adversarial()), ids=[name for name, _ in _adversarial()]
)
def test_adversarial_input_is_scanned_in_bounded_time(name: str, build: Callable[[], str]) -> None:
    data = build()
    assert len(data) >= MB5
    started = time.perf_counter()
    scan(data)
    elapsed = time.perf_counter() - started
    assert elapsed < ADVERSARIAL_BOUND_S, f"{name}: {elapsed:.2f} s"


def test_a_flood_of_secrets_is_bounded_and_fail_safe() -> None:
    """5 MB of nothing but short passwords: past the flood bound the rest of
    the text is redacted as one finding, so the time stays bounded and no
    secret survives."""
    data = _fill("password=x1y2 ")
    started = time.perf_counter()
    findings = scan(data)
    elapsed = time.perf_counter() - started
    assert elapsed < ADVERSARIAL_BOUND_S
    assert len(findings) == patterns._FLOOD_MATCHES + 1
    assert findings[-1] == Finding(CredentialKind.PASSWORD, findings[-1].start, len(data))
    result = redact(data)
    assert "x1y2" not in result.text
    assert redact(result.text).text == result.text


def test_decoys_cannot_push_a_secret_out_of_reach() -> None:
    decoys = "password=a\n" * (patterns._FLOOD_MATCHES + 5)
    text = decoys + "password=Xk9mQ2vL7pR\n"
    assert "Xk9mQ2vL7pR" not in redact(text).text
    assert "Xk9mQ2vL7pR" in text


def _keyed_matches_per_mb(text: str) -> float:
    lowered = text.lower()
    matches = sum(1 for rule in keyed._KEYED_RULES for _ in rule.pattern.finditer(lowered))
    return matches / (len(text) / 1e6)


def test_dense_credential_code_stays_below_the_flood_bound() -> None:
    # The benign code corpus is nothing but password and token handling, about
    # a thousand times denser than real code; a whole MB of it is still fine.
    code = "\n".join(
        path.read_text(encoding="utf-8") for path in benign_files() if "code" in path.stem
    )
    assert _keyed_matches_per_mb(code) < patterns._FLOOD_MATCHES


def test_real_source_code_is_far_below_the_flood_bound() -> None:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    sources = [
        p for pkg in ("email", "http", "urllib", "logging") for p in (stdlib / pkg).glob("*.py")
    ]
    if not sources:
        pytest.skip("stdlib sources not installed")
    text = "\n".join(p.read_text(encoding="utf-8") for p in sources)
    # 64 MB (the scrub limit) of such code stays below the bound.
    assert _keyed_matches_per_mb(text) * 64 < patterns._FLOOD_MATCHES


_REPEAT_OPS = {
    sre_constants.MAX_REPEAT,
    sre_constants.MIN_REPEAT,
    sre_constants.POSSESSIVE_REPEAT,
}


def quantifier_problems(source: str) -> list[str]:
    """Nested quantifiers (a repeated group that holds a repetition) and unbounded ones."""
    problems: list[str] = []

    def walk(items: Any, inside_repeat: bool) -> None:
        for op, av in items:
            if op in _REPEAT_OPS:
                _, high, sub = av
                if high == sre_constants.MAXREPEAT:
                    problems.append("unbounded quantifier")
                repeats = high == sre_constants.MAXREPEAT or high > 1
                if inside_repeat and repeats:
                    problems.append("nested quantifier")
                walk(sub, inside_repeat or repeats)
            elif op is sre_constants.SUBPATTERN:
                walk(av[3], inside_repeat)
            elif op is sre_constants.BRANCH:
                for branch in av[1]:
                    walk(branch, inside_repeat)
            elif op in (sre_constants.ASSERT, sre_constants.ASSERT_NOT):
                walk(av[1], inside_repeat)
            elif op is sre_constants.ATOMIC_GROUP:
                walk(av, inside_repeat)
            elif op is sre_constants.GROUPREF_EXISTS:
                walk(av[1], inside_repeat)
                if av[2] is not None:
                    walk(av[2], inside_repeat)

    walk(sre_parser.parse(source), False)
    return problems


@pytest.mark.parametrize(
    "source",
    [r"(a+)+", r"(?:\w+\s?)*", r"(x{1,5}){1,5}", r"(?:ab|a{2,3}){1,9}", r"a.*b", r"[a-z]+"],
)
def test_quantifier_check_catches_dangerous_patterns(source: str) -> None:
    assert quantifier_problems(source)


@pytest.mark.parametrize(
    "source",
    [r"[a-z]{1,5}", r"(?:ab){1,3}", r"(?:a{1,3})?", r"x(?<![a-z][\s\S]{3})y{2,4}+"],
)
def test_quantifier_check_accepts_safe_patterns(source: str) -> None:
    assert quantifier_problems(source) == []


def _reachable_patterns(value: object, seen: set[int]) -> Iterator[re.Pattern[str]]:
    if id(value) in seen:
        return
    seen.add(id(value))
    if isinstance(value, re.Pattern):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _reachable_patterns(item, seen)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            yield from _reachable_patterns(item, seen)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for field in dataclasses.fields(value):
            yield from _reachable_patterns(getattr(value, field.name), seen)


def test_every_regex_of_the_package_is_registered() -> None:
    seen: set[int] = set()
    modules = [
        importlib.import_module(f"{gate.__name__}.{info.name}")
        for info in pkgutil.iter_modules(gate.__path__)
    ]
    assert len(modules) >= 10
    reachable = [
        p for module in modules for v in vars(module).values() for p in _reachable_patterns(v, seen)
    ]
    registered = {id(p) for p in patterns._PATTERNS}
    assert len(reachable) >= 20
    assert [p.pattern for p in reachable if id(p) not in registered] == []


def test_no_regex_has_a_nested_or_unbounded_quantifier() -> None:
    assert len(patterns._PATTERNS) >= 20
    bad = {p.pattern: quantifier_problems(p.pattern) for p in patterns._PATTERNS}
    assert {source: problems for source, problems in bad.items() if problems} == {}


# --------------------------------------------------------------------------
# Second audit: Mission Control's own tokens, more formats, and evasions
# --------------------------------------------------------------------------

EVASIONS = CORPORA / "evasions.txt"


def load_evasions() -> list[tuple[CredentialKind, str, list[tuple[int, int]]]]:
    """``evasions.txt``: ``%%``-separated blocks, the first line names the kind."""
    raw = EVASIONS.read_text(encoding="utf-8").rstrip("\n")
    out = []
    for block in raw.split("\n%%\n"):
        kind, _, body = block.partition("\n")
        text, spans = parse_example(body)
        out.append((CredentialKind(kind), text, spans))
    return out


def test_tokens_minted_by_mission_control_are_caught() -> None:
    from app.security.tokens import generate_token

    for _ in range(50):
        token = generate_token(b"k" * 32).plaintext
        for text in (token, f"MC_TOKEN={token}", f"Authorization: Bearer {token}", f"'{token}'"):
            found = scan(text)
            assert [f.kind for f in found] == [CredentialKind.API_KEY], text
            assert token not in redact(text).text


def test_mc_token_shape_only() -> None:
    # The id is 10 lower-case characters and the secret 43 url-safe ones.
    assert scan("mc_session") == []
    assert scan("mc_abc_def") == []
    assert scan("xmc_a1b2c3d4e5_" + rand(43)) == []


def test_evasion_corpus_has_every_evasion() -> None:
    texts = [text for _, text, _ in load_evasions()]
    assert any("\u200b" in t for t in texts)
    assert any("\n" in t for t in texts)
    assert any("%" in t for t in texts)
    assert len(texts) >= 8


@pytest.mark.parametrize("index", range(10))
def test_evasion_is_detected_with_its_kind(index: int) -> None:
    kind, text, spans = load_evasions()[index]
    found = scan(text)
    assert {f.kind for f in found} == {kind}, [(f.kind, text[f.start : f.end]) for f in found]
    for start, end in spans:
        assert any(f.start <= start and end <= f.end for f in found), text
    result = redact(text)
    for start, end in spans:
        secret = text[start:end]
        assert secret not in result.text
        # no piece of the split token survives either
        for piece in re.split(r"[\u200b\u200c\u200d\u2060\ufeff\n\\ ]+", secret):
            if len(piece) >= 12:
                assert piece not in result.text, piece
    assert scan(result.text) == []


def test_without_normalisation_the_evasions_are_missed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Control removal: with the normalised second scan switched off, the
    split, zero-width and percent-encoded tokens are not caught with their kind."""
    monkeypatch.setattr(scanner, "normalised_view", lambda text: None)
    missed = 0
    for kind, text, spans in load_evasions():
        found = scan(text)
        ok = {f.kind for f in found} == {kind} and all(
            any(f.start <= s and e <= f.end for f in found) for s, e in spans
        )
        missed += not ok
    assert missed == len(load_evasions())


@pytest.mark.parametrize(
    "text",
    [
        "ghp_" + rand(12) + "\u200b" + rand(24),
        "ghp_" + rand(20) + "\n" + rand(16),
        "ghp_" + rand(20) + "\r\n    " + rand(16),
        "".join(f"%{ord(c):02X}" for c in "ghp_" + rand(36)),
        "ghp_" + rand(4) + "%" + f"{ord('Q'):02X}" + rand(31),
    ],
)
def test_split_github_token_is_one_finding(text: str) -> None:
    found = scan(text)
    assert [f.kind for f in found] == [CredentialKind.GITHUB_TOKEN]
    assert found[0].start == 0 and found[0].end == len(text)


def test_two_prose_lines_are_not_joined_into_a_secret() -> None:
    text = "token == Punctuation\n            yield index, token\n"
    assert scan(text) == []
    assert scan("password = None\n        proxy_passwd= None\n") == []


def test_too_many_edits_redact_the_rest(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(evasions, "_MAX_EDITS", 100)
    text = "hello " + "%41" * 150 + " tail"
    found = scan(text)
    assert found[-1].end == len(text)
    assert found[-1].start == len("hello ") + 3 * 100


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("mysql -uroot -pS3cr3tPw0rd db", "S3cr3tPw0rd"),
        ("curl -sS -u admin:Pa55w0rd-x https://x", "Pa55w0rd-x"),
        ("curl --user=admin:Pa55w0rd-x https://x", "Pa55w0rd-x"),
        ("ssh-keygen -N 'Tr0ub4dor&3' -f k", "Tr0ub4dor&3"),
        ("sshpass -p Tr0ub4dor3 ssh pi@h", "Tr0ub4dor3"),
    ],
)
def test_command_line_passwords(text: str, secret: str) -> None:
    found = scan(text)
    assert [(f.kind, text[f.start : f.end]) for f in found] == [(CredentialKind.PASSWORD, secret)]


def test_a_flag_without_its_command_is_not_a_password() -> None:
    assert scan("tar -pxf archive.tar; mkdir -pv /a; useradd -u 1000:1000 x") == []
    assert scan("grep -N Tr0ub4dor3 file") == []
