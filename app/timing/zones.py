"""Time zones: canonical names, wall time <-> instant, and where the UTC offset changes.

Wall times are naive datetimes (fold always 0); instants are aware datetimes in UTC.
"""

from __future__ import annotations

import functools
import zoneinfo
from datetime import UTC, datetime, timedelta, tzinfo
from importlib import resources

from app.timing.errors import TimingError

# Offsets are sampled this far apart to find transitions. Every modern zone keeps an offset for
# weeks, so a change can't hide between two samples.
_PROBE_SECONDS = 6 * 3600
# Below and above these years no transitions are computed (instants stay out of that range).
_FIRST_YEAR = 1900
_LAST_YEAR = 9998
_NOT_ZONES = frozenset({"Factory", "localtime", "posixrules"})


@functools.cache
def _zone_names() -> dict[str, str]:
    """Every loadable zone name, keyed by its lower-case spelling."""
    names = zoneinfo.available_timezones() - _NOT_ZONES
    return {name.lower(): name for name in names}


@functools.cache
def _tzdb() -> tuple[dict[str, str], frozenset[str]]:
    """(link name -> target zone, names that tzdb lists as a region's zone), from `tzdata`."""
    links: dict[str, str] = {}
    listed: set[str] = set()
    try:
        folder = resources.files("tzdata").joinpath("zoneinfo")
        data = folder.joinpath("tzdata.zi").read_text(encoding="utf-8")
        tables = [
            folder.joinpath(tab).read_text(encoding="utf-8") for tab in ("zone.tab", "zone1970.tab")
        ]
    except (ModuleNotFoundError, OSError):  # no tzdata package: names are taken as they come
        return links, frozenset()
    for line in data.splitlines():
        if line.startswith("L "):
            _, target, name = line.split()
            links[name] = target
    for table in tables:
        for line in table.splitlines():
            if line and not line.startswith("#"):
                listed.add(line.split("\t")[2])
    return links, frozenset(listed)


def canonical_timezone(name: str) -> str:
    """The canonical IANA name: case fixed, old names (Europe/Kiev) made new (Europe/Kyiv).

    A name that tzdb lists as a region's own zone (Europe/Oslo) is kept even where tzdb has made
    it an alias of a neighbour's rules; other aliases become their target; UTC's aliases, "UTC".
    """
    if not isinstance(name, str) or not name.strip():
        raise TimingError("timezone", "the time zone must be an IANA name such as Europe/Berlin")
    return _canonical(name.strip())


@functools.lru_cache(maxsize=1024)
def _canonical(name: str) -> str:
    exact = _zone_names().get(name.lower())
    if exact is None:
        raise TimingError("timezone", f"unknown time zone {name!r}")
    links, listed = _tzdb()
    target = links.get(exact, exact)
    if target == "Etc/UTC":
        return "UTC"
    canonical = exact if exact in listed else target
    try:
        get_zone(canonical)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise TimingError("timezone", f"unknown time zone {name!r}") from None
    return canonical


@functools.lru_cache(maxsize=1024)
def get_zone(name: str) -> tzinfo:
    """The tzinfo for a canonical name; UTC is datetime.UTC itself, which makes its paths cheap."""
    return UTC if name == "UTC" else zoneinfo.ZoneInfo(name)


def to_wall(instant: datetime, zone: tzinfo) -> datetime:
    """The wall time (naive, fold 0) that `instant` shows in `zone`."""
    return instant.astimezone(zone).replace(tzinfo=None, fold=0)


def to_instant(wall: datetime, zone: tzinfo) -> datetime:
    """The first instant whose clock in `zone` reads `wall`.

    A wall time that happens twice gives its first occurrence; one that never happens (it is in
    a spring-forward gap) gives the first instant after the gap. That is the Debian cron rule.
    """
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if zone is UTC or to_wall(first, zone) == wall:
        return first
    # In a gap fold=0 reads the wall time with the offset before the jump, which lands after it;
    # fold=1 uses the offset after the jump and lands before it: the jump lies in between.
    before = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    jump = first_transition(zone, before, first)
    return jump if jump is not None else first


def fold_shift(instant: datetime, zone: tzinfo) -> timedelta:
    """How far the clock was set back if `instant` is in the second pass of a fall-back, else 0."""
    local = instant.astimezone(zone)
    if not local.fold:
        return timedelta(0)
    earlier = local.replace(fold=0).utcoffset()
    later = local.utcoffset()
    if earlier is None or later is None:
        return timedelta(0)
    return earlier - later


def offset_at(instant: datetime, zone: tzinfo) -> timedelta:
    return instant.astimezone(zone).utcoffset() or timedelta(0)


def first_transition(zone: tzinfo, after: datetime, until: datetime) -> datetime | None:
    """The first instant T with after < T <= until where the zone's UTC offset changes."""
    if zone is UTC:
        return None
    for year in range(max(after.year, _FIRST_YEAR), min(until.year, _LAST_YEAR) + 1):
        for jump in _transitions(zone, year):
            if after < jump <= until:
                return jump
            if jump > until:
                return None
    return None


def last_transition(zone: tzinfo, after: datetime, until: datetime) -> datetime | None:
    """The last instant T with after < T <= until where the zone's UTC offset changes."""
    if zone is UTC:
        return None
    for year in range(min(until.year, _LAST_YEAR), max(after.year, _FIRST_YEAR) - 1, -1):
        for jump in reversed(_transitions(zone, year)):
            if after < jump <= until:
                return jump
            if jump <= after:
                return None
    return None


@functools.lru_cache(maxsize=4096)
def _transitions(zone: tzinfo, year: int) -> tuple[datetime, ...]:
    """The instants T in (Jan 1 of `year`, Jan 1 of the next year] UTC where the offset changes.

    zoneinfo does not publish its transitions, so they are found by sampling the offset and
    bisecting each change down to the second. Cached: one zone-year costs about a millisecond.
    """
    if year < _FIRST_YEAR or year > _LAST_YEAR:
        return ()
    start = int(datetime(year, 1, 1, tzinfo=UTC).timestamp())
    end = int(datetime(year + 1, 1, 1, tzinfo=UTC).timestamp())
    found: list[datetime] = []
    low, low_offset = start, _offset(zone, start)
    while low < end:
        high = min(low + _PROBE_SECONDS, end)
        high_offset = _offset(zone, high)
        if high_offset != low_offset:
            found.append(datetime.fromtimestamp(_bisect(zone, low, high, low_offset), UTC))
        low, low_offset = high, high_offset
    return tuple(found)


def _bisect(zone: tzinfo, low: int, high: int, low_offset: timedelta) -> int:
    """The first second in (low, high] whose offset differs from `low_offset`."""
    while high - low > 1:
        middle = (low + high) // 2
        if _offset(zone, middle) == low_offset:
            low = middle
        else:
            high = middle
    return high


def _offset(zone: tzinfo, timestamp: int) -> timedelta:
    return datetime.fromtimestamp(timestamp, zone).utcoffset() or timedelta(0)


def to_instant_by(wall: datetime, zone: tzinfo, *, gap: str, pick: str) -> datetime | None:
    """to_instant with a job's own DST policy: `gap` "shift" (the first instant after the gap,
    as to_instant) or "skip" (None); `pick` "first" or "last" of a wall time that happens
    twice. Each choice keeps the mapping non-decreasing in the wall time, which the searches
    rely on ("both" is the merge of "first" and "last", done by the caller)."""
    first = to_instant(wall, zone)
    if gap == "skip" and to_wall(first, zone) != wall:
        return None
    if pick == "last" and zone is not UTC:
        later = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
        if later > first and to_wall(later, zone) == wall:
            return later
    return first


def repeated(instant: datetime, zone: tzinfo) -> int:
    """0 if `instant`'s wall time happens once; 1 or 2: which pass of a fall-back it is in."""
    local = instant.astimezone(zone)
    other = local.replace(fold=1 - local.fold)
    if other.utcoffset() == local.utcoffset():
        return 0
    if to_wall(other.astimezone(UTC), zone) != to_wall(instant, zone):
        return 0
    return local.fold + 1
