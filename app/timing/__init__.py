"""The pure timing rules: a job's timing fields -> the instants it fires at. No I/O.

All datetimes in and out are aware and in UTC; wall time exists only inside evaluation.
"""

from app.timing.errors import TimingError
from app.timing.notes import Occurrence, explained
from app.timing.sequence import count_between, first_fire, latest_fire, next_fire, occurrences
from app.timing.spec import (
    RECURRING,
    Timing,
    TimingSource,
    make_timing,
    parse_instant,
    timing_of,
)
from app.timing.words import describe
from app.timing.zones import canonical_timezone

__all__ = [
    "RECURRING",
    "Occurrence",
    "Timing",
    "TimingError",
    "TimingSource",
    "canonical_timezone",
    "count_between",
    "describe",
    "explained",
    "first_fire",
    "latest_fire",
    "make_timing",
    "next_fire",
    "occurrences",
    "parse_instant",
    "timing_of",
]
