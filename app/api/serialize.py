"""Database rows to API answers, in one place so every call answers alike."""

from __future__ import annotations

import math
import uuid
from typing import Any

from app import runs, timing
from app.instants import format_instant
from app.jobs import job_timing
from app.models import Job, QueueMessage, Run


def job_out(job: Job, *, show_secret: bool = False) -> dict[str, Any]:
    first = job.first_at
    return {
        "jobId": str(job.id),
        "payload": job.payload,
        "minute": math.floor(first.timestamp() / 60) if first else None,
        "recurring": job.recurring,
        "name": job.name,
        "at": format_instant(first),
        "timezone": job.timezone,
        "cron": job.cron,
        "interval": job.interval,
        "startAt": format_instant(job.start_at),
        "endAt": format_instant(job.end_at),
        "maxRuns": job.max_runs,
        "rrule": job.rrule,
        "exclude": job.exclude,
        "onExcluded": job.on_excluded or "skip",
        "dst": {"gap": job.dst_gap or "shift", "repeat": job.dst_repeat or "first"},
        "target": target_out(job.target, show_secret=show_secret),
        "retry": job.retry,
        "misfire": job.misfire,
        "maxCatchUp": job.max_catch_up,
        "deadLetter": target_out(job.dead_letter, show_secret=False) if job.dead_letter else None,
        "onComplete": job.on_complete,
        "template": job.template,
        "window": job.window,
        "labels": job.labels or {},
        "status": job.status,
        "pauseNote": job.pause_note,
        "pausedUntil": format_instant(job.paused_until),
        "description": timing.describe(job_timing(job)),
        "nextRunAt": format_instant(job.next_run_at),
        "lastRunAt": format_instant(job.last_run_at),
        "runCount": job.run_count,
        "skippedCount": job.skipped_count,
        "createdAt": format_instant(job.created_at),
        "updatedAt": format_instant(job.updated_at),
    }


def target_out(target: dict[str, Any], *, show_secret: bool) -> dict[str, Any]:
    """A target as answers show it: a webhook's secret only once, when it is created."""
    if target.get("type") != "webhook" or show_secret:
        return dict(target)
    return {key: value for key, value in target.items() if key != "secret"}


def runs_out(found: list[Run]) -> list[dict[str, Any]]:
    """Runs as answers show them, each dead one with where its dead letter went."""
    letters = runs.dead_letters_of(found)
    return [run_out(run, letters.get(run.id)) for run in found]


def run_out(run: Run, dead_letter_run: uuid.UUID | None = None) -> dict[str, Any]:
    return {
        "runId": str(run.id),
        "jobId": str(run.job_id),
        "scheduledFor": format_instant(run.scheduled_for),
        "firedAt": format_instant(run.fired_at),
        "status": run.status,
        "attempts": run.attempts,
        "nextAttemptAt": format_instant(run.next_attempt_at),
        "deliveredAt": format_instant(run.delivered_at),
        "dueAt": format_instant(run.due_at or run.scheduled_for),
        "lagMs": round(run.lag_seconds * 1000, 3),
        "lastError": run.last_error,
        "responseStatus": run.response_status,
        "responseMs": run.response_ms,
        "responseBody": run.response_body,
        "deadLetter": bool(run.dead_letter),
        "deadLetterRunId": str(dead_letter_run) if dead_letter_run else None,
    }


def message_out(message: QueueMessage) -> dict[str, Any]:
    return {
        "id": str(message.id),
        "receipt": message.receipt or "",
        "payload": message.payload,
        "jobId": str(message.job_id),
        "runId": str(message.run_id),
        "scheduledFor": format_instant(message.scheduled_for),
        "receiveCount": message.receive_count,
    }
