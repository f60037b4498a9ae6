"""ReDoS: every regular expression the application uses, timed on adversarial input.

``tests/hostile/redos_probe.py`` collects the expressions (compiled patterns
reachable from every module under ``app/``, literal patterns passed inline to
``re`` functions, pydantic and OpenAPI ``pattern`` constraints) and builds inputs
of 100 KB from each expression's own alphabet and literal words: long runs of one
character, of a literal prefix, of a prefix followed by body characters, each
ending in a character that makes the match fail. Each input is run through
``search``, ``fullmatch`` and ``finditer``; each run must take under a second.

The timing runs in child processes (two shards, one per core): the ``re`` engine
cannot be interrupted, so a catastrophic expression is killed from outside and
named, instead of hanging the test run.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from app.security.credential_gate import patterns as credential_gate_patterns
from tests.hostile.redos_probe import PER_INPUT_LIMIT_S, collect

REPO = Path(__file__).resolve().parents[2]
SHARDS = 2
#: one expression's whole battery (about 30 inputs x 3 operations) must end in this
PER_EXPRESSION_HARD_S = 30.0
TOTAL_HARD_S = 180.0


@dataclass
class ProbeRun:
    ok: dict[int, tuple[float, str]] = field(default_factory=dict)
    slow: dict[int, tuple[float, str]] = field(default_factory=dict)
    hung: list[int] = field(default_factory=list)
    done: int = 0


def run_probes(
    shards: int, *, per_expression_s: float, env: dict[str, str] | None = None
) -> ProbeRun:
    """Run the probe shards in parallel and supervise them line by line."""
    environment = {**os.environ, **(env or {})}
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.hostile.redos_probe", f"{shard}/{shards}"],
            cwd=REPO,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for shard in range(shards)
    ]
    run = ProbeRun()
    current: dict[int, tuple[int, float]] = {}  # pid -> (expression, started)
    started_all = time.monotonic()
    live = {p.stdout.fileno(): p for p in processes if p.stdout is not None}
    try:
        while live:
            readable, _, _ = select.select(list(live), [], [], 0.1)
            for fd in readable:
                process = live[fd]
                assert process.stdout is not None
                line = process.stdout.readline()
                if not line:
                    del live[fd]
                    continue
                words = line.split(maxsplit=3)
                if words[0] == "BEGIN":
                    current[process.pid] = (int(words[1]), time.monotonic())
                elif words[0] in ("OK", "SLOW"):
                    index, seconds, how = int(words[1]), float(words[2]), words[3].strip()
                    (run.ok if words[0] == "OK" else run.slow)[index] = (seconds, how)
                    current.pop(process.pid, None)
                elif words[0] == "DONE":
                    run.done += 1
            now = time.monotonic()
            for process in processes:
                begun = current.get(process.pid)
                if begun is not None and now - begun[1] > per_expression_s:
                    run.hung.append(begun[0])
                    current.pop(process.pid)
                    process.kill()
            assert now - started_all < TOTAL_HARD_S, "the ReDoS probes took too long overall"
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
            process.wait()
    return run


def test_every_expression_of_the_app_is_collected() -> None:
    expressions = collect()
    sources = {e.source for e in expressions}
    origins = " ".join(e.origin for e in expressions)
    # the credential gate's whole registry, and the expressions of other modules
    assert {p.pattern for p in credential_gate_patterns._PATTERNS} <= sources
    for module in ("app.security.tokens", "app.events.tickets", "app.rules.schemas", "app.ui."):
        assert module in origins, module
    assert "(pydantic)" in origins and "(inline re." in origins
    assert len(expressions) >= 70, len(expressions)


def test_no_expression_backtracks_on_adversarial_input() -> None:
    expressions = collect()
    run = run_probes(SHARDS, per_expression_s=PER_EXPRESSION_HARD_S)
    named = lambda indexes: [(expressions[i].origin, expressions[i].source) for i in indexes]  # noqa: E731
    assert not run.hung, f"killed while matching: {named(run.hung)}"
    assert not run.slow, f"over {PER_INPUT_LIMIT_S} s: {named(run.slow)} {run.slow}"
    assert run.done == SHARDS
    assert set(run.ok) == set(range(len(expressions)))
    worst = sorted(run.ok.items(), key=lambda item: item[1][0], reverse=True)[:5]
    for index, (seconds, how) in worst:
        print(f"{seconds * 1000:8.1f} ms  {expressions[index].origin}  ({how})")


def test_the_harness_catches_a_catastrophic_expression() -> None:
    """The probe is only worth something if it notices a real ReDoS."""
    run = run_probes(1, per_expression_s=3.0, env={"REDOS_EXTRA_PATTERN": r"^(a+)+$"})
    assert run.hung == [0] or 0 in run.slow
