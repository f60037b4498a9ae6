"""The Health page's server-side SVG charts (app/health/charts.py): valid SVG,
accessible, no style attribute (strict CSP), empty state, gaps, escaping."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

from app.core.clock import iso
from app.health import charts
from app.health.charts import (
    HEIGHT,
    LEFT,
    MAX_DRAWN_POINTS,
    RIGHT,
    TOP,
    WIDTH,
    Point,
    health_charts,
    line_chart,
)
from app.health.samples import Sample

SVG = "{http://www.w3.org/2000/svg}"
END = datetime(2026, 5, 2, 12, 0, tzinfo=UTC)
START = END - timedelta(hours=24)
INTERVAL = 300.0


def every(
    n: int, value: float | None = 40.0, step_s: float = INTERVAL, end: datetime = END
) -> list[Point]:
    return [(end - timedelta(seconds=step_s * (n - 1 - i)), value) for i in range(n)]


def draw(points: list[Point], **kwargs: object) -> tuple[charts.Chart, ET.Element]:
    options: dict[str, object] = {
        "key": "cpu",
        "title": "CPU temperature",
        "unit": "°C",
        "start": START,
        "end": END,
        "gap_s": 2.5 * INTERVAL,
    }
    options.update(kwargs)
    chart = line_chart(points, **options)  # type: ignore[arg-type]
    return chart, ET.fromstring(chart.svg)  # parses, or the test fails here


def assert_accessible_and_csp_clean(root: ET.Element, chart: charts.Chart) -> None:
    assert root.tag == f"{SVG}svg"
    assert root.get("role") == "img"
    assert root.get("aria-label") == chart.title
    assert root.get("viewBox") == f"0 0 {WIDTH} {HEIGHT}"
    title = root.find(f"{SVG}title")
    desc = root.find(f"{SVG}desc")
    assert title is not None and title.text == chart.title
    assert desc is not None and desc.text == chart.summary
    assert root.get("aria-describedby") == desc.get("id")
    for element in root.iter():
        assert "style" not in element.attrib, element.tag
        assert not element.tag.endswith("style"), element.tag
        assert not element.tag.endswith("script"), element.tag
        assert not any(name.startswith("on") for name in element.attrib), element.tag
    assert not re.search(r"\sstyle\s*=", chart.svg)


def polylines(root: ET.Element) -> list[list[tuple[float, float]]]:
    lines = []
    for line in root.iter(f"{SVG}polyline"):
        pairs = [p.split(",") for p in (line.get("points") or "").split()]
        lines.append([(float(x), float(y)) for x, y in pairs])
    return lines


def texts(root: ET.Element) -> list[str]:
    return [t.text or "" for t in root.iter(f"{SVG}text")]


def test_a_series_is_one_polyline_with_labels_and_a_description() -> None:
    points = [(t, 40.0 + i % 7) for i, (t, _) in enumerate(every(288))]
    chart, root = draw(points)
    assert_accessible_and_csp_clean(root, chart)
    lines = polylines(root)
    assert len(lines) == 1 and len(lines[0]) == 288
    # every point inside the plot, time running left to right
    xs = [x for x, _ in lines[0]]
    assert xs == sorted(xs)
    assert all(LEFT <= x <= WIDTH - RIGHT for x in xs)
    assert all(TOP <= y <= HEIGHT for _, y in lines[0])
    # the lowest and highest values and the window's start and end are labelled
    labels = texts(root)
    assert "40.0" in labels and "46.0" in labels
    assert "01 May 12:00" in labels and "02 May 12:00 UTC" in labels
    assert (chart.low, chart.high, chart.latest, chart.count) == (40.0, 46.0, 40.0 + 287 % 7, 288)
    assert "lowest 40.0 °C" in chart.summary and "highest 46.0 °C" in chart.summary
    assert "from 2026-05-01 12:00 to 2026-05-02 12:00 UTC" in chart.summary
    assert chart.caption.startswith("latest ") and "288 samples" in chart.caption


def test_higher_values_are_drawn_higher() -> None:
    points: list[Point] = [(END - timedelta(minutes=10), 10.0), (END - timedelta(minutes=5), 90.0)]
    _, root = draw(points)
    ((first, second),) = polylines(root)
    assert second[1] < first[1]  # SVG y grows downwards


def test_an_empty_series_says_no_samples_yet() -> None:
    chart, root = draw([])
    assert_accessible_and_csp_clean(root, chart)
    assert polylines(root) == [] and root.find(f"{SVG}circle") is None
    assert "No samples yet" in texts(root)
    assert chart.latest is None and chart.count == 0
    assert chart.caption == "no samples yet"
    assert "no samples yet" in chart.summary


def test_samples_without_a_value_say_no_readings() -> None:
    chart, root = draw(every(10, None))
    assert_accessible_and_csp_clean(root, chart)
    assert polylines(root) == []
    assert "No readings" in texts(root)
    assert chart.caption == "no readings: the host reports no value"


def test_a_gap_in_time_breaks_the_line() -> None:
    before = every(10, 40.0, end=END - timedelta(hours=3))
    after = every(10, 45.0)
    chart, root = draw(before + after)
    assert_accessible_and_csp_clean(root, chart)
    assert [len(line) for line in polylines(root)] == [10, 10]
    assert "breaks 1 times" in chart.summary
    # without the gap rule it would be one line: the threshold is what breaks it
    _, joined = draw(before + after, gap_s=10 * 3600.0)
    assert [len(line) for line in polylines(joined)] == [20]


def test_a_missing_value_breaks_the_line_and_a_lone_sample_is_a_dot() -> None:
    points = every(7, 50.0)
    points[2] = (points[2][0], None)
    chart, root = draw(points)
    assert [len(line) for line in polylines(root)] == [2, 4]
    lone = every(1, 50.0, end=END - timedelta(hours=12))
    chart, root = draw(lone)
    assert_accessible_and_csp_clean(root, chart)
    assert polylines(root) == []
    dots = list(root.iter(f"{SVG}circle"))
    assert len(dots) == 1 and LEFT < float(dots[0].get("cx") or 0) < WIDTH - RIGHT


def test_a_flat_series_has_one_guide_in_the_middle() -> None:
    chart, root = draw(every(20, 12.5))
    assert len(list(root.iter(f"{SVG}line"))) == 1
    ((*_, last),) = polylines(root)
    assert chart.low == chart.high == 12.5 and TOP < last[1] < HEIGHT


def test_samples_outside_the_window_are_left_out() -> None:
    points = [(START - timedelta(hours=1), 99.0), (END + timedelta(minutes=5), 99.0)]
    points += every(3, 20.0)
    chart, root = draw(points)
    assert chart.high == 20.0 and chart.count == 3
    assert [len(line) for line in polylines(root)] == [3]


def test_many_samples_are_averaged_to_a_bounded_number_of_points() -> None:
    dense = every(24 * 360, 30.0, step_s=10.0)  # one every 10 s for a day
    chart, root = draw(dense, gap_s=25.0)
    drawn = sum(len(line) for line in polylines(root))
    assert 0 < drawn <= MAX_DRAWN_POINTS
    assert len(polylines(root)) == 1  # averaging leaves no false gaps
    assert chart.count == len(dense)
    assert len(chart.svg) < 20_000


def test_text_is_escaped() -> None:
    chart, root = draw(every(3), title='Temp <b>"x"</b> & co', unit="<u>")
    assert_accessible_and_csp_clean(root, chart)
    assert "<b>" not in chart.svg and "&lt;b&gt;" in chart.svg
    title = root.find(f"{SVG}title")
    assert title is not None and title.text == 'Temp <b>"x"</b> & co'


def test_large_numbers_keep_short_labels() -> None:
    assert charts.number(1234.56) == "1,235" and charts.number(12.345) == "12.3"


def test_the_health_page_has_four_charts_from_samples() -> None:
    samples = [
        Sample(
            sampled_at=iso(moment),
            cpu_temperature_c=None,
            memory_used_percent=50.0 + i % 3,
            disk_used_percent=20.0,
            load1=0.5,
            requests_per_minute=float(i),
        )
        for i, (moment, _) in enumerate(every(12))
    ]
    samples.append(samples[0].model_copy(update={"sampled_at": "not a time"}))
    built = health_charts(samples, start=START, end=END, interval_s=INTERVAL)
    assert [c.title for c in built] == [
        "CPU temperature",
        "Memory used",
        "Disk used",
        "Request rate",
    ]
    assert len({c.key for c in built}) == 4
    for chart in built:
        assert_accessible_and_csp_clean(ET.fromstring(chart.svg), chart)
    cpu, memory, disk, rate = built
    assert cpu.latest is None and cpu.count == 12  # no sensor: "no readings"
    assert (memory.low, memory.high) == (50.0, 52.0)
    assert disk.count == 12 and rate.latest == 11.0


def test_the_value_axis_is_widened_to_a_minimum_span_inside_its_bounds() -> None:
    assert charts.value_axis(20.0, 80.0, 10.0, 0.0, 100.0) == (20.0, 80.0)
    assert charts.value_axis(31.0, 32.0, 10.0, 0.0, 100.0) == (26.5, 36.5)
    assert charts.value_axis(0.0, 0.0, 10.0, 0.0, None) == (0.0, 10.0)
    assert charts.value_axis(97.0, 99.0, 10.0, 0.0, 100.0) == (90.0, 100.0)
    assert charts.value_axis(5.0, 5.0, 0.0, None, None) == (5.0, 5.0)


def test_a_small_wobble_is_drawn_small() -> None:
    points = [(t, 31.0 + (i % 2)) for i, (t, _) in enumerate(every(20))]
    _, wide = draw(points)
    _, calm = draw(points, min_span=10.0, floor=0.0, ceiling=100.0)
    spread = [
        max(y for _, y in ln) - min(y for _, y in ln)
        for ln in (polylines(wide)[0], polylines(calm)[0])
    ]
    assert spread[1] < spread[0] / 5
    # the guides still sit at the lowest and highest values and are labelled with them
    assert {"31.0", "32.0"} <= set(texts(calm))


def test_an_idle_request_rate_lies_on_the_floor() -> None:
    _, root = draw(every(20, 0.0), min_span=10.0, floor=0.0)
    ((*_, last),) = polylines(root)
    assert last[1] == round(TOP + (HEIGHT - TOP - charts.BOTTOM) * (1 - charts.INSET), 1)


def test_close_labels_do_not_overlap() -> None:
    points = [(t, 31.2 + 0.6 * (i % 2)) for i, (t, _) in enumerate(every(20))]
    _, root = draw(points, min_span=10.0, floor=0.0, ceiling=100.0)
    labels = {t.text: float(t.get("y") or 0) for t in root.iter(f"{SVG}text")}
    assert labels["31.2"] - labels["31.8"] >= charts.FONT_SIZE
