"""The service's answers as typed objects, and the shape of a job to send (JobSpec).

Each result keeps the answer it was made from in `raw`, so fields a newer service adds
are not lost on the way through (get, change, put).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, Literal, NotRequired, TypedDict, TypeVar

JobStatus = Literal["active", "paused", "completed"]
RunStatus = Literal["pending", "delivering", "retrying", "delivered", "dead"]

# The fields a create or a replace takes (the API's own names); everything else in a job's
# answer is the service's to compute.
WRITABLE_JOB_FIELDS = (
    "payload", "recurring", "minute", "at", "timezone", "cron", "interval", "startAt",
    "endAt", "maxRuns", "name", "labels", "target", "retry", "misfire", "maxCatchUp",
    "deadLetter", "onComplete", "template", "window", "status",
)  # fmt: skip


class JobSpec(TypedDict):
    """A job as sent to POST /schedules and PUT /schedules/{jobId}: the API's JSON."""

    payload: str
    recurring: NotRequired[Literal["none", "daily", "weekly", "interval", "cron"]]
    minute: NotRequired[int]
    at: NotRequired[str]
    timezone: NotRequired[str]
    cron: NotRequired[str]
    interval: NotRequired[int]
    startAt: NotRequired[str]
    endAt: NotRequired[str]
    maxRuns: NotRequired[int]
    name: NotRequired[str]
    labels: NotRequired[dict[str, str]]
    target: NotRequired[dict[str, Any]]
    retry: NotRequired[dict[str, Any]]
    misfire: NotRequired[Literal["coalesce", "skip", "all"]]
    maxCatchUp: NotRequired[int]
    deadLetter: NotRequired[dict[str, Any]]
    onComplete: NotRequired[Literal["keep", "delete"]]
    template: NotRequired[bool]
    window: NotRequired[int]
    status: NotRequired[JobStatus]


@dataclass(frozen=True)
class Job:
    job_id: str
    payload: str
    recurring: str
    status: JobStatus
    description: str
    timezone: str
    target: dict[str, Any]
    name: str | None
    at: str | None
    minute: int | None
    cron: str | None
    interval: int | None
    labels: dict[str, str]
    next_run_at: str | None
    last_run_at: str | None
    run_count: int
    created_at: str
    updated_at: str
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> Job:
        return cls(
            job_id=data["jobId"],
            payload=data["payload"],
            recurring=data["recurring"],
            status=data["status"],
            description=data.get("description", ""),
            timezone=data.get("timezone", "UTC"),
            target=data.get("target") or {},
            name=data.get("name"),
            at=data.get("at"),
            minute=data.get("minute"),
            cron=data.get("cron"),
            interval=data.get("interval"),
            labels=data.get("labels") or {},
            next_run_at=data.get("nextRunAt"),
            last_run_at=data.get("lastRunAt"),
            run_count=int(data.get("runCount", 0)),
            created_at=data.get("createdAt", ""),
            updated_at=data.get("updatedAt", ""),
            raw=data,
        )

    def spec(self) -> JobSpec:
        """What a create or replace of this job sends: its writable fields, those set."""
        values = {k: self.raw[k] for k in WRITABLE_JOB_FIELDS if self.raw.get(k) is not None}
        if "at" in values:  # `at` and `minute` say the same instant; `at` to the second
            values.pop("minute", None)
        return JobSpec(**values)  # type: ignore[typeddict-item]


@dataclass(frozen=True)
class Run:
    run_id: str
    job_id: str
    scheduled_for: str
    fired_at: str
    status: RunStatus
    attempts: int
    next_attempt_at: str | None
    delivered_at: str | None
    lag_ms: float
    last_error: str | None
    response_status: int | None
    dead_letter: bool
    dead_letter_run_id: str | None
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> Run:
        return cls(
            run_id=data["runId"],
            job_id=data["jobId"],
            scheduled_for=data["scheduledFor"],
            fired_at=data["firedAt"],
            status=data["status"],
            attempts=int(data.get("attempts", 0)),
            next_attempt_at=data.get("nextAttemptAt"),
            delivered_at=data.get("deliveredAt"),
            lag_ms=float(data.get("lagMs", 0.0)),
            last_error=data.get("lastError"),
            response_status=data.get("responseStatus"),
            dead_letter=bool(data.get("deadLetter", False)),
            dead_letter_run_id=data.get("deadLetterRunId"),
            raw=data,
        )


@dataclass(frozen=True)
class BulkResult:
    changed: int
    changed_ids: list[str]
    unchanged_ids: list[str]
    not_found: list[str]

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> BulkResult:
        return cls(
            data["changed"], data["changedIds"], data["unchangedIds"], data.get("notFound", [])
        )


@dataclass(frozen=True)
class PreviewTime:
    utc: str
    local: str
    skipped: bool = False  # excluded: shown, not fired
    notes: tuple[str, ...] = ()  # dst-shift, excluded, moved, window, …
    explain: tuple[str, ...] = ()  # the notes in words, when asked for


@dataclass(frozen=True)
class Preview:
    description: str
    timezone: str
    times: list[PreviewTime]

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> Preview:
        times = [_preview_time(t) for t in data.get("times", [])]
        return cls(data["description"], data["timezone"], times)


def _preview_time(t: dict[str, Any]) -> PreviewTime:
    notes, explain = tuple(t.get("notes", ())), tuple(t.get("explain", ()))
    return PreviewTime(t["utc"], t["local"], bool(t.get("skipped")), notes, explain)


@dataclass(frozen=True)
class Message:
    id: str
    receipt: str
    payload: str
    job_id: str
    run_id: str
    scheduled_for: str
    receive_count: int

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> Message:
        return cls(
            data["id"], data["receipt"], data["payload"], data["jobId"], data["runId"],
            data["scheduledFor"], int(data["receiveCount"]),
        )  # fmt: skip


@dataclass(frozen=True)
class QueueStats:
    name: str
    depth: int
    in_flight: int
    oldest_at: str | None

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> QueueStats:
        return cls(data["name"], int(data["depth"]), int(data["inFlight"]), data.get("oldestAt"))


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: str
    actor: str
    action: str
    job_id: str | None
    run_id: str | None
    detail: str | None

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> AuditEntry:
        return cls(
            int(data["id"]), data["at"], data["actor"], data["action"], data.get("jobId"),
            data.get("runId"), data.get("detail"),
        )  # fmt: skip


T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list; `next_url` (from the Link header) is None on the last."""

    items: list[T]
    next_url: str | None
