"""Overhead of a confined demo run: prints plain figures, asserts nothing.

    .venv/bin/python bench/bench_runner_spawn.py [RUNS]

Compares, for the bundled demo agent (``python -I -m app.runner.demo_agent``):
  bare     asyncio.create_subprocess_exec + communicate, inherited env, no limits
  confined the whole runner path: build_child_env + render_argv + run_confined
           (clean env, private TMPDIR, new session, rlimits, caps, session sweep)
           + reply_from_run, with rlimits applied by prlimit and by preexec setrlimit
and the cost of one /proc session scan (done a few times per run).
"""

from __future__ import annotations

import asyncio
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.profiles.environment import build_child_env  # noqa: E402
from app.profiles.profiles import (  # noqa: E402
    EXAMPLE_PROFILES_PATH,
    Profile,
    load_profiles,
    render_argv,
)
from app.runner import process  # noqa: E402
from app.runner.output import reply_from_run  # noqa: E402

PROMPT = b"Summarise the open tasks of the project\nthree are blocked on review\n"


def figures(name: str, samples_ms: list[float]) -> float:
    ordered = sorted(samples_ms)
    median = statistics.median(ordered)
    p90 = ordered[max(0, int(len(ordered) * 0.9) - 1)]
    print(
        f"{name:<28} n={len(ordered):<3} median={median:7.2f} ms  p90={p90:7.2f} ms  "
        f"min={ordered[0]:7.2f} ms  max={ordered[-1]:7.2f} ms"
    )
    return median


async def bare(argv: list[str], cwd: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=cwd,
    )
    out, _ = await proc.communicate(PROMPT)
    assert b'"type": "result"' in out


async def confined(profile: Profile, cwd: Path, method: process.LimitMethod) -> None:
    env = build_child_env(profile, require_root_owned=False)
    argv = render_argv(profile, workspace=cwd, model="demo")
    run = await process.run_confined(
        argv, stdin_data=PROMPT, env=env, cwd=cwd, limits=profile.limits, limit_method=method
    )
    reply = reply_from_run(run)
    if reply.is_error:
        raise SystemExit(f"demo run failed: {run.reason} {run.stderr[:300]!r}")


async def main(runs: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="mc-bench-"))
    try:
        etc = work / "etc"
        etc.mkdir(mode=0o755)
        etc.chmod(0o755)
        profiles_path = etc / "profiles.toml"
        shutil.copyfile(EXAMPLE_PROFILES_PATH, profiles_path)
        profiles_path.chmod(0o644)
        started = time.perf_counter()
        profile = load_profiles(profiles_path, require_root_owned=False)["demo"]
        load_ms = (time.perf_counter() - started) * 1000
        cwd = work / "workspace"
        cwd.mkdir()
        argv = render_argv(profile, workspace=cwd, model="demo")

        print(f"python {platform.python_version()} on {platform.machine()} {platform.system()}")
        print(f"cpus {os.cpu_count()}, prlimit {process.find_prlimit() or 'absent'}")
        print(f"profiles file load+validate: {load_ms:.2f} ms (once per worker start)")
        # warm-up: page cache, bytecode cache of the demo agent
        for _ in range(3):
            await bare(argv, cwd)
            await confined(profile, cwd, "auto")

        methods: list[process.LimitMethod] = ["setrlimit"]
        if process.find_prlimit():
            methods.insert(0, "prlimit")
        # interleaved rounds, so that load from other processes hits every variant alike
        samples: dict[str, list[float]] = {"bare": [], **{m: [] for m in methods}}
        for _ in range(runs):
            for name in samples:
                started = time.perf_counter()
                if name == "bare":
                    await bare(argv, cwd)
                else:
                    await confined(profile, cwd, name)  # type: ignore[arg-type]
                samples[name].append((time.perf_counter() - started) * 1000)
        bare_ms = figures("bare spawn (no confinement)", samples["bare"])
        bare_min = min(samples["bare"])
        for method in methods:
            median = figures(f"confined ({method})", samples[method])
            print(
                f"  overhead vs bare ({method}): {median - bare_ms:+.2f} ms median, "
                f"{min(samples[method]) - bare_min:+.2f} ms min-to-min"
            )

        scans = []
        for _ in range(200):
            started = time.perf_counter()
            process.session_members(os.getsid(0))
            scans.append((time.perf_counter() - started) * 1000)
        print(
            f"/proc session scan: median {statistics.median(scans):.3f} ms "
            f"over {len(os.listdir('/proc'))} /proc entries"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 50))
