"""Is the wall clock right? A Raspberry Pi has no real-time clock.

It boots with the time it saved at shutdown (``fake-hwclock``) or with 1970 and
jumps once NTP has synchronised it. Until then every wall-clock decision is
suspect: retention would delete by a wrong date, certificates look expired or
not yet valid, stored timestamps are wrong. So:

* :func:`clock_state` says whether the clock is synchronised, from the first
  source that can tell (in this order):

  1. ``/run/systemd/timesync/synchronized`` exists: systemd-timesyncd
     synchronised the clock since boot (a positive answer only; the file lives
     in ``/run``, so a reboot removes it);
  2. ``adjtimex(2)`` (read-only, via ctypes): the kernel's own NTP state;
     ``STA_UNSYNC`` set, or a maximum error of 16 s or more, means not
     synchronised (the rule ``timedatectl`` uses). The API's sandbox
     (``ProtectClock=yes``) denies this call with ``EPERM``; then it has no answer;
  3. ``timedatectl show -p NTPSynchronized --value`` (D-Bus; may be unavailable).

  A clock before :data:`PLAUSIBLE_FLOOR` is wrong whatever a source says.
  When no source can tell, the answer is ``None`` ("unknown") and callers that
  would destroy data treat it as not synchronised (fail safe); the setting
  ``clock_assume_synchronised`` overrides that on hosts where nothing can tell.

* Answers are cached for :data:`CACHE_S` seconds (monotonic), so the health
  page and the doctor do not spawn a process per request.

Tests swap the sources with :func:`use_probe`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from app.core.settings import Settings

TIMESYNC_FLAG = Path("/run/systemd/timesync/synchronized")
#: a wall clock before this is certainly wrong (the release is newer than that)
PLAUSIBLE_FLOOR = datetime(2025, 6, 1, tzinfo=UTC)
CACHE_S = 30.0
STA_UNSYNC = 0x0040
TIME_ERROR = 5
#: timedated treats a maximum error of 16 s or more as "not synchronised"
MAX_ERROR_US = 16_000_000

Source = Callable[[], bool | None]


@dataclass(frozen=True)
class ClockState:
    """``synchronised`` is True, False, or None when no source could tell."""

    synchronised: bool | None
    source: str
    detail: str

    @property
    def trusted(self) -> bool:
        """May the wall clock be used to destroy data (retention)?"""
        return self.synchronised is True

    def as_dict(self) -> dict[str, object]:
        return {"synchronised": self.synchronised, "source": self.source, "detail": self.detail}


# --- sources -------------------------------------------------------------------------


def from_timesyncd(flag: Path = TIMESYNC_FLAG) -> bool | None:
    try:
        return True if flag.exists() else None
    except OSError:
        return None


class _Timex(ctypes.Structure):
    # struct timex of <sys/timex.h> (Linux, LP64 and ILP32 alike: longs are native)
    _fields_ = [
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("constant", ctypes.c_long),
        ("precision", ctypes.c_long),
        ("tolerance", ctypes.c_long),
        ("time_sec", ctypes.c_long),
        ("time_usec", ctypes.c_long),
        ("tick", ctypes.c_long),
        ("ppsfreq", ctypes.c_long),
        ("jitter", ctypes.c_long),
        ("shift", ctypes.c_int),
        ("stabil", ctypes.c_long),
        ("jitcnt", ctypes.c_long),
        ("calcnt", ctypes.c_long),
        ("errcnt", ctypes.c_long),
        ("stbcnt", ctypes.c_long),
        ("tai", ctypes.c_int),
        ("_padding", ctypes.c_int * 11),
    ]


def from_adjtimex() -> bool | None:
    """The kernel's NTP state; None when the call is unavailable or denied."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        call = libc.adjtimex
    except (OSError, AttributeError):
        return None
    timex = _Timex()  # modes = 0: read only, needs no privilege
    result = call(ctypes.byref(timex))
    if result == -1:
        return None  # EPERM under a seccomp filter (ProtectClock=yes), ENOSYS...
    return not (result == TIME_ERROR or timex.status & STA_UNSYNC or timex.maxerror >= MAX_ERROR_US)


def from_timedatectl(timeout_s: float = 3.0) -> bool | None:
    tool = shutil.which("timedatectl")
    if tool is None:
        return None
    try:
        out = subprocess.run(
            [tool, "show", "-p", "NTPSynchronized", "--value"],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    value = out.stdout.strip().lower()
    if out.returncode != 0 or value not in ("yes", "no"):
        return None
    return value == "yes"


DEFAULT_SOURCES: tuple[tuple[str, Source], ...] = (
    ("timesyncd", from_timesyncd),
    ("adjtimex", from_adjtimex),
    ("timedatectl", from_timedatectl),
)


# --- the probe -----------------------------------------------------------------------


class ClockProbe:
    """Asks the sources in order; caches the answer for ``cache_s`` (monotonic)."""

    def __init__(
        self,
        sources: Sequence[tuple[str, Source]] = DEFAULT_SOURCES,
        *,
        cache_s: float = CACHE_S,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sources = tuple(sources)
        self.cache_s = cache_s
        self._now = now
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._cached: tuple[float, ClockState] | None = None

    def state(self) -> ClockState:
        with self._lock:
            if self._cached is not None and self._monotonic() - self._cached[0] < self.cache_s:
                return self._cached[1]
        answer = self._ask()
        with self._lock:
            self._cached = (self._monotonic(), answer)
        return answer

    def _ask(self) -> ClockState:
        now = self._now()
        if now < PLAUSIBLE_FLOOR:
            return ClockState(
                False,
                "plausibility",
                f"the clock says {now:%Y-%m-%d %H:%M} UTC, before this release was made",
            )
        for name, source in self.sources:
            try:
                answer = source()
            except Exception:  # a broken source is no answer
                answer = None
            if answer is True:
                return ClockState(True, name, "the clock is synchronised")
            if answer is False:
                return ClockState(False, name, "the clock is not synchronised (yet)")
        return ClockState(None, "none", "no source could tell whether the clock is synchronised")


PROBE = ClockProbe()


def clock_state(settings: Settings) -> ClockState:
    if settings.clock_assume_synchronised:
        return ClockState(True, "setting", "assumed synchronised (MC_CLOCK_ASSUME_SYNCHRONISED)")
    return PROBE.state()


@contextmanager
def use_probe(probe: ClockProbe) -> Iterator[ClockProbe]:
    """Tests: answer from ``probe`` inside the block."""
    global PROBE
    saved, PROBE = PROBE, probe
    try:
        yield probe
    finally:
        PROBE = saved


def fixed(synchronised: bool | None) -> ClockProbe:
    """A probe with one fixed answer (tests, and hosts with a known clock)."""
    return ClockProbe((("fixed", lambda: synchronised),), cache_s=0)
