"""Jobs: the original five calls, verbatim, and what came after them."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode
from uuid import UUID
from zoneinfo import ZoneInfo

from flask import Response, current_app, jsonify, request

from app import backfill, clock_of, jobinput, jobs, timing
from app.api import bp
from app.api.idempotent import KEY_HEADER, answer, create_once
from app.api.openapi import operation, validate
from app.api.serialize import job_out, run_out, runs_out
from app.idempotency import Answer
from app.instants import format_instant
from app.jobs import job_timing
from app.jobstate import window_offset
from app.models import Job
from app.runs import RunFilter, list_runs
from app.schemas import (
    READ_ONLY_JOB_FIELDS,
    BackfillIn,
    BackfillOut,
    JobBatchIn,
    JobBatchOut,
    JobBulkOut,
    JobIn,
    JobListQuery,
    JobOut,
    JobPreviewQuery,
    JobSelectionIn,
    PauseIn,
    PreviewIn,
    PreviewOut,
    PreviewQuery,
    RunListQuery,
    RunOut,
    TimingFields,
)
from app.timing import Timing

TAG = "jobs"


def now() -> datetime:
    return clock_of(current_app).now()


def paged(items: list[dict[str, Any]], next_cursor: str | None, limit: int) -> Response:
    """A JSON array, with the next page in a Link header."""
    response = jsonify(items)
    if next_cursor:
        args = {key: value for key, value in request.args.items() if key != "cursor"}
        args |= {"limit": str(limit), "cursor": next_cursor}
        response.headers["Link"] = f'<{request.base_url}?{urlencode(args)}>; rel="next"'
    return response


@operation(bp, "GET", "/schedules", summary="List jobs", tag=TAG, query=JobListQuery,
           response=JobOut, list_response=True)  # fmt: skip
def list_jobs(query: JobListQuery) -> Response:
    page, cursor = jobs.list_jobs(
        query.limit,
        query.cursor,
        jobs.JobFilter(
            query.status, query.recurring, query.target, query.q, label_pairs(query.label)
        ),
        query.sort,
    )
    return paged([job_out(job) for job in page], cursor, query.limit)


@operation(bp, "POST", "/schedules", summary="Create a job", tag=TAG, body=JobIn,
           response=JobOut, status=201, errors=[422], headers=[KEY_HEADER])  # fmt: skip
def create_job(body: JobIn) -> Response:
    values = jobinput.job_values(body)

    def one(created: list[Job]) -> Answer:
        job = created[0]
        return answer(job_out(job, show_secret=True), 201, f"/schedules/{job.id}")

    return create_once(lambda keep: [jobs.create_job(values, now(), keep)], one)


@operation(bp, "POST", "/schedules:batch", summary="Create up to 1,000 jobs, all or none",
           tag=TAG, body=JobBatchIn, response=JobBatchOut, status=201, errors=[422],
           headers=[KEY_HEADER])  # fmt: skip
def create_jobs(body: JobBatchIn) -> Response:
    jobs.at_most_a_batch("jobs", len(body.jobs))
    items = [validate(JobIn, item, prefix=f"jobs.{i}") for i, item in enumerate(body.jobs)]
    values = jobinput.jobs_values(items)

    def many(created: list[Job]) -> Answer:
        return answer({"jobs": [job_out(job, show_secret=True) for job in created]}, 201)

    return create_once(lambda keep: jobs.create_jobs(values, now(), keep), many)


def label_pairs(filters: list[str]) -> tuple[tuple[str, str | None], ...]:
    """`key:value` or `key` filters (checked by the query model) as (key, value or None)."""
    return tuple(
        (key, value if colon else None) for key, colon, value in (f.partition(":") for f in filters)
    )


def bulk_operation(action: str, summary: str) -> None:
    """POST /schedules:<action>: one action on many jobs, in one transaction."""

    def view(body: JobSelectionIn) -> Response:
        ids = None if body.jobIds is None else list(dict.fromkeys(map(str, body.jobIds)))
        result = jobs.bulk_action(action, now(), ids, body.labels)
        found = {str(job_id) for job_id in [*result.changed, *result.unchanged]}
        return jsonify(
            {
                "changed": len(result.changed),
                "changedIds": [str(job_id) for job_id in result.changed],
                "unchangedIds": [str(job_id) for job_id in result.unchanged],
                "notFound": [job_id for job_id in ids or () if job_id not in found],
            }
        )

    view.__name__ = f"{action}_jobs"
    operation(bp, "POST", f"/schedules:{action}", summary=summary, tag=TAG, body=JobSelectionIn,
              response=JobBulkOut, errors=[413, 422])(view)  # fmt: skip


bulk_operation("pause", "Pause many jobs")
bulk_operation("resume", "Resume many paused jobs")
bulk_operation("run", "Fire many jobs once, now")
bulk_operation("delete", "Delete many jobs and their runs")


@operation(bp, "GET", "/schedules/preview", summary="The next times of a rule, in words",
           tag=TAG, query=PreviewQuery, response=PreviewOut, errors=[422],
           query_status=422)  # fmt: skip
def preview(query: PreviewQuery) -> Response:
    fields = TimingFields.model_construct(
        **query.model_dump(exclude={"after", "count", "explain"}, exclude_unset=False),
        exclude=None,
        onExcluded=None,
        dst=None,
    )
    rules = jobinput.make_timing(fields)
    after = jobinput.instant_field("after", query.after) if query.after else now()
    return jsonify(preview_of(rules, after, query.count, explain=query.explain))


@operation(bp, "POST", "/schedules/preview", summary="The next times of a job's timing, with notes",
           tag=TAG, body=PreviewIn, response=PreviewOut, errors=[422])  # fmt: skip
def preview_body(body: PreviewIn) -> Response:
    rules = jobinput.make_timing(body)
    after = jobinput.instant_field("after", body.after) if body.after else now()
    answer = preview_of(rules, after, body.count, explain=body.explain, window=body.window)
    return jsonify(answer)


@operation(bp, "GET", "/schedules/<uuid:jobId>/preview", summary="A stored job's next times",
           tag=TAG, query=JobPreviewQuery, response=PreviewOut, errors=[404, 422],
           query_status=422)  # fmt: skip
def preview_job(jobId: UUID, query: JobPreviewQuery) -> Response:
    job = jobs.get_job(str(jobId))
    offset = window_offset(job.id, job.window)
    answer = preview_of(
        job_timing(job), now(), query.count, explain=query.explain, window=job.window,
        offset=offset,
    )  # fmt: skip
    return jsonify(answer)


@operation(bp, "POST", "/schedules/<uuid:jobId>/backfill",
           summary="Runs for a past range's occurrences that have none", tag=TAG, body=BackfillIn,
           response=BackfillOut, errors=[404, 422])  # fmt: skip
def backfill_job(jobId: UUID, body: BackfillIn) -> Response:
    start = jobinput.instant_field("from", body.start)
    end = jobinput.instant_field("to", body.to)
    done = backfill.backfill(str(jobId), start, end, now(), dry_run=body.dryRun)
    return jsonify(
        {"occurrences": done.occurrences, "existing": done.existing, "written": done.written}
    )


def preview_of(
    rules: Timing,
    after: datetime,
    count: int,
    *,
    explain: bool = False,
    window: int | None = None,
    offset: timedelta | None = None,
) -> dict[str, Any]:
    """The answer of the preview calls: each occurrence, fired or skipped, with its notes."""
    zone = ZoneInfo(rules.timezone)
    found = timing.explained(rules, after, count, window=window, offset=offset)
    return {
        "description": timing.describe(rules),
        "timezone": rules.timezone,
        "times": [_preview_item(o, zone, explain) for o in found],
    }


def _preview_item(found: timing.Occurrence, zone: ZoneInfo, explain: bool) -> dict[str, Any]:
    item: dict[str, Any] = {
        "utc": format_instant(found.at) or "",
        "local": found.at.astimezone(zone).isoformat(),
    }
    if found.skipped:
        item["skipped"] = True
    if found.notes:
        item["notes"] = [n.kind for n in found.notes]
        if explain:
            item["explain"] = [n.words for n in found.notes]
    return item


@operation(bp, "GET", "/schedules/<uuid:jobId>", summary="Get a job", tag=TAG, response=JobOut,
           errors=[404])  # fmt: skip
def get_job(jobId: UUID) -> Response:
    return jsonify(job_out(jobs.get_job(str(jobId))))


@operation(bp, "PUT", "/schedules/<uuid:jobId>", summary="Replace a job", tag=TAG, body=JobIn,
           response=JobOut, errors=[404, 422], ignore_fields=READ_ONLY_JOB_FIELDS)  # fmt: skip
def update_job(jobId: UUID, body: JobIn) -> Response:
    return jsonify(job_out(jobs.update_job(str(jobId), jobinput.job_values(body), now())))


@operation(bp, "DELETE", "/schedules/<uuid:jobId>", summary="Delete a job and its runs", tag=TAG,
           response=JobOut, errors=[404])  # fmt: skip
def delete_job(jobId: UUID) -> Response:
    answer = job_out(jobs.get_job(str(jobId)))
    jobs.delete_job(str(jobId), now())
    return jsonify(answer)


@operation(bp, "POST", "/schedules/<uuid:jobId>/pause", summary="Pause a job", tag=TAG,
           body=PauseIn, body_required=False, response=JobOut, errors=[404, 422])  # fmt: skip
def pause_job(jobId: UUID, body: PauseIn) -> Response:
    until = jobinput.instant_field("until", body.until) if body.until else None
    terms = jobs.PauseTerms(body.note or None, until)
    return jsonify(job_out(jobs.pause_job(str(jobId), now(), terms)))


@operation(bp, "POST", "/schedules/<uuid:jobId>/resume", summary="Resume a paused job", tag=TAG,
           response=JobOut, errors=[404])  # fmt: skip
def resume_job(jobId: UUID) -> Response:
    return jsonify(job_out(jobs.resume_job(str(jobId), now())))


@operation(bp, "POST", "/schedules/<uuid:jobId>/run", summary="Fire once, now", tag=TAG,
           response=RunOut, status=202, errors=[404])  # fmt: skip
def run_job(jobId: UUID) -> tuple[Response, int]:
    return jsonify(run_out(jobs.run_job_now(str(jobId), now()))), 202


@operation(bp, "POST", "/schedules/<uuid:jobId>/rotate-secret",
           summary="A new webhook signing secret, first; the current ones stay valid", tag=TAG,
           response=JobOut, errors=[404, 409])  # fmt: skip
def rotate_secret(jobId: UUID) -> Response:
    """The answer shows the secrets, this once (as when a job is created)."""
    return jsonify(job_out(jobs.rotate_secret(str(jobId), now()), show_secret=True))


@operation(bp, "POST", "/schedules/<uuid:jobId>/drop-old-secrets",
           summary="End a rotation: only the newest signing secret is kept", tag=TAG,
           response=JobOut, errors=[404, 409])  # fmt: skip
def drop_old_secrets(jobId: UUID) -> Response:
    return jsonify(job_out(jobs.drop_old_secrets(str(jobId), now())))


@operation(bp, "GET", "/schedules/<uuid:jobId>/runs", summary="A job's runs, newest first", tag=TAG,
           query=RunListQuery, response=RunOut, list_response=True, errors=[404])  # fmt: skip
def job_runs(jobId: UUID, query: RunListQuery) -> Response:
    job = jobs.get_job(str(jobId))
    page, cursor = list_runs(query.limit, query.cursor, run_filter(query, job.id))
    return paged(runs_out(page), cursor, query.limit)


def run_filter(query: RunListQuery, job_id: Any = None) -> RunFilter:
    since = jobinput.instant_field("since", query.since, lookup=True) if query.since else None
    until = jobinput.instant_field("until", query.until, lookup=True) if query.until else None
    return RunFilter(job_id, query.status, since, until)
