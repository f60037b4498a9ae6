"""Live budgets: what streaming accounting costs the worker, how soon a usage line
is checked against the bound, and how far a run goes past a bound.

1. CPU: 1000 model turns of Claude Code stream-json (partial messages on: token
   deltas, assistant messages, tool results) fed through the runtime's reader and
   the budget check in 64 KiB reads; CPU ms per MB of output.
2. Lag: a child process (through ``run_confined``, as a run) prints the same 1000
   turns, stamping each ``message_start`` / ``message_delta`` with the monotonic
   clock when written; the worker side records the time when the budget check for
   that line has run. Median, p99 and worst over the usage lines.
3. Overshoot: 20 runs through the real worker at a mission bound ($1.10 left,
   $0.45 a turn). With the real Claude Code CLI (pinned, installed by
   ``make test``) against the scripted model on loopback when it is there, else
   the bundled demo agent. Prints the cost and tokens past the bound, worst of 20.

Plain lines out, no asserts. Loopback only; bounded counts.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from app.profiles.prices import load_prices  # noqa: E402
from app.profiles.profiles import Limits  # noqa: E402
from app.runner.accounting import AgentQuota, AgentUsage  # noqa: E402
from app.runner.budget import LiveBudget  # noqa: E402
from app.runner.claude_code import ClaudeStream  # noqa: E402
from app.runner.process import run_confined  # noqa: E402
from app.runner.runtime import StreamUsage  # noqa: E402

TURNS = 1000
PRICE = load_prices(None).lookup("claude-sonnet-4-5")


def _line(obj: object) -> bytes:
    return (json.dumps(obj, separators=(",", ":")) + "\n").encode()


def turn_lines(index: int, stamp: int = 0) -> list[bytes]:
    """One model turn as Claude Code prints it with --include-partial-messages."""
    mid = f"msg_{index}_{stamp}"
    usage = {"input_tokens": 2000, "output_tokens": 1, "cache_read_input_tokens": 8000}
    lines = [
        _line(
            {
                "type": "stream_event",
                "event": {"type": "message_start", "message": {"id": mid, "usage": usage}},
                "session_id": "s",
            }
        ),
        _line(
            {
                "type": "stream_event",
                "event": {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                },
                "session_id": "s",
            }
        ),
    ]
    lines += [
        _line(
            {
                "type": "stream_event",
                "event": {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": "token "},
                },
                "session_id": "s",
            }
        )
        for _ in range(40)
    ]
    lines += [
        _line(
            {
                "type": "assistant",
                "message": {
                    "id": mid,
                    "content": [
                        {"type": "text", "text": "token " * 40},
                        {"type": "tool_use", "name": "Read", "input": {"file_path": "a.py"}},
                    ],
                    "usage": usage,
                },
                "session_id": "s",
            }
        ),
        _line(
            {
                "type": "stream_event",
                "event": {"type": "message_delta", "usage": {"output_tokens": 300}},
                "session_id": "s",
            }
        ),
        _line(
            {
                "type": "user",
                "message": {"content": [{"type": "tool_result", "content": "x = 1\n" * 200}]},
                "session_id": "s",
            }
        ),
    ]
    return lines


def budget() -> LiveBudget:
    return LiveBudget.start(
        price=PRICE,
        agent_id=1,
        quota=AgentQuota(10**12, 10**9, 1000),
        usage=AgentUsage(0, 0.0, 0),
        mission=None,
    )


def bench_cpu() -> None:
    data = b"".join(line for i in range(TURNS) for line in turn_lines(i))
    live = budget()
    stream = ClaudeStream(granted=frozenset({"Read"}), on_usage=live.check)
    chunk = 64 * 1024
    started = time.process_time()
    for offset in range(0, len(data), chunk):
        stream.feed(data[offset : offset + chunk])
    stream.close()
    cpu_ms = (time.process_time() - started) * 1000
    mb = len(data) / 1e6
    print(f"stream-json: {TURNS} turns, {mb:.1f} MB, {stream.lines} lines, {live.checks} checks")
    print(f"streaming accounting CPU: {cpu_ms:.0f} ms total, {cpu_ms / mb:.1f} ms per MB")


CHILD = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
from bench.bench_live_budget import turn_lines
out = sys.stdout.buffer
for i in range(int(sys.argv[2])):
    for line in turn_lines(i, time.monotonic_ns()):
        out.write(line)
        out.flush()
    time.sleep(0.002)
"""


async def bench_lag() -> None:
    lags: list[float] = []
    stream = ClaudeStream()
    live = budget()

    def on_usage(usage: StreamUsage) -> None:
        live.check(usage)
        turn = stream.current_turn or ""
        stamp = int(turn.rsplit("_", 1)[-1] or 0)
        lags.append((time.monotonic_ns() - stamp) / 1e6)

    stream.on_usage = on_usage
    with tempfile.TemporaryDirectory() as tmp:
        result = await run_confined(
            [sys.executable, "-c", CHILD, str(ROOT), str(TURNS)],
            stdin_data=b"",
            env={},
            cwd=Path(tmp),
            limits=Limits(
                cpu_seconds=120, wall_clock_seconds=120, stdout_cap_bytes=64 * 1024 * 1024
            ),
            stdout_sink=stream,
        )
    lags.sort()
    print(
        f"usage line -> bound check over a pipe ({len(lags)} usage lines, exit"
        f" {result.exit_code}): median {statistics.median(lags):.3f} ms,"
        f" p99 {lags[int(len(lags) * 0.99) - 1]:.3f} ms, worst {lags[-1]:.3f} ms"
    )


async def bench_overshoot(runs: int = 20) -> None:
    from tests.support.model_server import ModelServer, tool
    from tests.support.worker import Rows, make_settings, running_worker, write_profiles

    real = shutil.which("claude") is not None
    left = 1.10
    overs_usd: list[float] = []
    overs_tokens: list[int] = []
    started = time.monotonic()
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as tmp:
            tmp_path = Path(tmp)
            settings = make_settings(tmp_path, runner_sandbox="auto")
            rows = Rows(settings.database_path)
            script = [
                tool(
                    "Read",
                    {"file_path": "README.md"},
                    input_tokens=100_000,
                    output_tokens=10_000,
                    delay_s=0.3,
                )
                for _ in range(12)
            ]
            with ModelServer(script) as server:
                if real:
                    creds = tmp_path / "creds"
                    creds.mkdir(mode=0o755)
                    env_file = creds / "anthropic.env"
                    env_file.write_text(
                        "ANTHROPIC_API_KEY=sk-ant-bench\n"
                        f"ANTHROPIC_BASE_URL={server.base_url}\n"
                        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1\n"
                    )
                    env_file.chmod(0o600)
                    spec = {
                        "runtime": "claude-code",
                        "argv": ["claude", "--model", "{model}"],
                        "env_allow": [
                            "ANTHROPIC_API_KEY",
                            "ANTHROPIC_BASE_URL",
                            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC",
                        ],
                        "credential_file": str(env_file),
                        "limits": {
                            "wall_clock_seconds": 120,
                            "address_space_mb": 65536,
                            "processes": 512,
                            "open_files": 1024,
                        },
                    }
                    model = "claude-sonnet-4-5"
                else:
                    spec = {
                        "runtime": "claude-code",
                        "price_fallback": "demo",
                        "argv": [
                            "{python}",
                            "-I",
                            "-m",
                            "app.runner.demo_agent",
                            "--model",
                            "{model}",
                        ],
                        "limits": {"wall_clock_seconds": 120},
                    }
                    model = "claude-sonnet-4-5"
                write_profiles(tmp_path, {"p": spec})
                agent = rows.agent(profile="p", model=model, tools=("read_files",))
                mission = rows.mission(cost=left + 0.10, spent_cost=0.10)
                description = "DEMO:turns=12\nDEMO:turn_sleep=0.3\nDEMO:usage=1200000:120000"
                _, conversation = rows.task(
                    agent, "spend", description, mission_id=mission, mission_step=0
                )
                async with running_worker(settings) as worker:
                    await worker.run_once()
            assert conversation is not None
            row = rows.conversation(conversation)
            overs_usd.append(float(row["cost_usd"]) - left)
            price_tokens = 110_000  # tokens per turn
            turns_left = left / 0.45
            overs_tokens.append(
                int(row["input_tokens"] + row["output_tokens"] - turns_left * price_tokens)
            )
    print(
        f"overshoot at a mission bound ({'Claude Code CLI' if real else 'demo agent'},"
        f" {runs} runs, ${left:.2f} left, $0.45 a turn, {time.monotonic() - started:.0f} s):"
        f" cost past the bound median ${statistics.median(overs_usd):.3f},"
        f" worst ${max(overs_usd):.3f}; tokens past it worst {max(overs_tokens)}"
    )


def main() -> None:
    bench_cpu()
    asyncio.run(bench_lag())
    asyncio.run(bench_overshoot())


if __name__ == "__main__":
    main()
