"""The health sampler: a background job of the API process that stores one small
row every ``health_sample_interval_s`` (5 min by default) for the Health page's
24-hour charts.

Each sample holds the CPU temperature (None without a sensor), memory and disk
used in percent, the 1-minute load (from :func:`app.care.probes.system_figures`,
run in a thread: psutil blocks) and the API's request rate: the difference of
the edge's in-memory request counter (``app.core.middleware.REQUESTS``) between
two samples, per minute. Nothing else is written: one short write transaction
per interval, which is what an SD card can take for ever.

Samples older than ``health_sample_retention_days`` (7) are removed by the
sampler itself, in the transaction of the first sample and then of one sample
an hour (at most ``PRUNE_BATCH`` rows each time; at the shortest interval of 10 s
that is more than an hour's samples), so the table stays near 2 000 rows and
pruning adds no commit of its own.

Samples carry the wall-clock time. A Pi that boots with a wrong clock stores a
few samples at a wrong time until NTP corrects it; the charts and the JSON
series only show samples inside their window (never one "from the future"),
and retention removes the rest.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from app.care.probes import system_figures
from app.core.clock import iso, utcnow
from app.core.context import AppContext
from app.core.middleware import REQUESTS, RequestCounter
from app.health import samples

log = logging.getLogger("mission_control.health")

#: the first sample this long after start (or after one interval, when that is shorter)
FIRST_SAMPLE_AFTER_S = 30.0
#: old samples are removed with one sample this often
PRUNE_EVERY_S = 3600.0
PRUNE_BATCH = 500


@dataclass(frozen=True)
class Readings:
    """What the host says at one moment (the blocking part of a sample)."""

    cpu_temperature_c: float | None
    memory_used_percent: float
    disk_used_percent: float
    load1: float | None


def read_host(state_dir: str, database_path: str) -> Readings:
    """Blocking: psutil and os calls. Run in a thread."""
    figures = system_figures(state_dir, database_path)
    load = figures.get("load_average") or [None]
    return Readings(
        cpu_temperature_c=figures["cpu_temperature_c"],
        memory_used_percent=float(figures["memory_used_percent"]),
        disk_used_percent=float(figures["disk_used_percent"]),
        load1=float(load[0]) if load[0] is not None else None,
    )


class RequestRate:
    """Requests per minute between two readings of the edge's request counter."""

    def __init__(
        self,
        counter: RequestCounter = REQUESTS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.counter = counter
        self._monotonic = monotonic
        self._total = counter.total
        self._at = monotonic()

    def per_minute(self) -> float:
        """The rate since the previous call (since construction for the first call)."""
        total, at = self.counter.total, self._monotonic()
        requests = max(0, total - self._total)
        elapsed = at - self._at
        self._total, self._at = total, at
        if elapsed <= 0:
            return 0.0
        return round(requests * 60.0 / elapsed, 2)


def _clamp_percent(value: float) -> float:
    return round(min(100.0, max(0.0, value)), 2)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


async def take_sample(
    ctx: AppContext,
    rate: RequestRate,
    *,
    readings: Readings | None = None,
    now: datetime | None = None,
    prune: bool = False,
) -> samples.Sample:
    """Measure (unless ``readings`` are given) and store one sample; with ``prune``,
    remove samples older than the retention period in the same transaction."""
    if readings is None:
        settings = ctx.settings
        readings = await asyncio.to_thread(
            read_host, str(settings.state_dir), str(settings.database_path)
        )
    moment = now or utcnow()
    sample = samples.Sample(
        sampled_at=iso(moment),
        cpu_temperature_c=_round(readings.cpu_temperature_c),
        memory_used_percent=_clamp_percent(readings.memory_used_percent),
        disk_used_percent=_clamp_percent(readings.disk_used_percent),
        load1=None if readings.load1 is None else max(0.0, round(readings.load1, 2)),
        requests_per_minute=rate.per_minute(),
    )
    async with ctx.db.write() as conn:
        await samples.insert_sample(conn, sample)
        if prune:
            keep = timedelta(days=ctx.settings.health_sample_retention_days)
            removed = await samples.delete_samples(conn, iso(moment - keep), PRUNE_BATCH)
            if removed:
                log.info("old health samples removed", extra={"removed": removed})
    return sample


async def health_sampler(ctx: AppContext) -> None:
    """Background job: a first sample soon after start, then one every interval."""
    rate = RequestRate()
    interval = ctx.settings.health_sample_interval_s
    pruned_at: float | None = None
    await asyncio.sleep(min(FIRST_SAMPLE_AFTER_S, interval))
    while True:
        due = pruned_at is None or time.monotonic() - pruned_at >= PRUNE_EVERY_S
        try:
            await take_sample(ctx, rate, prune=due)
            if due:
                pruned_at = time.monotonic()
        except Exception:
            log.exception("health sample failed")
        await asyncio.sleep(interval)
