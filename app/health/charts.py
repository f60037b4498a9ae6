"""Tiny server-side SVG line charts for the Health page (no chart library, no script).

:func:`line_chart` draws one series of ``(time, value)`` over a fixed window: one
``<polyline>`` per run of samples (the line breaks where a value is missing or
where no sample was taken for longer than ``gap_s``; a lone sample is a dot),
dashed guides at the lowest and the highest value labelled with the number (the
unit is in the caption and the description), the start and end time of the
window below, and ``<title>``/``<desc>`` with ``role="img"`` and ``aria-label``
so a screen reader hears the figures. An empty series gives a "no samples yet"
chart.

The strict CSP of the UI allows no ``style=`` attribute and no ``<style>``
element: the SVG uses presentation attributes (``fill``, ``stroke``, ...) and the
classes of ``app/ui/static/app.css`` only. Every text is escaped.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from html import escape

from app.core.clock import parse_iso
from app.health.samples import Sample

WIDTH, HEIGHT = 400, 170
LEFT, RIGHT, TOP, BOTTOM = 52, 8, 10, 26
PLOT_W, PLOT_H = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
#: the lowest and highest values sit this far inside the plot (a fraction of its height)
INSET = 0.08
#: more samples than this are averaged per time bucket before they are drawn
MAX_DRAWN_POINTS = 360
#: consecutive samples further apart than this many intervals break the line
GAP_INTERVALS = 2.5
FONT_SIZE = 13

Point = tuple[datetime, float | None]


@dataclass(frozen=True)
class Chart:
    key: str
    title: str
    unit: str
    #: the ``<svg>`` element; safe to put into a page as is
    svg: str
    #: the figures in plain words (also the SVG's ``<desc>``)
    summary: str
    latest: float | None
    low: float | None
    high: float | None
    count: int

    @property
    def caption(self) -> str:
        """The figures in a few words, for the chart's caption."""
        if self.latest is None or self.low is None or self.high is None:
            return "no readings: the host reports no value" if self.count else "no samples yet"
        return (
            f"latest {number(self.latest)} · lowest {number(self.low)}"
            f" · highest {number(self.high)} · {self.count} samples"
        )


def number(value: float) -> str:
    """One decimal; none from 1 000 on (the axis labels are short)."""
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.1f}"


def fmt(value: float, unit: str) -> str:
    return f"{number(value)} {unit}"


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M")


def _short(moment: datetime) -> str:
    return moment.strftime("%d %b %H:%M")


def _window(points: Iterable[Point], start: datetime, end: datetime) -> list[Point]:
    return sorted((p for p in points if start <= p[0] <= end), key=lambda p: p[0])


def downsample(
    points: Sequence[Point], start: datetime, end: datetime, buckets: int
) -> list[Point]:
    """The mean of each of ``buckets`` equal time slices (empty slices are left out)."""
    span = (end - start).total_seconds()
    if len(points) <= buckets or span <= 0:
        return list(points)
    sums: dict[int, tuple[float, int]] = {}
    for moment, value in points:
        if value is None:
            continue
        index = min(buckets - 1, int((moment - start).total_seconds() / span * buckets))
        total, count = sums.get(index, (0.0, 0))
        sums[index] = (total + value, count + 1)
    width = span / buckets
    return [
        (start + timedelta(seconds=(index + 0.5) * width), total / count)
        for index, (total, count) in sorted(sums.items())
    ]


def value_axis(
    low: float, high: float, min_span: float, floor: float | None, ceiling: float | None
) -> tuple[float, float]:
    """The drawn value range: ``low``..``high`` widened around its middle to
    ``min_span``, then moved (not squeezed) inside ``floor``..``ceiling``."""
    if high - low >= min_span:
        return low, high
    middle = (low + high) / 2
    axis_low, axis_high = middle - min_span / 2, middle + min_span / 2
    if floor is not None and axis_low < floor:
        axis_low, axis_high = floor, floor + min_span
    if ceiling is not None and axis_high > ceiling:
        axis_low, axis_high = ceiling - min_span, ceiling
    return axis_low, axis_high


def segments(points: Sequence[Point], gap_s: float) -> list[list[tuple[datetime, float]]]:
    """Runs of consecutive values: broken at a missing value or a gap over ``gap_s``."""
    runs: list[list[tuple[datetime, float]]] = []
    current: list[tuple[datetime, float]] = []
    previous: datetime | None = None
    for moment, value in points:
        gap = previous is not None and (moment - previous).total_seconds() > gap_s
        if value is None or gap:
            if current:
                runs.append(current)
            current = []
        if value is not None:
            current.append((moment, value))
        previous = moment
    if current:
        runs.append(current)
    return runs


def _svg_open(key: str, label: str, desc: str) -> list[str]:
    ident = f"chart-{key}"
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart-svg" role="img"'
        f' viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}"'
        f' aria-label="{escape(label)}" aria-describedby="{ident}-desc"'
        f' font-size="{FONT_SIZE}" font-family="system-ui, sans-serif">',
        f'<title id="{ident}-title">{escape(label)}</title>',
        f'<desc id="{ident}-desc">{escape(desc)}</desc>',
        f'<rect class="chart-frame" x="{LEFT}" y="{TOP}" width="{PLOT_W}" height="{PLOT_H}"'
        ' fill="#ffffff" stroke="#d0d4da" stroke-width="1"/>',
    ]


def _time_labels(start: datetime, end: datetime) -> list[str]:
    y = HEIGHT - 6
    return [
        f'<text class="chart-label" x="{LEFT}" y="{y}" text-anchor="start"'
        f' fill="#4d4d4d">{escape(_short(start))}</text>',
        f'<text class="chart-label" x="{WIDTH - RIGHT}" y="{y}" text-anchor="end"'
        f' fill="#4d4d4d">{escape(_short(end))} UTC</text>',
    ]


def line_chart(
    points: Iterable[Point],
    *,
    key: str,
    title: str,
    unit: str,
    start: datetime,
    end: datetime,
    gap_s: float,
    min_span: float = 0.0,
    floor: float | None = None,
    ceiling: float | None = None,
    empty_text: str = "No samples yet",
) -> Chart:
    """One series drawn over ``start``..``end`` (both aware datetimes, UTC).

    The value axis spans the lowest to the highest value, widened to at least
    ``min_span`` (kept inside ``floor``..``ceiling``) so that small wobbles of a
    steady figure do not look like swings.
    """
    inside = _window(points, start, end)
    values = [v for _, v in inside if v is not None]
    window = f"from {_stamp(start)} to {_stamp(end)} UTC"
    if not values:
        if inside:
            words = f"{title}: no readings {window} ({len(inside)} samples without a value)."
        else:
            words = f"{title}: {empty_text.lower()} {window}."
        parts = _svg_open(key, title, words)
        parts.append(
            f'<text class="chart-empty" x="{LEFT + PLOT_W / 2:.1f}" y="{TOP + PLOT_H / 2:.1f}"'
            f' text-anchor="middle" dominant-baseline="middle" fill="#4d4d4d">'
            f"{escape(empty_text if not inside else 'No readings')}</text>"
        )
        parts.extend(_time_labels(start, end))
        parts.append("</svg>")
        return Chart(key, title, unit, "".join(parts), words, None, None, None, len(inside))

    low, high, latest = min(values), max(values), values[-1]
    drawn = downsample(inside, start, end, MAX_DRAWN_POINTS)
    if len(drawn) < len(inside):
        gap_s = max(gap_s, GAP_INTERVALS * (end - start).total_seconds() / MAX_DRAWN_POINTS)
    runs = segments(drawn, gap_s)
    span_s = (end - start).total_seconds() or 1.0
    axis_low, axis_high = value_axis(low, high, min_span, floor, ceiling)
    inner = PLOT_H * (1 - 2 * INSET)
    bottom_y = TOP + PLOT_H * (1 - INSET)

    def x_of(moment: datetime) -> float:
        return LEFT + (moment - start).total_seconds() / span_s * PLOT_W

    def y_of(value: float) -> float:
        if axis_high == axis_low:
            return TOP + PLOT_H / 2
        return bottom_y - (value - axis_low) / (axis_high - axis_low) * inner

    gaps = len(runs) - 1
    words = (
        f"{title} {window}: {len(values)} samples; latest {fmt(latest, unit)},"
        f" lowest {fmt(low, unit)}, highest {fmt(high, unit)}"
        + (f"; the line breaks {gaps} times where no samples were taken" if gaps > 0 else "")
        + "."
    )
    parts = _svg_open(key, title, words)
    if high == low:
        guides = [(high, y_of(high), y_of(high))]
    else:
        # two labels closer than a line of text are pushed apart (the guides stay put)
        high_y, low_y = y_of(high), y_of(low)
        push = max(0.0, FONT_SIZE * 1.1 - (low_y - high_y)) / 2
        guides = [(high, high_y, high_y - push), (low, low_y, low_y + push)]
    for value, y, label_y in guides:
        parts.append(
            f'<line class="chart-guide" x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}"'
            f' y2="{y:.1f}" stroke="#d0d4da" stroke-width="1" stroke-dasharray="4 3"/>'
        )
        parts.append(
            f'<text class="chart-label" x="{LEFT - 6}" y="{label_y:.1f}" text-anchor="end"'
            f' dominant-baseline="middle" fill="#4d4d4d">{escape(number(value))}</text>'
        )
    for run in runs:
        if len(run) == 1:
            moment, value = run[0]
            parts.append(
                f'<circle class="chart-dot" cx="{x_of(moment):.1f}" cy="{y_of(value):.1f}"'
                ' r="2.5" fill="#0b57d0"/>'
            )
            continue
        coords = " ".join(f"{x_of(m):.1f},{y_of(v):.1f}" for m, v in run)
        parts.append(
            f'<polyline class="chart-line" points="{coords}" fill="none" stroke="#0b57d0"'
            ' stroke-width="2" stroke-linejoin="round" stroke-linecap="round"/>'
        )
    parts.extend(_time_labels(start, end))
    parts.append("</svg>")
    return Chart(key, title, unit, "".join(parts), words, latest, low, high, len(values))


# --- the Health page's four charts -----------------------------------------------------


@dataclass(frozen=True)
class Series:
    field: str
    title: str
    unit: str
    min_span: float
    floor: float | None = None
    ceiling: float | None = None


SERIES: tuple[Series, ...] = (
    Series("cpu_temperature_c", "CPU temperature", "°C", min_span=10.0),
    Series("memory_used_percent", "Memory used", "%", 10.0, floor=0.0, ceiling=100.0),
    Series("disk_used_percent", "Disk used", "%", 10.0, floor=0.0, ceiling=100.0),
    Series("requests_per_minute", "Request rate", "req/min", 10.0, floor=0.0),
)


def health_charts(
    samples: Sequence[Sample], *, start: datetime, end: datetime, interval_s: float
) -> list[Chart]:
    """The four charts of the Health page from stored samples."""
    stamped: list[tuple[datetime, Sample]] = []
    for sample in samples:
        try:
            stamped.append((parse_iso(sample.sampled_at), sample))
        except ValueError:
            continue  # not written by the sampler: leave it out
    charts: list[Chart] = []
    for series in SERIES:
        points: list[Point] = [(moment, getattr(s, series.field)) for moment, s in stamped]
        charts.append(
            line_chart(
                points,
                key=series.field.replace("_", "-"),
                title=series.title,
                unit=series.unit,
                start=start,
                end=end,
                gap_s=GAP_INTERVALS * interval_s,
                min_span=series.min_span,
                floor=series.floor,
                ceiling=series.ceiling,
            )
        )
    return charts
