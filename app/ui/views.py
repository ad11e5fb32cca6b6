"""UI pages beyond the jobs: the overview, runs, queues; and how the UI answers errors."""

from __future__ import annotations

import json
import re
import uuid
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from flask import current_app, flash, make_response, redirect, render_template, request
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from app import jobs, queue, runs
from app.errors import DomainError, NotFound
from app.models import RUN_STATUSES, Run
from app.problems import DATABASE_UNAVAILABLE, Problem, database_unavailable, problem_of
from app.schemas import NAME_PATTERN
from app.timing.zones import get_zone, to_instant
from app.ui import bp, charts
from app.ui.display import now, viewer_zone
from app.ui.live import live
from app.ui.render import VARY, htmx_target, page

RUN_PAGE_SIZE = 50
FAILURES_SHOWN = 8
POLL_TRIGGER = "every 5s [document.visibilityState === 'visible']"


@bp.after_request
def _vary(response: Response) -> Response:
    response.vary.update(part.strip() for part in VARY.split(","))
    return response


@bp.errorhandler(Problem)
def _problem(problem: Problem) -> Response:
    """Errors as people read them: a page, or for htmx a short text the page shows as a toast
    (static/app.js swaps HTML error answers in and toasts plain-text ones)."""
    message = problem.detail or problem.title
    if request.headers.get("HX-Request") == "true" and not request.headers.get("HX-Boosted"):
        response = make_response(message, problem.status, problem.headers)
        response.mimetype = "text/plain"
        return response
    html = render_template("error.html", problem=problem, message=message)
    return make_response(html, problem.status, problem.headers)


@bp.errorhandler(DomainError)
def _domain_error(error: DomainError) -> Response:
    return _problem(problem_of(error))


for _error in DATABASE_UNAVAILABLE:  # before the catch-all below: a 503 page, not a 500
    bp.register_error_handler(_error, lambda exc: _problem(database_unavailable(exc)))


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> Response | HTTPException:
    """Not found, a refused CSRF token, …: the same two shapes as a Problem."""
    if exc.code is None or exc.code < 400:
        return exc
    return _problem(Problem(exc.code, exc.name, exc.description))


@bp.errorhandler(Exception)
def _unexpected(exc: Exception) -> Response:
    current_app.logger.exception("unhandled error", extra={"action": "ui", "path": request.path})
    return _problem(Problem(500, "Internal error", "Something went wrong; the error was logged."))


def back(default: str) -> str:
    """Where to go after an action: the form's `next` if it is a UI page, else `default`."""
    target = request.form.get("next") or request.args.get("next") or ""
    if target.startswith("/ui") and not target.startswith("//") and "\\" not in target:
        return target
    return default


def toast(response: Response, message: str) -> Response:
    """Ask the page to show a short message (static/app.js listens for `show-message`)."""
    response.headers["HX-Trigger"] = json.dumps({"show-message": message})
    return response


# Overview


@bp.get("/")
@live(("overview-live",), shows=("next runs",))
def overview() -> Response:
    return page("overview.html", ("overview-live",), **overview_context(now(), viewer_zone()))


OUTCOMES = ("delivered", "retrying", "dead", "pending", "delivering")  # RUN_STATUSES, ends first


def overview_context(current: datetime, zone: str) -> dict[str, Any]:
    current = current.replace(microsecond=0)  # windows that a runs page link repeats exactly
    upcoming = jobs.due_between(current, current + timedelta(hours=1), limit=200)
    failures = latest_failures(FAILURES_SHOWN)
    return {
        "job_counts": jobs.count_by_status(),
        "run_counts": runs.count_by_status(),
        "timeline": charts.timeline(upcoming, current, zone),
        "chart": charts.run_chart(runs.lag_per_minute(current, 60), zone),
        "outcomes": runs.outcomes(current),
        "outcome_names": OUTCOMES,
        "outcome_links": outcome_links(current, zone),
        "queue_depth": queue.depth(current),
        "failures": failures,
        "job_of": jobs.jobs_by_id([run.job_id for run in failures]),
        "poll": POLL_TRIGGER,
    }


def outcome_links(current: datetime, zone: str) -> dict[tuple[str, str], str]:
    """The runs list behind each figure of the outcome table: status and since, the since
    in the viewer's wall time as the runs page reads it (in the hour a fall-back repeats,
    it reads as the first pass: the list then shows an hour more than the figure)."""
    links: dict[tuple[str, str], str] = {}
    for window, span in runs.WINDOWS.items():
        since = f"{(current - span).astimezone(get_zone(zone)):%Y-%m-%dT%H:%M:%S}"
        for status in ("", *OUTCOMES):  # "": every run of the window
            query = {"status": status, "since": since} if status else {"since": since}
            links[(window, status)] = "/ui/runs?" + urlencode(query)
    return links


def latest_failures(count: int) -> list[Run]:
    """The newest dead and retrying runs."""
    found: list[Run] = []
    for status in ("dead", "retrying"):
        found += runs.list_runs(count, None, runs.RunFilter(status=status))[0]
    found.sort(key=lambda run: (run.fired_at, run.id), reverse=True)
    return found[:count]


# Runs


@bp.get("/runs")
@live(("run-table",))
def runs_page() -> Response:
    zone = viewer_zone()
    errors: dict[str, str] = {}
    status = request.args.get("status", "")
    if status and status not in RUN_STATUSES:
        errors["status"] = f"must be one of {', '.join(RUN_STATUSES)}"
        status = ""
    since = wall_instant(request.args.get("since", ""), zone, "since", errors)
    until = wall_instant(request.args.get("until", ""), zone, "until", errors)
    job = run_filter_job(request.args.get("job", ""), errors)
    cursor = request.args.get("cursor") or None
    found, next_cursor = runs.list_runs(
        RUN_PAGE_SIZE, cursor, runs.RunFilter(job.id if job else None, status or None, since, until)
    )
    filters = {key: request.args.get(key, "") for key in ("status", "since", "until")}
    if job is not None:
        filters["job"] = str(job.id)
    return page(
        "runs.html",
        ("run-table",),
        runs=found,
        job_of=jobs.jobs_by_id([run.job_id for run in found]),
        dead_letters=runs.dead_letters_of(found),
        next_cursor=next_cursor,
        paged=bool(cursor),
        filters=filters,
        errors=errors,
        statuses=RUN_STATUSES,
        run_counts=runs.count_by_status(),
        job=job,
        poll=POLL_TRIGGER,
        status=400 if errors else 200,  # the page names the field at fault
    )


def run_filter_job(value: str, errors: dict[str, str]) -> Any:
    """The job a runs page is filtered by (?job=<id>), or None; a bad id is a field error."""
    if not value.strip():
        return None
    try:
        return jobs.get_job(value.strip())
    except NotFound:
        errors["job"] = "no such job"
        return None


def wall_instant(value: str, zone: str, name: str, errors: dict[str, str]) -> datetime | None:
    """A datetime-local value, read in the viewer's zone."""
    if not value.strip():
        return None
    try:
        local = datetime.fromisoformat(value.strip())
        if local.tzinfo is not None:
            raise ValueError(value)
        return to_instant(local, get_zone(zone))
    except (ValueError, OverflowError):
        errors[name] = "must be a date and time, such as 2030-01-01T09:00"
        return None


@bp.post("/runs/<run_id>/retry")
def retry_run(run_id: str) -> Response:
    run = runs.retry_run(run_id, now())
    if htmx_target() == f"run-{run.id}":
        job_of = jobs.jobs_by_id([run.job_id])
        show_job = request.form.get("show_job") != "no"
        html = render_template("_run_row.html", run=run, job_of=job_of, show_job=show_job)
        return toast(make_response(html), "Run retried: it will be delivered again now")
    flash("Run retried: it will be delivered again now")
    return redirect(back(f"/ui/jobs/{run.job_id}"), 303)


@bp.post("/runs/retry-dead")
def retry_dead() -> Response:
    job_id = request.form.get("job_id") or None
    key = None
    if job_id:
        try:
            key = uuid.UUID(job_id)
        except ValueError as exc:
            raise NotFound(f"job {job_id}") from exc
    count = runs.retry_all_dead(now(), key)
    flash(f"{count} dead run{'s' if count != 1 else ''} retried" if count else "No dead runs")
    return redirect(back("/ui/runs?status=dead"), 303)


# Queues


@bp.get("/queues")
@live(("queue-table",), shows=("queue messages",))
def queues_page() -> Response:
    current = now()
    names = sorted({"default", *queue.queue_names()})
    peek_name = request.args.get("peek", "")
    if peek_name and not re.fullmatch(NAME_PATTERN, peek_name):
        raise NotFound(f"queue {peek_name}")
    return page(
        "queues.html",
        ("queue-table", "peek"),
        queues=[queue.stats(name, current) for name in names],
        peek_name=peek_name,
        messages=queue.peek(peek_name, 20) if peek_name else [],
        poll=POLL_TRIGGER,
    )
