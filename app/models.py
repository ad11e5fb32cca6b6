"""Tables: jobs, their runs, and the built-in queue's messages.

Invariant: jobs.next_run_at is set exactly when the job is active and has a next
occurrence, so "what is due" is one index range scan on next_run_at. Likewise
runs.next_attempt_at is set exactly when the run still needs a delivery attempt: it is
the retry time for a failed run and the lease expiry for a run being delivered.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    exists,
    false,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql.expression import Exists

from app.database import UTCDateTime, db
from app.ids import new_id

JOB_STATUSES = ("active", "paused", "completed")
RUN_STATUSES = ("pending", "delivering", "retrying", "delivered", "dead")
MISFIRE_POLICIES = ("coalesce", "skip", "all")


class Job(db.Model):  # type: ignore[name-defined]
    __tablename__ = "jobs"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    name: Mapped[str | None] = mapped_column(String(200))
    payload: Mapped[str] = mapped_column(Text)
    recurring: Mapped[str] = mapped_column(String(16))
    first_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    cron: Mapped[str | None] = mapped_column(String(200))
    interval: Mapped[int | None] = mapped_column(BigInteger)
    start_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    end_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    max_runs: Mapped[int | None] = mapped_column(Integer)
    # recurring "rrule": the RFC 5545 rule (its DTSTART is first_at on the zone's clock).
    rrule: Mapped[str | None] = mapped_column(String(500))
    # Days not fired on (the API's `exclude`, as written) and what happens to their occurrences.
    exclude: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    on_excluded: Mapped[str | None] = mapped_column(String(24))  # None: "skip"
    # The DST policy of a wall-clock job; None: DESIGN.md's rule ("shift", "first").
    dst_gap: Mapped[str | None] = mapped_column(String(8))
    dst_repeat: Mapped[str | None] = mapped_column(String(8))
    target: Mapped[dict[str, Any]] = mapped_column(JSON)
    target_type: Mapped[str] = mapped_column(String(16))
    retry: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    misfire: Mapped[str] = mapped_column(String(16), default="coalesce")
    status: Mapped[str] = mapped_column(String(16), default="active")
    next_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Every run, scheduled or run now: what people see as "runs" and "last run".
    last_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    run_count: Mapped[int] = mapped_column(Integer, default=0)
    # The rule's own sequence: occurrences fired under the current rule (maxRuns counts
    # these) and the nominal time of the latest, from which the rule goes on.
    occurrence_count: Mapped[int] = mapped_column(Integer, default=0)
    last_occurrence_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Occurrences skipped instead of fired (the skip policy, the catch-up bound).
    skipped_count: Mapped[int] = mapped_column(Integer, default=0)
    # When its occurrences became due to the service: created, rule changed or resumed. An
    # occurrence before it was not late; it could not have fired sooner.
    due_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    max_catch_up: Mapped[int | None] = mapped_column(Integer)  # None: the configured default
    # Where a dead run's dead letter goes (a target spec, as `target`); None: nowhere.
    dead_letter: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    # "keep" or "delete": once completed and its runs finished, retention deletes it.
    on_complete: Mapped[str] = mapped_column(String(8), default="keep", server_default="keep")
    # As the API shows them; job_labels holds them again, one row each, to find jobs by.
    labels: Mapped[dict[str, str] | None] = mapped_column(JSON)
    # A flexible window, seconds: each occurrence fires within [nominal, nominal + window).
    window: Mapped[int | None] = mapped_column(Integer)
    # Placeholders in the payload filled at each delivery (app.payloads).
    template: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # A pause's terms, while paused: why, and when it ends by itself (app.jobs.end_pauses).
    pause_note: Mapped[str | None] = mapped_column(Text)
    paused_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        # Partial, as the one below: a job without a next run (done, paused) is in no
        # query of this index, which all name a time or ask IS NOT NULL; so a one-shot's
        # fire removes its entry and writes none.
        Index(
            "ix_jobs_next_run_at",
            "next_run_at",
            postgresql_where=text("next_run_at IS NOT NULL"),
            sqlite_where=text("next_run_at IS NOT NULL"),
        ),
        Index("ix_jobs_created_at_id", "created_at", "id"),
        Index("ix_jobs_status_created_at", "status", "created_at"),
        # Partial: only paused jobs with an end are in it, so a fire never writes to it.
        Index(
            "ix_jobs_paused_until",
            "paused_until",
            postgresql_where=text("paused_until IS NOT NULL"),
            sqlite_where=text("paused_until IS NOT NULL"),
        ),
    )


class JobLabel(db.Model):  # type: ignore[name-defined]
    """One label of a job, for `label=key:value` lists and bulk actions by label."""

    __tablename__ = "job_labels"

    job_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(63), primary_key=True)
    value: Mapped[str] = mapped_column(String(100))

    __table_args__ = (Index("ix_job_labels_key_value_job_id", "key", "value", "job_id"),)


class Run(db.Model):  # type: ignore[name-defined]
    __tablename__ = "runs"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    job_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("jobs.id", ondelete="CASCADE"))
    scheduled_for: Mapped[datetime] = mapped_column(UTCDateTime)
    fired_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_ms: Mapped[float | None] = mapped_column(Float)
    response_body: Mapped[str | None] = mapped_column(Text)
    # Where its delivery goes (Target.origin), set when it is fired or claimed: a claim
    # passes over the runs of origins that already have their share held.
    origin: Mapped[str | None] = mapped_column(String(300))
    # When the service could first have fired it: the later of scheduled_for and the job's
    # due_since then. Lag is fired_at - due_at; scheduled_for stays the nominal time.
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # A dead letter: the message telling of the job's dead run at the same scheduled_for,
    # delivered as a run of its own to its own target (the job's dead letter target then).
    dead_letter: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    target: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    payload: Mapped[str | None] = mapped_column(Text)

    @property
    def lag_seconds(self) -> float:
        return (self.fired_at - (self.due_at or self.scheduled_for)).total_seconds()

    @classmethod
    def to_deliver(cls, job_id: Any) -> Exists:
        """Whether the job (an id, or a jobs column to correlate with) has a run still to
        be delivered: pending, in flight or waiting for a retry. Such a run holds its
        job's row, which has its payload and target."""
        return exists().where(cls.job_id == job_id, cls.next_attempt_at.is_not(None))

    __table_args__ = (
        # One run per occurrence, and at most one dead letter of it.
        UniqueConstraint(
            "job_id", "scheduled_for", "dead_letter", name="uq_runs_job_scheduled_for"
        ),
        # Only runs that still need an attempt: delivered and dead runs (most of them,
        # and every built-in queue run from the start) cost the index nothing.
        Index(
            "ix_runs_next_attempt_at_origin",
            "next_attempt_at",
            "origin",
            sqlite_where=text("next_attempt_at IS NOT NULL"),
            postgresql_where=text("next_attempt_at IS NOT NULL"),
        ),
        Index("ix_runs_fired_at_id", "fired_at", "id"),
        Index("ix_runs_status_fired_at", "status", "fired_at"),
    )


class QueueMessage(db.Model):  # type: ignore[name-defined]
    """A message of the built-in queue. It outlives its job: it was delivered already."""

    __tablename__ = "queue_messages"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    queue: Mapped[str] = mapped_column(String(80))
    payload: Mapped[str] = mapped_column(Text)
    job_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    run_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    scheduled_for: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    visible_at: Mapped[datetime] = mapped_column(UTCDateTime)
    receipt: Mapped[str | None] = mapped_column(String(64))
    receive_count: Mapped[int] = mapped_column(Integer, default=0)

    __table_args__ = (
        Index("ix_queue_messages_queue_visible_at", "queue", "visible_at"),
        # Partial: a message gets a receipt when received, so a fire writes no entry here.
        Index(
            "ix_queue_messages_receipt",
            "receipt",
            postgresql_where=text("receipt IS NOT NULL"),
            sqlite_where=text("receipt IS NOT NULL"),
        ),
        Index("ix_queue_messages_created_at", "created_at"),  # retention
    )


class ApiKey(db.Model):  # type: ignore[name-defined]
    """An API key: only its SHA-256 is kept (keys are 32 random bytes, so a fast hash is
    enough); the key itself is shown once, when it is created."""

    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))  # shown in lists to tell keys apart
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scope: Mapped[str] = mapped_column(String(16))  # "read" or "write"
    # A slice: the key sees and changes only jobs carrying all these labels (app.scope).
    labels: Mapped[dict[str, str] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AuditEntry(db.Model):  # type: ignore[name-defined]
    """Who changed which job, how, and when."""

    __tablename__ = "audit_log"

    # Insertion order is the log's order, even for entries within the same microsecond.
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(120))
    action: Mapped[str] = mapped_column(String(32))
    job_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    run_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    detail: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_audit_log_job_id_id", "job_id", "id"),)


class Counter(db.Model):  # type: ignore[name-defined]
    """Monotonic counters the dispatcher keeps for /metrics (the web process serves them;
    the two share nothing but the database). Each dispatcher adds to one of a few shards
    so that dispatchers running side by side rarely wait on each other's row."""

    __tablename__ = "counters"

    name: Mapped[str] = mapped_column(String(80), primary_key=True)
    shard: Mapped[int] = mapped_column(Integer, primary_key=True)
    value: Mapped[float] = mapped_column(Float, default=0.0)


class IdempotencyKey(db.Model):  # type: ignore[name-defined]
    """The answer to a create sent with an Idempotency-Key, so a retry gets it again.

    One per (actor, key): one caller's keys never meet another's. `fingerprint` is the
    request's (method, path, body) digest: the same key with another request is refused.
    """

    __tablename__ = "idempotency_keys"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    actor: Mapped[str] = mapped_column(String(120))
    key: Mapped[str] = mapped_column(String(255))
    fingerprint: Mapped[str] = mapped_column(String(64))
    status: Mapped[int] = mapped_column(Integer)
    answer: Mapped[str] = mapped_column(Text)  # the JSON body as sent
    location: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        UniqueConstraint("actor", "key", name="uq_idempotency_keys_actor_key"),
        Index("ix_idempotency_keys_created_at", "created_at"),  # retention
    )
