"""UI pages for jobs: the list, the form (new and edit, with its live preview), one job, and the
actions on a job (pause, resume, run now, delete).

The form builds the API's JobIn and calls the same store functions as the API (app.jobs), so
both refuse the same input with the same words.
"""

from __future__ import annotations

import hashlib
import hmac
import zoneinfo
from collections.abc import Mapping
from datetime import datetime
from functools import cache
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from flask import current_app, flash, make_response, redirect, render_template, request, session
from markupsafe import escape
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response

from app import backfill, jobinput, jobs, jobstate, runs, timing
from app.errors import BadLookup, Invalid
from app.jobs import job_timing
from app.models import JOB_STATUSES, Job
from app.retry import RetryPolicy
from app.schemas import LABEL_KEY, LABEL_VALUE, MAX_LABELS, TARGET_TYPES
from app.timing import RECURRING
from app.ui import bp, calendar_form, forms
from app.ui.display import job_label, local_time, now, viewer_zone
from app.ui.live import live
from app.ui.render import htmx_target, page
from app.ui.views import back, toast, wall_instant

JOB_PAGE_SIZE = 25
JOB_RUNS_SHOWN = 25
NEXT_TIMES = 10
LIVE_TRIGGER = "every 3s [document.visibilityState === 'visible']"


@cache
def zone_names() -> tuple[str, ...]:
    """Every zone name, for the form's datalist."""
    return tuple(sorted(zoneinfo.available_timezones() - {"Factory", "localtime", "posixrules"}))


# The list


SORTS = {
    "-created": "Newest first",
    "created": "Oldest first",
    "nextRun": "Next run",
    "name": "Name",
}
BULK_ALREADY = {"pause": "paused or completed", "resume": "active or completed"}
BULK_DONE = {"pause": "Paused", "resume": "Resumed", "run": "Started a run of", "delete": "Deleted"}


@bp.get("/jobs")
def jobs_page() -> Response:
    return page("jobs.html", ("job-table",), **list_context(request.args))


def list_context(args: MultiDict[str, str]) -> dict[str, Any]:
    """The jobs list for these query arguments (bad values fall back to the default; a bad
    label filter is refused, naming `label`)."""
    labels = label_filter(args.getlist("label"))
    filters = {
        "q": args.get("q", "").strip()[:200],
        "status": args.get("status", "") if args.get("status") in JOB_STATUSES else "",
        "recurring": args.get("recurring", "") if args.get("recurring") in RECURRING else "",
        "target": args.get("target", "") if args.get("target") in TARGET_TYPES else "",
        "sort": args.get("sort", "") if args.get("sort") in SORTS else "-created",
        "label": "\n".join(f"{key}: {value}" if value else key for key, value in labels),
    }
    cursor = args.get("cursor") or None
    found, next_cursor = jobs.list_jobs(
        JOB_PAGE_SIZE,
        cursor,
        jobs.JobFilter(
            filters["status"] or None,
            filters["recurring"] or None,
            filters["target"] or None,
            filters["q"] or None,
            labels,
        ),
        filters["sort"],
    )
    return {
        "jobs": found,
        "next_cursor": next_cursor,
        "paged": bool(cursor),
        "filters": filters,
        "statuses": JOB_STATUSES,
        "kinds": RECURRING,
        "target_types": TARGET_TYPES,
        "sorts": SORTS,
        "counts": jobs.count_by_status(),
        # Every job with the filter's labels (exact values only) may be acted on at once;
        # the other filters and the page do not narrow that, and the bar says so.
        "bulk_labels": exact_labels(labels),
        "narrowed": bool(cursor) or any(filters[f] for f in ("q", "status", "recurring", "target")),
    }


@bp.post("/jobs/bulk")
def bulk_action() -> Response:
    """Pause, resume, run or delete the jobs ticked on the list, or every job carrying the
    labels the list is filtered by, then show the list again."""
    action = request.form.get("action", "")
    if action not in jobs.BULK_ACTIONS:
        raise Invalid.field("action", f"must be one of {', '.join(jobs.BULK_ACTIONS)}")
    if "labels" in request.form:
        pairs = label_filter([request.form["labels"]])
        labels = exact_labels(pairs)
        if labels is None:
            raise Invalid.field("labels", "give each key once, as key: value")
        result = jobs.bulk_action(action, now(), labels=labels)
        asked = len(result.changed) + len(result.unchanged)
    else:
        ids = request.form.getlist("ids")
        if not ids:
            raise Invalid.field("ids", "select at least one job")
        result = jobs.bulk_action(action, now(), ids)
        asked = len(set(ids))
    message = bulk_message(action, result, asked)
    list_url = back("/ui/jobs")
    if htmx_target() != "job-table":
        flash(message)
        return redirect(list_url, 303)
    context = list_context(MultiDict(parse_qsl(urlsplit(list_url).query)))
    return toast(page("jobs.html", ("job-table",), next=list_url, **context), message)


def label_filter(texts: list[str]) -> tuple[tuple[str, str | None], ...]:
    """The list's label filters as typed, one a line (or one a `label` argument, as the API
    takes them): `key: value`, or `key` (or `key:`) for any value; jobs carrying all of
    them. A line no label can match, or more than MAX_LABELS, is a 400 naming `label`."""
    lines = [line.strip() for text in texts for line in text.split("\n") if line.strip()]
    if len(lines) > MAX_LABELS:
        raise BadLookup.field("label", f"filter by {MAX_LABELS} labels at most")
    pairs: dict[tuple[str, str | None], None] = {}
    for line in lines:
        key, _, value = (part.strip() for part in line.partition(":"))
        if not LABEL_KEY.fullmatch(key) or (value and not LABEL_VALUE.fullmatch(value)):
            raise BadLookup.field("label", f"{line[:60]!r}: write it as key: value, or key alone")
        pairs[key, value or None] = None
    return tuple(pairs)


def exact_labels(pairs: tuple[tuple[str, str | None], ...]) -> dict[str, str] | None:
    """The filter's labels as the store's bulk actions take them, when it names exact labels:
    at least one, each with a value, no key twice. None otherwise."""
    labels = {key: value for key, value in pairs if value}
    return labels if labels and len(labels) == len(pairs) else None


def bulk_message(action: str, result: jobs.BulkResult, asked: int) -> str:
    changed, unchanged = len(result.changed), len(result.unchanged)
    message = f"{BULK_DONE[action]} {changed} job{'s' if changed != 1 else ''}"
    if unchanged:
        message += f"; {unchanged} already {BULK_ALREADY[action]}"
    if asked - changed - unchanged:
        message += f"; {asked - changed - unchanged} no longer existed"
    return message


# The form


@bp.get("/jobs/new")
def new_job() -> Response:
    zone = viewer_zone()
    if request.args:
        form = forms.JobForm.from_values(request.args, zone)
    else:
        form = forms.JobForm.blank(zone, now())
    return form_page(form, None)


@bp.post("/jobs/new")
def create_job() -> Response:
    form = forms.JobForm.from_values(request.form, viewer_zone())
    current = now()
    try:
        job = jobs.create_job(jobinput.job_values(forms.job_in(form, current)), current)
    except forms.FormErrors as exc:
        return form_page(form, None, exc.errors)
    except Invalid as error:
        return form_page(form, None, forms.errors_of(error))
    flash(f"Job created: {job_label(job)}")
    if job.target_type == "webhook" and not form.webhook_secret:
        show_secret_once(job)  # made for it: shown this once
    return redirect(f"/ui/jobs/{job.id}", 303)


@bp.get("/jobs/<job_id>/edit")
def edit_job(job_id: str) -> Response:
    job = jobs.get_job(job_id)
    if request.args:
        form = forms.JobForm.from_values(request.args, job.timezone)
    else:
        form = forms.JobForm.from_job(job)
    return form_page(form, job)


@bp.post("/jobs/<job_id>/edit")
def update_job(job_id: str) -> Response:
    job = jobs.get_job(job_id)
    was_webhook = job.target_type == "webhook"
    form = forms.JobForm.from_values(request.form, job.timezone)
    current = now()
    try:
        values = jobinput.job_values(forms.job_in(form, current, job))
        saved = jobs.update_job(job_id, values, current)
    except forms.FormErrors as exc:
        return form_page(form, job, exc.errors)
    except Invalid as error:
        return form_page(form, job, forms.errors_of(error))
    flash("Job saved")
    if saved.target_type == "webhook" and not was_webhook and not form.webhook_secret:
        show_secret_once(saved)  # a webhook now: its secret was made for it
    return redirect(f"/ui/jobs/{job_id}", 303)


def form_page(
    form: forms.JobForm, job: Job | None, errors: dict[str, str] | None = None
) -> Response:
    """The form, or its preview block (with the submit button and the timing fields' errors
    out of band) when htmx asks for #preview."""
    preview = forms.preview(form, now())
    return page(
        "job_form.html",
        ("preview",),
        status=422 if errors else 200,
        form=form,
        job=job,
        errors=preview.errors | (errors or {}),
        failed=bool(errors),
        preview=preview,
        kinds=forms.WHEN_KINDS,
        target_types=forms.TARGET_TYPES,
        redis_keys=forms.REDIS_KEYS,
        methods=forms.WEBHOOK_METHODS,
        misfire_policies=forms.MISFIRE_POLICIES,
        on_complete_choices=forms.ON_COMPLETE,
        on_excluded_choices=calendar_form.ON_EXCLUDED,
        dst_gap_choices=calendar_form.DST_GAP,
        dst_repeat_choices=calendar_form.DST_REPEAT,
        dead_letter_types=forms.DEAD_LETTER_TYPES,
        retry_defaults=RetryPolicy.of(current_app.config["DEFAULT_RETRY"]),
        labels=forms.FIELD_LABELS,
        timing_fields=forms.TIMING_FIELDS,
        zones=zone_names(),
        action=f"/ui/jobs/{job.id}/edit" if job else "/ui/jobs/new",
    )


@bp.post("/jobs/check-payload")
def check_payload() -> str:
    """The payload's error element, checked as the user types."""
    message = forms.payload_error(request.form.get("payload", ""), "template" in request.form)
    return render_template("_field_error.html", name="payload", message=message, oob=False)


# One job


@bp.get("/jobs/<job_id>")
@live(("job-live", "job-runs"), shows=("next runs",))  # 304 if unchanged (app/ui/live.py)
def job_page(job_id: str) -> Response:
    job = jobs.get_job(job_id)
    current = now()
    cursor = request.args.get("cursor") or None
    found, next_cursor = runs.list_runs(JOB_RUNS_SHOWN, cursor, runs.RunFilter(job_id=job.id))
    dead = runs.list_runs(1, None, runs.RunFilter(job_id=job.id, status="dead"))[0]
    secret = new_secret(job)
    response = page(
        "job.html",
        ("job-live", "job-runs"),
        job=job,
        offset_ms=jobstate.window_offset(job.id, job.window).total_seconds() * 1000,
        new_secret=secret,
        secrets=jobs.secrets_of(job.target),
        runs=found,
        job_of={job.id: job},
        dead_letters=runs.dead_letters_of(found),
        next_cursor=next_cursor,
        paged=bool(cursor),
        has_dead=bool(dead),
        next_times=next_times(job, current, NEXT_TIMES),
        **calendar_notes(job, current, NEXT_TIMES),
        live=LIVE_TRIGGER,
    )
    if secret:
        response.headers["Cache-Control"] = "no-store"  # the back button must not show it again
    return response


def next_times(job: Job, current: datetime, count: int) -> list[datetime]:
    """The job's next run and the times after it; for a paused job, the times if resumed now."""
    rules = job_timing(job)
    if job.status == "completed":
        return []
    if job.status == "paused" or job.next_run_at is None:
        offset = jobstate.window_offset(job.id, job.window)
        times = timing.occurrences(rules, current, count, fired=job.occurrence_count)
        return [t + offset for t in times]
    return jobs.upcoming_fires(job, count)


def calendar_notes(job: Job, current: datetime, count: int) -> dict[str, Any]:
    """Why DST or a day off moved or doubled a coming time (keyed by when it fires), and the
    times skipped among them, with why."""
    if job.status == "completed":
        return {"time_notes": {}, "skipped_times": []}
    offset = jobstate.window_offset(job.id, job.window)
    found = timing.explained(job_timing(job), current, count)
    notes = {o.at + offset: [n.words for n in o.notes] for o in found if not o.skipped}
    skipped = [(o.at, [n.words for n in o.notes]) for o in found if o.skipped]
    return {"time_notes": notes, "skipped_times": skipped}


# Actions


@bp.post("/jobs/<job_id>/pause")
def pause_job(job_id: str) -> Response:
    """Pause, with an optional note and end (a wall time in the viewer's zone)."""
    errors: dict[str, str] = {}
    until = wall_instant(request.form.get("until", ""), viewer_zone(), "until", errors)
    if errors:
        raise Invalid.field("until", errors["until"])
    note = request.form.get("note", "").strip() or None
    if note is not None and len(note) > 500:
        raise Invalid.field("note", "at most 500 characters")
    job = jobs.pause_job(job_id, now(), jobs.PauseTerms(note, until))
    if until is not None:
        return after_action(job, f"Job paused until {local_time(until).striptags()}")
    return after_action(job, "Job paused: it does not fire until resumed")


@bp.post("/jobs/<job_id>/resume")
def resume_job(job_id: str) -> Response:
    job = jobs.resume_job(job_id, now())
    if job.status == "completed":
        return after_action(job, "Job resumed, and completed: it has no time left to fire")
    return after_action(job, "Job resumed")


@bp.post("/jobs/<job_id>/run")
def run_job(job_id: str) -> Response:
    jobs.run_job_now(job_id, now())
    return after_action(jobs.get_job(job_id), "Run started: the job fires once, now")


def _backfill(job_id: str, values: Mapping[str, str], *, dry_run: bool) -> backfill.Backfill:
    """A backfill over the form's range (wall times in the viewer's zone)."""
    errors: dict[str, str] = {}
    start = wall_instant(values.get("from", ""), viewer_zone(), "from", errors)
    end = wall_instant(values.get("to", ""), viewer_zone(), "to", errors)
    if start is None and "from" not in errors:
        errors["from"] = "a date and time is required"
    if end is None and "to" not in errors:
        errors["to"] = "a date and time is required"
    if errors or start is None or end is None:
        name, message = next(iter(errors.items()))
        raise Invalid.field(name, message)
    return backfill.backfill(job_id, start, end, now(), dry_run=dry_run)


@bp.get("/jobs/<job_id>/backfill-count")
def backfill_count(job_id: str) -> str:
    """How many runs a backfill of the typed range would make, as the person types."""
    try:
        counted = _backfill(job_id, request.args, dry_run=True)
        text = (
            f"It makes {counted.occurrences - counted.existing:,} runs: the range holds "
            f"{counted.occurrences:,} times, {counted.existing:,} of them with a run already."
        )
    except Invalid as error:
        text = f"{error.errors[0].field}: {error.errors[0].message}"
    return f'<p id="backfill-count" class="muted" aria-live="polite">{escape(text)}</p>'


@bp.post("/jobs/<job_id>/backfill")
def backfill_job(job_id: str) -> Response:
    done = _backfill(job_id, request.form, dry_run=False)
    job = jobs.get_job(job_id)
    return after_action(job, f"Backfilled {done.written:,} runs ({done.existing:,} had one)")


def after_action(job: Job, message: str) -> Response:
    """The job's row when the action came from it (htmx), else back to the page it came from."""
    if htmx_target() == f"job-row-{job.id}":
        html = render_template("_job_row.html", job=job, next=back("/ui/jobs"))
        return toast(make_response(html), message)
    flash(message)
    return redirect(back(f"/ui/jobs/{job.id}"), 303)


@bp.delete("/jobs/<job_id>")
def delete_job(job_id: str) -> Response:
    job = jobs.get_job(job_id)
    label = job_label(job)
    jobs.delete_job(job_id, now())
    message = f"Job deleted: {label}"
    if htmx_target() == f"job-row-{job_id}":
        return toast(make_response(""), message)  # the row is swapped for nothing
    flash(message)
    response = make_response("", 200)
    response.headers["HX-Location"] = back("/ui/jobs")
    return response


# The signing secret of a webhook job: shown once, right after it is made.

NEW_SECRET = "new_secret"  # session key: {"job": id, "digest": of the secret to show}
SECRET_HINT_CHARS = 10  # "whsec_" and 4 characters: enough to tell secrets apart


@bp.app_template_global("secret_hint")
def secret_hint(target: dict[str, Any]) -> str:
    """What pages show of a webhook's secrets: the start of each, never a whole one."""
    shown = [secret[:SECRET_HINT_CHARS] + "…" for secret in jobs.secrets_of(target)]
    return ", ".join(shown) or "none"


def show_secret_once(job: Job) -> None:
    """Let the job's next page show its newest secret, once. The session (a signed cookie)
    holds a digest, never the secret: the page takes the secret from the job itself."""
    newest = jobs.secrets_of(job.target)[:1]
    if newest:
        session[NEW_SECRET] = {"job": str(job.id), "digest": _digest(newest[0])}


def new_secret(job: Job) -> str | None:
    """The secret made for this job since its page was last shown, if any (then forgotten;
    a newer one made since, elsewhere, is not shown)."""
    if htmx_target() or (session.get(NEW_SECRET) or {}).get("job") != str(job.id):
        return None  # a refresh of part of the page, or none made: nothing to show
    digest = session.pop(NEW_SECRET).get("digest")
    newest = jobs.secrets_of(job.target)[:1]
    return newest[0] if newest and hmac.compare_digest(_digest(newest[0]), str(digest)) else None


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@bp.post("/jobs/<job_id>/rotate-secret")
def rotate_secret(job_id: str) -> Response:
    job = jobs.rotate_secret(job_id, now())
    show_secret_once(job)
    flash("New signing secret made: deliveries are signed with it and the old ones")
    return redirect(f"/ui/jobs/{job_id}", 303)


@bp.post("/jobs/<job_id>/drop-old-secrets")
def drop_old_secrets(job_id: str) -> Response:
    jobs.drop_old_secrets(job_id, now())
    flash("Old signing secrets dropped: deliveries are signed with the newest only")
    return redirect(f"/ui/jobs/{job_id}", 303)
