"""The overview's pictures, computed here and drawn by the templates (inline SVG and CSS).

- run_chart: runs fired per minute over the last hour (bars), their lag's p50 and p99 (lines).
- timeline: what fires in the next hour, one lane per job, in the viewer's zone.
No JavaScript: the server works out the geometry, the template writes it down.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from app import jobs
from app.models import Job
from app.runs import MinuteLag
from app.timing.zones import get_zone

# The run chart's drawing area, in SVG user units (the SVG scales to its container).
# The margins hold the axis labels at the phone layout's doubled font size (app.css); the
# labels are anchored to the outer edges, so a long one grows inwards, never out of view.
WIDTH, HEIGHT = 720, 220
LEFT, RIGHT, TOP, BOTTOM = 64, 96, 12, 28
TIMELINE_LANES = 12
TIMELINE_MARKS = 120  # marks drawn per lane at most: more are thinned out evenly
TIMELINE_TIMES = 720  # times looked at per lane (one each 5 s): more frequent is a solid band


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    title: str


@dataclass(frozen=True)
class Tick:
    position: float
    label: str


@dataclass
class RunChart:
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    right: int = WIDTH - RIGHT
    top: int = TOP
    bottom: int = HEIGHT - BOTTOM
    bars: list[Bar] = field(default_factory=list)
    p50_lines: list[str] = field(default_factory=list)  # polyline point lists
    p99_lines: list[str] = field(default_factory=list)
    lag_points: list[tuple[float, float, str]] = field(default_factory=list)  # p99 points
    p50_points: list[tuple[float, float]] = field(default_factory=list)  # seen when alone
    count_ticks: list[Tick] = field(default_factory=list)
    lag_ticks: list[Tick] = field(default_factory=list)
    time_ticks: list[Tick] = field(default_factory=list)
    total: int = 0
    busiest: int = 0
    latest: MinuteLag | None = None  # the newest minute with runs
    worst_p99: float | None = None  # the highest p99 of the hour, ms


def run_chart(rows: Sequence[MinuteLag], zone: str) -> RunChart:
    """rows: runs fired per minute and their lag percentiles, oldest first, as
    runs.lag_per_minute gives. Bars count runs (left axis); two lines give each minute's
    p50 and p99 lag (right axis, scaled to the hour's highest p99)."""
    chart = RunChart()
    if not rows:
        return chart
    tz = get_zone(zone)
    plot_width = chart.right - chart.left
    plot_height = chart.bottom - chart.top
    slot = plot_width / len(rows)
    chart.total = sum(row.runs for row in rows)
    chart.busiest = max(row.runs for row in rows)
    count_top = nice_ceiling(chart.busiest)
    p99s = [row.p99_ms for row in rows if row.p99_ms is not None]
    chart.worst_p99 = max(p99s) if p99s else None
    lag_top = nice_ceiling(chart.worst_p99 or 0)
    segments: dict[str, list[str]] = {"p50": [], "p99": []}

    def lag_y(value: float) -> float:
        return round(chart.bottom - plot_height * max(0.0, min(value, lag_top)) / lag_top, 2)

    def close(name: str, lines: list[str]) -> None:
        if segments[name]:
            lines.append(" ".join(segments[name]))
            segments[name] = []

    for index, row in enumerate(rows):
        x = chart.left + index * slot
        middle = round(x + slot / 2, 2)
        local = row.minute.astimezone(tz)
        label = f"{local:%H:%M}"
        height = round(plot_height * row.runs / count_top, 2)
        title = f"{label}: {row.runs} run{'s' if row.runs != 1 else ''}"
        if row.runs and row.p50_ms is not None and row.p99_ms is not None:
            title += f", lag p50 {format_ms(row.p50_ms)}, p99 {format_ms(row.p99_ms)}"
            chart.latest = row
            segments["p50"].append(f"{middle},{lag_y(row.p50_ms)}")
            segments["p99"].append(f"{middle},{lag_y(row.p99_ms)}")
            chart.lag_points.append((middle, lag_y(row.p99_ms), title))
            chart.p50_points.append((middle, lag_y(row.p50_ms)))
        else:  # no runs: the lines break
            close("p50", chart.p50_lines)
            close("p99", chart.p99_lines)
        top = round(chart.bottom - height, 2)
        chart.bars.append(Bar(round(x + slot * 0.12, 2), top, round(slot * 0.76, 2), height, title))
        if local.minute % 10 == 0:
            chart.time_ticks.append(Tick(middle, label))
    close("p50", chart.p50_lines)
    close("p99", chart.p99_lines)
    for fraction in (0, 0.5, 1):
        y = round(chart.bottom - plot_height * fraction, 2)
        chart.count_ticks.append(Tick(y, format_count(count_top * fraction)))
        chart.lag_ticks.append(Tick(y, format_ms(lag_top * fraction)))
    return chart


@dataclass(frozen=True)
class Mark:
    left: float  # percent of the hour
    title: str


@dataclass
class Lane:
    job: Job
    marks: list[Mark]
    fires: int
    more: bool  # fires more often than counted
    band_from: float | None = None  # percent: from here on it fires too often to mark


@dataclass
class Timeline:
    start: datetime
    end: datetime
    lanes: list[Lane] = field(default_factory=list)
    ticks: list[Tick] = field(default_factory=list)
    other_jobs: int = 0  # jobs due in the hour that have no lane
    fires: int = 0


def timeline(jobs: Sequence[Job], now: datetime, zone: str, hours: float = 1) -> Timeline:
    """Lanes for the jobs due in [now, now + hours), soonest first (as jobs.due_between gives)."""
    end = now + timedelta(hours=hours)
    span = (end - now).total_seconds()
    tz = get_zone(zone)
    picture = Timeline(now, end)

    def left(t: datetime) -> float:  # percent of the hour
        return round(100 * (t - now).total_seconds() / span, 3)

    for job in jobs:
        times = fire_times(job, end, TIMELINE_TIMES + 1)
        more = len(times) > TIMELINE_TIMES
        times = times[:TIMELINE_TIMES]
        picture.fires += len(times)
        if len(picture.lanes) >= TIMELINE_LANES:
            picture.other_jobs += 1
            continue
        marks = [Mark(left(t), f"{t.astimezone(tz):%H:%M:%S %Z}") for t in thinned(times)]
        lane = Lane(job, marks, len(times), more, band_from=left(times[0]) if more else None)
        picture.lanes.append(lane)
    first_tick = now.astimezone(tz).replace(second=0, microsecond=0)
    first_tick += timedelta(minutes=10 - first_tick.minute % 10)
    tick = first_tick
    while tick < end:
        picture.ticks.append(Tick(left(tick), f"{tick:%H:%M}"))
        tick += timedelta(minutes=10)
    return picture


def thinned(times: list[datetime]) -> list[datetime]:
    """At most TIMELINE_MARKS of the times, evenly spread over all of them (a job firing
    every 10 s keeps marks to the end of the hour instead of stopping 20 minutes in)."""
    if len(times) <= TIMELINE_MARKS:
        return times
    step = (len(times) - 1) / (TIMELINE_MARKS - 1)
    return [times[round(i * step)] for i in range(TIMELINE_MARKS)]


def fire_times(job: Job, before: datetime, limit: int) -> list[datetime]:
    """The job's next run and the occurrences after it, before `before`, at most `limit`."""
    if job.next_run_at is None or job.next_run_at >= before:
        return []
    return [t for t in jobs.upcoming_fires(job, limit) if t < before]


def nice_ceiling(value: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten that is at least `value` (and above 0)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * power >= value:
            return float(step * power)
    return float(10 * power)


def format_count(value: float) -> str:
    return f"{value:g}"


DURATION_UNITS = ((365 * 86400.0, "y"), (86400.0, "d"), (3600.0, "h"), (60.0, "min"), (1.0, "s"))


def format_ms(value: float) -> str:
    """A duration in the unit that keeps it short (an axis label: a few characters)."""
    if value < 1000:
        return f"{value:.0f} ms"
    seconds = value / 1000
    for size, unit in DURATION_UNITS:
        if seconds >= size:
            amount = seconds / size
            return f"{amount:.1f} {unit}" if amount < 10 else f"{amount:,.0f} {unit}"
    return f"{seconds:.1f} s"
