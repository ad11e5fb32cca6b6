"""Jobs out and in as JSON lines: a backup, or a move from one service to another.

A line is a job as a create takes it (`Job.spec()`), with a paused job's `pauseNote` and
`pausedUntil` (set again by a pause call after the create); other read-only fields in a
line (a job's whole answer pasted in) are dropped. Jobs go in 1,000 at a time, each
batch all or none, each with an Idempotency-Key made from its content: an import stopped
half way can be run again within 24 hours and creates only what is missing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from scheduler_client.client import Client
from scheduler_client.errors import FieldError, ProblemError
from scheduler_client.models import WRITABLE_JOB_FIELDS, Job

BATCH = 1000  # the service's MAX_BATCH_JOBS default
PAUSE_FIELDS = ("pauseNote", "pausedUntil")  # not a create's: a pause call's


def export_lines(jobs: Iterable[Job], *, include_completed: bool = False) -> Iterator[str]:
    """Completed jobs are left out unless asked: a one-shot that already fired would fire
    again where it is imported (its time is past)."""
    for job in jobs:
        if job.status != "completed" or include_completed:
            pause = {k: job.raw[k] for k in PAUSE_FIELDS if job.raw.get(k) is not None}
            yield json.dumps(dict(job.spec()) | pause, ensure_ascii=False, sort_keys=True)


@dataclass(frozen=True)
class Line:
    number: int
    spec: dict[str, Any]
    pause: dict[str, Any] = field(default_factory=dict)  # pauseNote, pausedUntil


def read_lines(text: str) -> tuple[list[Line], list[tuple[int, str]]]:
    """The jobs of a JSON-lines file, and (line, why) for each line that is not one."""
    lines: list[Line] = []
    errors: list[tuple[int, str]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            errors.append((number, f"not JSON: {exc.msg}"))
            continue
        if not isinstance(value, dict):
            errors.append((number, "not a JSON object"))
            continue
        spec = {k: v for k, v in value.items() if k in WRITABLE_JOB_FIELDS}
        pause = {k: value[k] for k in PAUSE_FIELDS if value.get(k) is not None}
        lines.append(Line(number, spec, pause if spec.get("status") == "paused" else {}))
    return lines, errors


def batch_key(specs: list[dict[str, Any]]) -> str:
    body = json.dumps(specs, sort_keys=True, separators=(",", ":")).encode()
    return "import-" + hashlib.sha256(body).hexdigest()[:48]


def create_in_batches(client: Client, lines: list[Line]) -> list[Job]:
    """Create the jobs, a batch at a time; a problem's field errors name file lines
    (`line 7: cron: ...`) instead of batch indexes."""
    made: list[Job] = []
    for start in range(0, len(lines), BATCH):
        chunk = lines[start : start + BATCH]
        specs = [line.spec for line in chunk]
        try:
            created = client.create_jobs(specs, idempotency_key=batch_key(specs))
        except ProblemError as exc:
            exc.errors = [located(error, chunk) for error in exc.errors]
            if made:
                exc.detail = f"{exc.detail} ({len(made)} jobs of earlier batches were created)"
            raise
        made += [pause_again(client, job, line) for job, line in zip(created, chunk, strict=True)]
    return made


def pause_again(client: Client, job: Job, line: Line) -> Job:
    """A paused job's note and end, which a create does not take."""
    if not line.pause:
        return job
    try:
        return client.pause_job(
            job.job_id, note=line.pause.get("pauseNote"), until=line.pause.get("pausedUntil")
        )
    except ProblemError as exc:
        if exc.status == 422 and "until" in exc.field_errors():
            return client.resume_job(job.job_id)  # its pause ended while it was moving
        raise


def located(error: FieldError, chunk: list[Line]) -> FieldError:
    """jobs.3.cron -> line N: cron."""
    parts = error.field.split(".", 2)
    if len(parts) >= 2 and parts[0] == "jobs" and parts[1].isdigit() and int(parts[1]) < len(chunk):
        rest = parts[2] if len(parts) == 3 else "job"
        return FieldError(f"line {chunk[int(parts[1])].number}: {rest}", error.message)
    return error
