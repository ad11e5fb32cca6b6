"""The job form: its fields as the browser sends them, turned into the API's JobIn.

The UI validates nothing the API would not: it builds the same JobIn and calls the same store
functions, so a bad field gets the API's own message. What is the form's alone is reading its
text inputs (a date and time in a zone, numbers) and one help for people typing JSON by hand.
Errors are keyed by form field; each field shows its own in the element id="error-<field>".
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timedelta
from typing import Any, get_args

from pydantic import ValidationError

from app import jobinput, jsontext, payloads, timing
from app.api.jobs import preview_of
from app.errors import Invalid
from app.instants import format_instant
from app.models import Job
from app.schemas import (
    JobIn,
    TimingFields,
    WebhookTarget,
    check_header,
    checked_labels,
    invalid_from,
)
from app.timing.zones import get_zone, to_instant, to_wall
from app.ui import brokerform, calendar_form

WHEN_KINDS = {
    "now": "Now",
    "at": "Once, at a date and time",
    "daily": "Daily",
    "weekly": "Weekly",
    "interval": "Every N seconds",
    "cron": "Cron",
    "rrule": "Calendar rule",
}
TARGET_TYPES = {
    "queue": "Built-in queue", "sqs": "SQS queue", "webhook": "Webhook", "sns": "SNS topic",
    "eventbridge": "EventBridge", "redis": "Redis", "amqp": "RabbitMQ", "nats": "NATS",
    "celery": "Celery task",
}  # fmt: skip
REDIS_KEYS = {"stream": "Stream (XADD)", "list": "List (LPUSH)"}
WEBHOOK_METHODS: tuple[str, ...] = get_args(WebhookTarget.model_fields["method"].annotation)
# A dead letter target is any target (or none): its fields are the target's, prefixed.
DEAD_LETTER_TYPES = {"none": "None", **TARGET_TYPES}
DEAD_LETTER_PREFIX = "dead_letter_"
# A target's form fields (unprefixed), as _target_fields.html shows them for the job's target
# and, each prefixed with DEAD_LETTER_PREFIX, for its dead letter target.
TARGET_FORM_FIELDS = (
    "queue_name", "sqs_url", "sqs_region", "sqs_group", "webhook_url", "webhook_method",
    "webhook_headers", "webhook_timeout", "webhook_secret", "max_in_flight",
    *brokerform.FIELDS,
)  # fmt: skip
ON_COMPLETE = {"keep": "Keep it (pruned after the retention days)", "delete": "Delete it"}
MISFIRE_POLICIES = {
    "coalesce": "Fire once for all it missed",
    "skip": "Skip what it missed",
    "all": "Fire every missed time",
}
# The fields that decide when a job fires; the preview checks these and shows their errors.
TIMING_FIELDS = ("when", "at", "timezone", "interval", "cron", "start_at", "end_at", "max_runs",
                 *calendar_form.FIELDS)  # fmt: skip
PREVIEW_COUNT = 5

# API field (first part) -> form field.
_API_FIELDS = {
    "at": "at",
    "minute": "at",
    "recurring": "when",
    "timezone": "timezone",
    "interval": "interval",
    "cron": "cron",
    "startAt": "start_at",
    "endAt": "end_at",
    "maxRuns": "max_runs",
    "payload": "payload",
    "name": "name",
    "misfire": "misfire",
    "maxCatchUp": "max_catch_up",
    "window": "window",
    "onComplete": "on_complete",
    "template": "template",
    "labels": "labels",
    "status": "paused",
}
_TARGET_FIELDS = {
    "name": "queue_name",
    "queueUrl": "sqs_url",
    "region": "sqs_region",
    "messageGroupId": "sqs_group",
    "url": "webhook_url",
    "method": "webhook_method",
    "headers": "webhook_headers",
    "timeout": "webhook_timeout",
    "secret": "webhook_secret",
    "maxInFlight": "max_in_flight",
    "connection": "connection",
    "stream": "redis_key",
    "list": "redis_key",
    "maxLen": "redis_max_len",
    "exchange": "amqp_exchange",
    "routingKey": "amqp_routing_key",
    "subject": "nats_subject",
    "task": "celery_task",
    "queue": "celery_queue",
    "topicArn": "sns_topic",
    "eventBus": "eb_bus",
    "source": "eb_source",
    "detailType": "eb_detail_type",
}
_AWS_TYPES = ("sns", "eventbridge")  # their region is aws_region, SQS's sqs_region
# API field -> (form field prefix, the field of its type): a target's errors go to its section.
_TARGET_SECTIONS = {"target": ("", "target_type"),
                    "deadLetter": (DEAD_LETTER_PREFIX, "dead_letter_type")}  # fmt: skip
_RETRY_FIELDS = {
    "attempts": "attempts",
    "backoff": "backoff",
    "maxBackoff": "max_backoff",
    "maxAge": "max_age",
}


class FormErrors(Exception):
    """Field errors of a form: {form field: message}."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{key}: {value}" for key, value in errors.items()))
        self.errors = errors


@dataclass
class JobForm:
    """The job form's values, as text, exactly as the browser sends them."""

    name: str = ""
    payload: str = ""
    when: str = "at"
    at: str = ""  # datetime-local: a wall time in `timezone`
    timezone: str = "UTC"
    interval: str = ""
    cron: str = ""
    rrule: str = ""  # the calendar fields: app.ui.calendar_form
    exclude_days: str = ""
    exclude_holidays: str = ""
    on_excluded: str = "skip"
    dst_gap: str = "shift"
    dst_repeat: str = "first"
    target_type: str = "queue"
    queue_name: str = "default"
    sqs_url: str = ""
    webhook_url: str = ""
    webhook_method: str = "POST"
    # None: not sent (an older page, a script), so the job keeps its value.
    sqs_region: str | None = None
    sqs_group: str | None = None  # a FIFO queue's message group
    webhook_headers: str | None = None  # one "Name: value" a line
    webhook_timeout: str | None = None
    webhook_secret: str | None = None  # the user's own; empty keeps the job's or makes one
    max_in_flight: str | None = None
    # The broker and AWS targets (app.ui.brokerform): None, not sent.
    connection: str | None = None  # a CONNECTIONS name, never its URL
    redis_kind: str | None = None  # stream or list
    redis_key: str | None = None
    redis_max_len: str | None = None
    amqp_exchange: str | None = None
    amqp_routing_key: str | None = None
    nats_subject: str | None = None
    celery_task: str | None = None
    celery_queue: str | None = None
    sns_topic: str | None = None
    aws_region: str | None = None
    eb_bus: str | None = None
    eb_source: str | None = None
    eb_detail_type: str | None = None
    attempts: str = ""
    backoff: str = ""
    max_backoff: str | None = None
    max_age: str | None = None
    max_runs: str = ""
    start_at: str = ""
    end_at: str = ""
    misfire: str = "coalesce"
    max_catch_up: str = ""
    window: str | None = None  # a flexible window, seconds; None: not sent, kept
    on_complete: str | None = None  # None: not sent, the job keeps its choice
    # Where dead runs are told of: a DEAD_LETTER_TYPES key; None: not sent, the job keeps
    # its dead letter target. Its fields: TARGET_FORM_FIELDS (unprefixed) as sent, each
    # named dead_letter_<field> in the form; one absent was not sent.
    dead_letter_type: str | None = None
    dead_letter_target: dict[str, str] = field(default_factory=dict)
    labels: str | None = None  # one "key: value" a line; None: not sent, kept
    # A checkbox sends nothing when unticked: the hidden template_sent says it was on the
    # page. None: not on the page, the job keeps its choice.
    template: bool | None = None
    paused: bool = False

    @classmethod
    def from_values(cls, values: Mapping[str, str], default_zone: str) -> JobForm:
        """Read a submitted form (or query string); absent fields keep their defaults."""
        form = cls(timezone=default_zone)
        for item in fields(cls):
            if item.name in _TICKED or item.name == "dead_letter_target":
                continue
            if item.name in values:
                setattr(form, item.name, str(values[item.name]))
        for name in TARGET_FORM_FIELDS:
            if DEAD_LETTER_PREFIX + name in values:
                form.dead_letter_target[name] = str(values[DEAD_LETTER_PREFIX + name])
        form.paused = _ticked(values, "paused")
        if "template_sent" in values:
            form.template = _ticked(values, "template")
        return form

    @classmethod
    def blank(cls, zone: str, now: datetime) -> JobForm:
        """A new job: once, at the next full hour in the viewer's zone."""
        local = to_wall(now, get_zone(zone))
        start = (local + timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)
        return cls(timezone=zone, at=f"{start:%Y-%m-%dT%H:%M}")

    @classmethod
    def from_job(cls, job: Job) -> JobForm:
        zone = job.timezone
        retry = job.retry or {}
        dead_letter = job.dead_letter or {}
        when = job.recurring if job.recurring != "none" else "at"
        return cls(
            name=job.name or "",
            payload=job.payload,
            when=when,
            at=_wall_text(job.first_at, zone) if job.recurring != "cron" else "",
            **calendar_form.form_values(job),
            timezone=zone,
            interval=str(job.interval or ""),
            cron=job.cron or "",
            target_type=str((job.target or {}).get("type", "queue")),
            **target_form_values(job.target or {}),
            attempts=_number_text(retry.get("attempts")),
            backoff=_number_text(retry.get("backoff")),
            max_backoff=_number_text(retry.get("maxBackoff")),
            max_age=_number_text(retry.get("maxAge")),
            max_runs=str(job.max_runs or ""),
            start_at=_wall_text(job.start_at, zone),
            end_at=_wall_text(job.end_at, zone),
            misfire=job.misfire,
            max_catch_up=str(job.max_catch_up or ""),
            window=str(job.window or ""),
            on_complete=job.on_complete,
            dead_letter_type=str(dead_letter.get("type", "none")),
            dead_letter_target=target_form_values(dead_letter) if dead_letter else {},
            labels="".join(f"{key}: {value}\n" for key, value in (job.labels or {}).items()),
            template=job.template,
            paused=job.status == "paused",
        )

    def target_values(self, prefix: str) -> dict[str, str | None]:
        """One target section's fields by their unprefixed names: the job's target ("") or
        its dead letter target (DEAD_LETTER_PREFIX); None: not sent."""
        if prefix == DEAD_LETTER_PREFIX:
            return {name: self.dead_letter_target.get(name) for name in TARGET_FORM_FIELDS}
        return {name: getattr(self, name) for name in TARGET_FORM_FIELDS}

    def query(self) -> dict[str, str]:
        """The values as a query string would carry them (for links and tests)."""
        values = {
            key: str(value)
            for key, value in asdict(self).items()
            if key not in (*_TICKED, "dead_letter_target") and value is not None
        }
        for name, value in self.dead_letter_target.items():
            values[DEAD_LETTER_PREFIX + name] = value
        if self.paused:
            values["paused"] = "on"
        if self.template is not None:
            values["template_sent"] = "1"
            if self.template:
                values["template"] = "on"
        return values


_TICKED = ("paused", "template")  # checkboxes: sent as "on", or not at all


def _ticked(values: Mapping[str, str], name: str) -> bool:
    return values.get(name) in ("on", "true", "1")


@dataclass
class Preview:
    """What the rule in the form does: words and the next times, or what is wrong with it."""

    description: str = ""
    timezone: str = "UTC"
    times: list[datetime] = field(default_factory=list)
    due_now: bool = False  # the first time has passed: it fires as soon as it is saved
    errors: dict[str, str] = field(default_factory=dict)
    # Per time: why DST or a day off moved, doubled or skipped it (the preview call's notes).
    notes: dict[datetime, list[str]] = field(default_factory=dict)
    skipped: set[datetime] = field(default_factory=set)

    @property
    def valid(self) -> bool:
        return not self.errors

    @property
    def error(self) -> str | None:
        """The first error, in words that name the field."""
        for name, message in self.errors.items():
            return f"{FIELD_LABELS.get(name, name)}: {message}"
        return None


FIELD_LABELS = {
    "when": "When",
    "at": "Date and time",
    "timezone": "Time zone",
    "interval": "Seconds between runs",
    "cron": "Cron",
    "rrule": "Calendar rule",
    "exclude_days": "Days off",
    "exclude_holidays": "Public holidays",
    "on_excluded": "A time on a day off",
    "dst_gap": "A wall time the clocks skip",
    "dst_repeat": "A wall time the clocks repeat",
    "start_at": "Not before",
    "end_at": "Not after",
    "max_runs": "At most",
    "payload": "Payload",
    "name": "Name",
    "queue_name": "Queue name",
    "sqs_url": "SQS queue URL",
    "webhook_url": "Webhook URL",
    "webhook_method": "Method",
    "target_type": "Target",
    "sqs_region": "Region",
    "sqs_group": "Message group",
    "webhook_headers": "Headers",
    "webhook_timeout": "Timeout",
    "webhook_secret": "Signing secret",
    "max_in_flight": "Calls in flight at most",
    "attempts": "Attempts",
    "backoff": "First retry after",
    "max_backoff": "Longest wait between retries",
    "max_age": "Give up retrying after",
    "misfire": "After downtime",
    "max_catch_up": "Missed times fired at most",
    "window": "Flexible window",
    "on_complete": "Once completed",
    "dead_letter_type": "Dead letters",
    "labels": "Labels",
    "template": "Fill placeholders at delivery",
    "paused": "Paused",
    "form": "Job",
}
FIELD_LABELS |= {
    "connection": "Connection", "redis_key": "Key", "redis_max_len": "Stream length cap",
    "amqp_exchange": "Exchange", "amqp_routing_key": "Routing key", "nats_subject": "Subject",
    "celery_task": "Task name", "celery_queue": "Queue", "sns_topic": "Topic ARN",
    "aws_region": "Region", "eb_bus": "Event bus", "eb_source": "Source",
    "eb_detail_type": "Detail type",
}  # fmt: skip
FIELD_LABELS |= {
    DEAD_LETTER_PREFIX + name: f"Dead letters: {FIELD_LABELS[name]}"
    for name in TARGET_FORM_FIELDS
    if name in FIELD_LABELS
}


def preview(form: JobForm, now: datetime) -> Preview:
    """The preview fragment's content: the API's preview of the form's timing fields."""
    try:
        data = TimingFields.model_validate(timing_fields(form, now))
        rules = jobinput.make_timing(data)
    except FormErrors as exc:
        return Preview(errors=exc.errors)
    except ValidationError as exc:
        return Preview(errors=errors_of(invalid_from(exc)))
    except Invalid as error:
        return Preview(errors=errors_of(error))
    answer = preview_of(rules, now, PREVIEW_COUNT, explain=True)
    times = [datetime.fromisoformat(item["utc"].replace("Z", "+00:00")) for item in answer["times"]]
    items = list(zip(times, answer["times"], strict=True))
    notes = {t: item["explain"] for t, item in items if "explain" in item}
    skipped = {t for t, item in items if item.get("skipped")}
    first = timing.first_fire(rules, now)
    due_now = first is not None and first <= now
    if due_now and first is not None:
        times = [first, *times[: PREVIEW_COUNT - 1]]
    return Preview(answer["description"], answer["timezone"], times, due_now, notes=notes,
                   skipped=skipped)  # fmt: skip


def timing_fields(form: JobForm, now: datetime) -> dict[str, Any]:
    """The API's timing fields (recurring, at, timezone, cron, interval, …) from the form."""
    errors: dict[str, str] = {}
    data: dict[str, Any] = {"timezone": form.timezone.strip() or "UTC"}
    kind = form.when if form.when in WHEN_KINDS else ""
    if not kind:
        raise FormErrors({"when": f"choose one of: {', '.join(WHEN_KINDS.values())}"})
    data["recurring"] = {"now": "none", "at": "none"}.get(kind, kind)
    zone = _zone_or_error(data["timezone"], errors)
    if kind == "now":
        data["at"] = format_instant(now)
    elif kind in ("at", "daily", "weekly", "interval", "rrule"):
        if form.at.strip():
            data["at"] = _instant_text(form.at, zone, "at", errors)
        elif kind == "rrule":
            pass  # no start given: the rule starts at the minute after the job is saved
        elif kind == "interval":
            data["at"] = format_instant(now)  # no start given: the first run is now
        else:
            errors["at"] = "a date and time is required: it says when the job first fires"
    if kind == "interval":
        data["interval"] = _integer(form.interval, "interval", errors, "a whole number of seconds")
        if data["interval"] is None and "interval" not in errors:
            errors["interval"] = "how many seconds between runs? A whole number, at least 1"
    if kind == "cron":
        data["cron"] = " ".join(form.cron.split()) or None
        if data["cron"] is None:
            errors["cron"] = "a cron expression is required, such as 0 9 * * MON-FRI"
    data |= calendar_form.api_fields(form, kind, errors)
    for name, api_name in (("start_at", "startAt"), ("end_at", "endAt")):
        value = getattr(form, name)
        if value.strip():
            data[api_name] = _instant_text(value, zone, name, errors)
    data["maxRuns"] = _integer(form.max_runs, "max_runs", errors, "a whole number of runs")
    if errors:
        raise FormErrors(errors)
    return {key: value for key, value in data.items() if value is not None}


def job_in(form: JobForm, now: datetime, old: Job | None = None) -> JobIn:
    """The JobIn the API would get for this form; FormErrors (every field at fault) if bad.
    Editing `old`, what the form leaves out is kept from it."""
    old_target = old.target if old else None
    old_retry = old.retry if old else None
    errors: dict[str, str] = {}
    try:
        data = timing_fields(form, now)
    except FormErrors as exc:
        errors.update(exc.errors)
        data = {}
    payload_problem = payload_error(form.payload, bool(form.template))
    if payload_problem:
        errors["payload"] = payload_problem
    data["payload"] = form.payload
    if form.name.strip():
        data["name"] = form.name.strip()
    data["target"] = _target(form, old_target, errors)
    retry = _retry(form, old_retry, errors)
    if retry:
        data["retry"] = retry
    data["misfire"] = form.misfire
    window = _sent_integer(form.window, "window", errors, "a whole number of seconds")
    data["window"] = (old.window if old else None) if window is KEEP else window
    catch_up = _integer(form.max_catch_up, "max_catch_up", errors, "a whole number of runs")
    if catch_up is not None:
        data["maxCatchUp"] = catch_up
    data["onComplete"] = form.on_complete or (old.on_complete if old else "keep")
    data["template"] = form.template if form.template is not None else bool(old and old.template)
    dead_letter = _dead_letter(form, old.dead_letter if old else None, errors)
    if dead_letter is not None:
        data["deadLetter"] = dead_letter
    labels = _labels(form.labels, errors)
    data["labels"] = (old.labels or {} if old else {}) if labels is KEEP else labels
    data["status"] = "paused" if form.paused else "active"
    try:
        checked = JobIn.model_validate(data)
    except ValidationError as exc:
        for name, message in errors_of(invalid_from(exc)).items():
            errors.setdefault(name, message)
        raise FormErrors(errors) from exc
    if errors:
        raise FormErrors(errors)
    return checked


def payload_error(payload: str, template: bool) -> str | None:
    """What is wrong with a typed payload: JSON that does not parse, or (filled at delivery)
    an unknown placeholder."""
    error = json_payload_error(payload)
    if error is None and template:
        try:
            payloads.check_template(payload)
        except ValueError as exc:
            error = str(exc)
    return error


def json_payload_error(payload: str) -> str | None:
    """A help for hand-typed JSON: a payload that starts like JSON must parse as JSON."""
    if payload.lstrip()[:1] not in ("{", "["):
        return None
    try:
        jsontext.loads(payload, max_depth=None)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}"
        return f"looks like JSON but does not parse: {exc.msg} ({where})"
    except jsontext.TooDeep as exc:
        return f"looks like JSON but is {exc}"
    return None


def errors_of(error: Invalid) -> dict[str, str]:
    """Field errors keyed by form field (the first error of each field wins)."""
    found: dict[str, str] = {}
    for each in error.errors:
        found.setdefault(form_field(each.field), each.message)
    return found


def form_field(api_field: str) -> str:
    """The form field that shows an API field's error ("target.webhook.url" -> webhook_url)."""
    parts = api_field.split(".")
    if parts[0] in _TARGET_SECTIONS:  # target.url, deadLetter.webhook.headers.X-Name, ...
        prefix, type_field = _TARGET_SECTIONS[parts[0]]
        rest = parts[1:]
        kind = rest[0] if len(rest) > 1 and rest[0] in TARGET_TYPES else None
        if kind:
            rest = rest[1:]  # the type's tag, not a field (target.queue.name, target.celery.queue)
        if rest[-1:] == ["region"] and kind in _AWS_TYPES:
            return prefix + "aws_region"
        named = [_TARGET_FIELDS[part] for part in rest if part in _TARGET_FIELDS]
        return prefix + named[0] if named else type_field
    if parts[0] == "retry":
        return _RETRY_FIELDS.get(parts[-1], "attempts")
    return calendar_form.form_field(parts) or _API_FIELDS.get(parts[0], "form")


def target_form_values(target: dict[str, Any]) -> dict[str, str]:
    """A target's form fields (TARGET_FORM_FIELDS, unprefixed), for either section."""
    headers = target.get("headers") or {}
    return {
        "queue_name": str(target.get("name", "default")),
        "sqs_url": str(target.get("queueUrl", "")),
        "webhook_url": str(target.get("url", "")),
        "webhook_method": str(target.get("method", "POST")),
        "sqs_region": str(target.get("region") or ""),
        "sqs_group": str(target.get("messageGroupId") or ""),
        "webhook_headers": "".join(f"{name}: {value}\n" for name, value in headers.items()),
        "webhook_timeout": _number_text(target.get("timeout")),
        "webhook_secret": "",  # never shown again: empty keeps it
        "max_in_flight": _number_text(target.get("maxInFlight")),
        **brokerform.fields_of(target),
    }


def _target(form: JobForm, old: dict[str, Any] | None, errors: dict[str, str]) -> dict[str, Any]:
    """The job's target, from the form's target section."""
    return target_of(form.target_type, form.target_values(""), "", old, errors)


def _dead_letter(
    form: JobForm, old: dict[str, Any] | None, errors: dict[str, str]
) -> dict[str, Any] | None:
    """The dead letter target the form names (None: none, or the service's default). Not
    sent, the job's is kept; otherwise it is read as the target is, from its own fields."""
    kind = form.dead_letter_type
    if kind is None:
        return old
    if kind == "none":
        return None
    values = form.target_values(DEAD_LETTER_PREFIX)
    return target_of(kind, values, DEAD_LETTER_PREFIX, old, errors)


def target_of(
    kind: str,
    values: Mapping[str, str | None],
    prefix: str,
    old: dict[str, Any] | None,
    errors: dict[str, str],
) -> dict[str, Any]:
    """The target one section of the form names: `values` are its fields by unprefixed name
    (None: not sent), errors are keyed by prefix + field. What the form leaves out is kept
    from the job's target `old` when its type stays the same (a webhook's secret too, by the
    store, unless a new one is typed in)."""
    if kind == "queue":
        return {"type": "queue", "name": (values["queue_name"] or "").strip() or "default"}
    calls = _sent_integer(
        values["max_in_flight"], prefix + "max_in_flight", errors, "a whole number of calls"
    )
    kept = {k: v for k, v in (old or {}).items() if k != "secret"}
    if kept.get("type") != kind:
        kept = {}
    if kind in brokerform.KINDS:
        if calls is KEEP:
            calls = kept.get("maxInFlight", KEEP)
        return brokerform.target_of(kind, values, prefix, calls, errors)
    if kind not in ("sqs", "webhook"):
        return {"type": kind}  # the API's own error names it
    if kind == "sqs":
        return _merged(
            kept,
            type="sqs",
            queueUrl=(values["sqs_url"] or "").strip(),
            region=_sent_text(values["sqs_region"]),
            messageGroupId=_sent_text(values["sqs_group"]),
            maxInFlight=calls,
        )
    method = values["webhook_method"]
    return _merged(
        kept,
        type="webhook",
        url=(values["webhook_url"] or "").strip(),
        method=KEEP if method is None else method if method in WEBHOOK_METHODS else "POST",
        headers=_headers(values["webhook_headers"], prefix + "webhook_headers", errors),
        timeout=_sent_number(values["webhook_timeout"], prefix + "webhook_timeout", errors),
        secret=_sent_text(values["webhook_secret"]) or KEEP,  # empty: the job's, or a new one
        maxInFlight=calls,
    )


def _retry(
    form: JobForm, old: dict[str, Any] | None, errors: dict[str, str]
) -> dict[str, Any] | None:
    """The job's retry policy from the form: empty fields take the defaults, fields the form
    did not send are kept from the job's."""
    retry = _merged(
        dict(old or {}),
        attempts=_integer(form.attempts, "attempts", errors, "a whole number of attempts"),
        backoff=_number(form.backoff, "backoff", errors),
        maxBackoff=_sent_number(form.max_backoff, "max_backoff", errors),
        maxAge=_sent_number(form.max_age, "max_age", errors),
    )
    return retry or None


KEEP: Any = object()  # a field the form did not send: the job keeps its value


def _merged(kept: dict[str, Any], **values: Any) -> dict[str, Any]:
    """`kept` with the form's values: each one set, None (left empty) removed so the API's
    default applies, KEEP left as it was."""
    merged = dict(kept)
    for key, value in values.items():
        if value is None:
            merged.pop(key, None)
        elif value is not KEEP:
            merged[key] = value
    return merged


def _sent_text(value: str | None) -> Any:
    return KEEP if value is None else value.strip() or None


def _sent_integer(value: str | None, name: str, errors: dict[str, str], what: str) -> Any:
    return KEEP if value is None else _integer(value, name, errors, what)


def _sent_number(value: str | None, name: str, errors: dict[str, str]) -> Any:
    return KEEP if value is None else _number(value, name, errors)


def _headers(text: str | None, name: str, errors: dict[str, str]) -> Any:
    """`Name: value` lines as the API's headers; an error names the line at fault."""
    return _pairs(text, name, check_header, errors)


def _labels(text: str | None, errors: dict[str, str]) -> Any:
    """`key: value` lines as the API's labels (a value may hold colons of its own)."""
    return _pairs(text, "labels", lambda key, value: checked_labels({key: value}), errors)


def _pairs(
    text: str | None, name: str, check: Callable[[str, str], object], errors: dict[str, str]
) -> Any:
    """`key: value` lines, each checked; KEEP when not sent or at fault (the error names
    the line)."""
    if text is None:
        return KEEP
    pairs: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        key, colon, value = (part.strip() for part in line.partition(":"))
        if not line.strip():
            continue
        try:
            if not colon or not key:
                raise ValueError("write it as name: value")
            check(key, value)
        except ValueError as exc:
            errors[name] = f"line {number}: {exc}"
            return KEEP
        pairs[key] = value
    return pairs


def _zone_or_error(name: str, errors: dict[str, str]) -> str | None:
    try:
        return timing.canonical_timezone(name)
    except timing.TimingError as exc:
        errors["timezone"] = exc.message
        return None


def _instant_text(value: str, zone: str | None, name: str, errors: dict[str, str]) -> str | None:
    """A datetime-local value (a wall time in `zone`) as an RFC 3339 instant."""
    try:
        local = datetime.fromisoformat(value.strip())
    except ValueError:
        errors[name] = "must be a date and time, such as 2030-01-01T09:00"
        return None
    if local.tzinfo is not None:
        errors[name] = "must be a wall time, without an offset (the zone says which)"
        return None
    if zone is None:
        return None  # the zone is wrong; that error is reported once, on the zone
    try:
        return format_instant(to_instant(local, get_zone(zone)))
    except (OverflowError, ValueError):
        errors[name] = "is out of range"
        return None


def _integer(value: str, name: str, errors: dict[str, str], what: str) -> int | None:
    text = value.strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        errors[name] = f"must be {what}"
        return None


def _number(value: str, name: str, errors: dict[str, str]) -> float | None:
    text = value.strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        errors[name] = "must be a number of seconds"
        return None


def _wall_text(instant: datetime | None, zone: str) -> str:
    if instant is None:
        return ""
    local = to_wall(instant, get_zone(zone))
    return f"{local:%Y-%m-%dT%H:%M:%S}" if local.second else f"{local:%Y-%m-%dT%H:%M}"


def _number_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
