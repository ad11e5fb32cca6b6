"""The rules of a job's state: every change to `status` and `next_run_at` is decided here.

Pure: a job's state and the instant in, its next state and what to audit out. The job store
(create, update, pause, resume, run now) and the dispatcher (fire, complete, a target that
said "gone") both call these functions and write what they answer; neither decides a
job's state by rules of its own.

Invariant: next_run_at is set exactly when the job is active and has a next occurrence.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from app import timing

ACTIVE, PAUSED, COMPLETED = "active", "paused", "completed"
# Deleted while runs of it were still to be delivered: gone for every caller, it fires no
# more, and the retention task removes it (with its history) once those runs are done.
DELETED = "deleted"
# The work one missed-occurrence count may take (an interval is counted exactly anyway).
SKIP_COUNT_CAP = 10_000
_TICK = timedelta(microseconds=1)  # "from due on" is "after due - _TICK"


@dataclass(frozen=True, slots=True)
class JobState:
    status: str
    next_run_at: datetime | None = None
    run_count: int = 0  # every run, run now included
    last_run_at: datetime | None = None
    occurrence_count: int = 0  # occurrences fired under the current rule (maxRuns counts these)
    last_occurrence_at: datetime | None = None  # the latest one's nominal time
    skipped_count: int = 0
    due_since: datetime | None = None  # when its occurrences became due to the service
    # A flexible window's shift: each occurrence fires this long after its nominal time.
    # next_run_at above is nominal; the column holds nominal + offset, so the dispatcher's
    # one index range over next_run_at still finds what is due to fire.
    offset: timedelta = timedelta(0)

    @classmethod
    def of(cls, job: Any) -> JobState:
        """The state of a Job or of a row with the same column names."""
        offset = window_offset(job.id, job.window)
        planned = job.next_run_at
        return cls(
            status=job.status,
            next_run_at=planned - offset if planned is not None and offset else planned,
            run_count=job.run_count or 0,
            last_run_at=job.last_run_at,
            occurrence_count=job.occurrence_count or 0,
            last_occurrence_at=job.last_occurrence_at,
            skipped_count=job.skipped_count or 0,
            due_since=job.due_since,
            offset=offset,
        )

    def columns(self) -> dict[str, Any]:
        """The job columns this state is stored in."""
        upcoming = self.next_run_at
        return {
            "status": self.status,
            "next_run_at": upcoming + self.offset if upcoming is not None else None,
            "run_count": self.run_count,
            "last_run_at": self.last_run_at,
            "occurrence_count": self.occurrence_count,
            "last_occurrence_at": self.last_occurrence_at,
            "skipped_count": self.skipped_count,
            "due_since": self.due_since,
        }


def window_offset(job_id: Any, window: int | None) -> timedelta:
    """Where in its flexible window [nominal, nominal + window) a job fires: a point taken
    from the job's id (like cron's H in Jenkins), the same for each of its occurrences, so
    restarts and several dispatchers agree, its occurrences keep their order, and a
    million jobs due at one time spread evenly over the window (ids are random)."""
    if not window:
        return timedelta(0)
    digest = hashlib.blake2b(str(job_id).encode(), digest_size=8).digest()
    return timedelta(milliseconds=int.from_bytes(digest, "big") % (window * 1000))


@dataclass(frozen=True, slots=True)
class Audit:
    action: str
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class Change:
    """A job's next state, the occurrences to fire on the way, and what to audit."""

    state: JobState
    audits: tuple[Audit, ...] = ()
    fire_times: tuple[datetime, ...] = ()


@dataclass(frozen=True, slots=True)
class MisfirePolicy:
    """What to do with occurrences that were missed (the dispatcher was down or behind)."""

    policy: str = "coalesce"  # coalesce | skip | all
    grace: float = 60.0  # seconds late before an occurrence counts as missed (skip)
    catch_up_limit: int = 100  # "all" fires at most this many missed occurrences


# -- the store's transitions ------------------------------------------------------------------


def schedule(rules: timing.Timing, state: JobState, now: datetime, *, paused: bool) -> JobState:
    """A job just created or changed: its next run from its rule and its runs so far."""
    status = PAUSED if paused else ACTIVE
    if state.last_occurrence_at is None:  # a new sequence, due to the service from now
        state = replace(state, due_since=now)
        upcoming = _first_from(rules, now)
    else:
        upcoming = timing.next_fire(rules, state.last_occurrence_at, fired=state.occurrence_count)
    if upcoming is None or _reached_max_runs(rules, state.occurrence_count):
        return replace(state, status=COMPLETED, next_run_at=None)
    return replace(state, status=status, next_run_at=upcoming if status == ACTIVE else None)


def _first_from(rules: timing.Timing, now: datetime) -> datetime | None:
    """Where a new sequence starts. A one-shot in the past fires at once; a recurring rule
    starts at its next occurrence from now (the current second included), as EventBridge
    does: catching up is for downtime, not for an anchor written in the past."""
    first = timing.first_fire(rules, now)
    since = now.replace(microsecond=0)
    if rules.recurring == "none" or first is None or first >= since:
        return first
    return timing.next_fire(rules, since - timedelta(microseconds=1))


def new_rule(state: JobState) -> JobState:
    """A changed rule starts a new sequence: the occurrences so far no longer decide the next."""
    return replace(state, occurrence_count=0, last_occurrence_at=None)


def pause(state: JobState, *, detail: str | None = None, new_terms: bool = False) -> Change:
    """Pause an active job; a paused one only takes new terms (a note, an end), audited."""
    if state.status == PAUSED and new_terms:
        return Change(state, (Audit("pause", detail),))
    if state.status != ACTIVE:
        return Change(state)
    return Change(replace(state, status=PAUSED, next_run_at=None), (Audit("pause", detail),))


def resume(
    rules: timing.Timing, state: JobState, now: datetime, *, detail: str | None = None
) -> Change:
    """Resume from now: occurrences that fell while paused are not fired."""
    if state.status != PAUSED:
        return Change(state)
    first = timing.first_fire(rules, now)
    if state.last_occurrence_at is None and first is not None and first >= now:
        upcoming: datetime | None = first
    else:
        upcoming = timing.next_fire(rules, now, fired=state.occurrence_count)
    status = ACTIVE if upcoming is not None else COMPLETED
    resumed = replace(state, status=status, next_run_at=upcoming, due_since=now)
    return Change(resumed, (Audit("resume", detail),))


def due_at(state: JobState, scheduled_for: datetime) -> datetime:
    """When the service could first have fired this occurrence (its lag counts from here):
    its time in the window, or when the job was created, changed or resumed if later."""
    planned = scheduled_for + state.offset
    if state.due_since is None or state.due_since <= planned:
        return planned
    return state.due_since


def run_now(state: JobState, now: datetime) -> Change:
    """One run now, outside the rule: it counts as a run, not as an occurrence (maxRuns)."""
    counted = replace(state, run_count=state.run_count + 1, last_run_at=now)
    return Change(counted, (Audit("run"),))


def delete_later(state: JobState) -> JobState:
    """A deleted job whose runs are still being delivered: it keeps its row (their payload
    and target) but never fires again."""
    return replace(state, status=DELETED, next_run_at=None)


def gone(state: JobState, reason: str) -> Change:
    """The target said the job should stop (a webhook's 410): pause it."""
    return pause(state, detail=reason)


# -- the dispatcher's transition ----------------------------------------------------------


def fire(rules: timing.Timing, state: JobState, now: datetime, misfire: MisfirePolicy) -> Change:
    """A due job: the occurrences to fire now and the job's next state. With a flexible
    window the rule runs on a clock shifted by the job's offset: what is due at `now` is
    what was nominally due at now - offset."""
    now = now - state.offset
    due = state.next_run_at
    assert due is not None and state.status == ACTIVE, "only an active, due job fires"
    if misfire.policy == "all":
        return _fire_all(rules, state, due, now, misfire.catch_up_limit)
    latest = timing.latest_fire(rules, due, now) or due
    if misfire.policy == "skip" and (now - latest).total_seconds() > misfire.grace:
        missed = timing.count_between(rules, due - _TICK, now, cap=SKIP_COUNT_CAP)
        upcoming = timing.next_fire(rules, now, fired=state.occurrence_count)
        return _advanced(state, (), upcoming, skipped=missed, reason="missed (misfire: skip)")
    # coalesce: one run for everything missed, at the latest occurrence.
    upcoming = timing.next_fire(rules, latest, fired=state.occurrence_count + 1)
    return _advanced(state, (latest,), upcoming)


def _fire_all(
    rules: timing.Timing, state: JobState, due: datetime, now: datetime, limit: int
) -> Change:
    """Every missed occurrence, oldest first, but at most `limit`: the rest are skipped."""
    times: list[datetime] = []
    upcoming: datetime | None = due
    while upcoming is not None and upcoming <= now and len(times) < limit:
        times.append(upcoming)
        upcoming = timing.next_fire(rules, upcoming, fired=state.occurrence_count + len(times))
    if upcoming is None or upcoming > now:
        return _advanced(state, tuple(times), upcoming)
    # More were missed than the bound allows: skip the rest up to now.
    fired = state.occurrence_count + len(times)
    missed = timing.count_between(rules, times[-1], now, cap=SKIP_COUNT_CAP)
    following = timing.next_fire(rules, now, fired=fired)
    reason = f"missed beyond the catch-up limit of {limit}"
    return _advanced(state, tuple(times), following, skipped=missed, reason=reason)


def _advanced(
    state: JobState,
    times: tuple[datetime, ...],
    upcoming: datetime | None,
    *,
    skipped: tuple[int, bool] = (0, True),
    reason: str = "",
) -> Change:
    """The state after firing `times`, skipping (count, exact) occurrences for `reason`."""
    audits: list[Audit] = []
    count, exact = skipped
    if count:
        audits.append(Audit("skip", f"{count}{'' if exact else '+'} occurrences {reason}"))
    if upcoming is None:
        audits.append(Audit("complete"))
    advanced = replace(
        state,
        status=ACTIVE if upcoming is not None else COMPLETED,
        next_run_at=upcoming,
        run_count=state.run_count + len(times),
        last_run_at=times[-1] if times else state.last_run_at,
        occurrence_count=state.occurrence_count + len(times),
        last_occurrence_at=times[-1] if times else state.last_occurrence_at,
        skipped_count=state.skipped_count + count,
    )
    return Change(advanced, tuple(audits), times)


def _reached_max_runs(rules: timing.Timing, fired: int) -> bool:
    return rules.max_runs is not None and fired >= rules.max_runs
