"""Host readings: the figures of the health endpoints and sampler
(``app/health/``) and the temperature of the host checks (``app/care/checks.py``).
Nothing here leaves the server as error text: failures become booleans."""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Any

import psutil


def cpu_temperature_c() -> float | None:
    sensors = getattr(psutil, "sensors_temperatures", None)
    if sensors is None:
        return None
    try:
        readings = sensors()
    except (OSError, RuntimeError):
        return None
    for name in ("cpu_thermal", "coretemp", "k10temp", "soc_thermal"):
        if readings.get(name):
            return float(readings[name][0].current)
    for entries in readings.values():
        if entries:
            return float(entries[0].current)
    return None


def system_figures(state_dir: str, database_path: str) -> dict[str, Any]:
    disk = psutil.disk_usage(state_dir if Path(state_dir).is_dir() else "/")
    memory = psutil.virtual_memory()
    process = psutil.Process()
    size = 0
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(OSError):
            size += Path(database_path + suffix).stat().st_size
    load1, load5, load15 = os.getloadavg()
    return {
        "database_bytes": size,
        "disk_free_bytes": disk.free,
        "disk_used_percent": disk.percent,
        "memory_available_bytes": memory.available,
        "memory_used_percent": memory.percent,
        "process_rss_bytes": process.memory_info().rss,
        "load_average": [round(load1, 2), round(load5, 2), round(load15, 2)],
        "cpu_temperature_c": cpu_temperature_c(),
        "system_uptime_s": int(time.time() - psutil.boot_time()),
    }
