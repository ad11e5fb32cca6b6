"""Microseconds per next_fire() call for each kind of timing (the dispatcher's hot path).

Each kind answers REPEATS rounds of CALLS calls, from instants spread over a year (so caches
of parsed expressions and zones are warm, as in the dispatcher, but every answer is computed);
the table shows the median round.

    .venv/bin/python scripts/bench_timing.py [--calls 20000] [--repeats 5] [--write]

--write replaces the section between the timing markers in docs/BENCHMARKS.md (adding the
markers at the end of the file, or the file, when absent) and leaves other sections alone.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.timing import Timing, describe, make_timing, next_fire  # noqa: E402

BENCHMARKS = ROOT / "docs" / "BENCHMARKS.md"
BEGIN, END = "<!-- timing:begin -->", "<!-- timing:end -->"
FIRST = "2030-01-01T08:00:00Z"

KINDS: list[tuple[str, Timing]] = [
    ("none", make_timing(recurring="none", at=FIRST)),
    ("daily", make_timing(recurring="daily", at=FIRST, timezone="Europe/Berlin")),
    ("weekly", make_timing(recurring="weekly", at=FIRST, timezone="Europe/Berlin")),
    ("interval", make_timing(recurring="interval", at=FIRST, interval=90)),
    ("cron, simple", make_timing(recurring="cron", cron="*/5 * * * *")),
    (
        "cron, complex",
        make_timing(recurring="cron", cron="0 9 * * MON-FRI", timezone="Europe/Berlin"),
    ),
    (
        "cron, six fields",
        make_timing(recurring="cron", cron="*/10 * * * * *", timezone="Europe/Berlin"),
    ),
    (
        "rrule, weekdays",
        make_timing(
            recurring="rrule",
            rrule="FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR;BYHOUR=9;BYMINUTE=0",
            at="2026-01-01T00:00:00",
            timezone="Europe/Berlin",
        ),
    ),
    (
        "rrule, last Friday",
        make_timing(
            recurring="rrule",
            rrule="FREQ=MONTHLY;BYDAY=-1FR;BYHOUR=17;BYMINUTE=0",
            at="2026-01-01T00:00:00",
            timezone="Europe/Berlin",
        ),
    ),
    (
        "rrule, every 5 min",
        make_timing(recurring="rrule", rrule="FREQ=MINUTELY;INTERVAL=5", at="2026-01-01T00:00:00Z"),
    ),
    (
        "daily, holidays excluded",
        make_timing(
            recurring="daily", at=FIRST, timezone="Europe/Berlin", exclude={"holidays": "DE-BY"}
        ),
    ),
    (
        "daily, next business day",
        make_timing(
            recurring="daily",
            at=FIRST,
            timezone="Europe/Berlin",
            exclude={"holidays": "DE-BY"},
            on_excluded="next-business-day",
        ),
    ),
    (
        "daily, dst both passes",
        make_timing(
            recurring="daily",
            at=FIRST,
            timezone="Europe/Berlin",
            dst={"gap": "skip", "repeat": "both"},
        ),
    ),
]


RRULE_VS_CRON = [("rrule, weekdays", "cron, complex"), ("rrule, every 5 min", "cron, simple")]


def instants(count: int) -> list[datetime]:
    """`count` instants spread over 2030 (both DST changes included), fixed by a seed."""
    rng = random.Random(2030)
    start = datetime(2030, 1, 1, tzinfo=UTC)
    return [start + timedelta(seconds=rng.randrange(365 * 86400)) for _ in range(count)]


def measure(timing: Timing, afters: list[datetime], repeats: int) -> float:
    """Median microseconds per call over `repeats` rounds of one call per instant."""
    rounds = []
    for _ in range(repeats):
        began = time.perf_counter()
        for after in afters:
            next_fire(timing, after)
        rounds.append((time.perf_counter() - began) / len(afters) * 1e6)
    return statistics.median(rounds)


def table(calls: int, repeats: int) -> str:
    afters = instants(calls)
    for _, timing in KINDS:  # warm the caches once, as a running dispatcher has
        measure(timing, afters[:100], 1)
    rows = [
        "| kind | timing | µs per call |",
        "| --- | --- | ---: |",
    ]
    took = {}
    for kind, timing in KINDS:
        spec = timing.cron or timing.rrule or f"{timing.recurring} from {FIRST}"
        if timing.interval:
            spec = f"every {timing.interval} s"
        words = describe(timing)
        took[kind] = measure(timing, afters, repeats)
        rows.append(f"| {kind} | `{spec}` ({words}) | {took[kind]:.2f} |")
    rows += ["", "An rrule against the cron that names the same times (the goal: within 3x):", ""]
    for rule, cron in RRULE_VS_CRON:
        rows.append(f"- {rule} / {cron}: {took[rule] / took[cron]:.1f}x")
    return "\n".join(rows)


def section(calls: int, repeats: int) -> str:
    machine = f"{platform.python_implementation()} {platform.python_version()}"
    return "\n".join(
        [
            BEGIN,
            "## Timing rules: next_fire()",
            "",
            f"Median of {repeats} rounds of {calls:,} `next_fire` calls from instants spread "
            f"over 2030; {machine}, {os.cpu_count()} cores, {datetime.now(UTC):%Y-%m-%d}.",
            "Reproduce: `.venv/bin/python scripts/bench_timing.py --write`.",
            "",
            table(calls, repeats),
            END,
        ]
    )


def write(text: str) -> None:
    old = BENCHMARKS.read_text(encoding="utf-8") if BENCHMARKS.exists() else "# Benchmarks\n"
    if BEGIN in old and END in old:
        head, rest = old.split(BEGIN, 1)
        new = head + text + rest.split(END, 1)[1]
    else:
        new = old.rstrip("\n") + "\n\n" + text + "\n"
    BENCHMARKS.parent.mkdir(parents=True, exist_ok=True)
    BENCHMARKS.write_text(new, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--write", action="store_true", help="update docs/BENCHMARKS.md")
    args = parser.parse_args()
    text = section(args.calls, args.repeats)
    print(text)
    if args.write:
        write(text)
        print(f"\nwrote {BENCHMARKS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
