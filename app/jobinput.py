"""Job requests shaped into what the store writes, for the API and the UI alike.

app.schemas checks a request field by field (types, ranges, formats). What needs the
timing rules or the configuration is done here: the timing rules themselves, the payload
limit, the default target, a webhook to a literal address the guard refuses, the retry
policy with its defaults. Errors are app.errors, named by the request's field.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from flask import current_app

from app import clock_of, payloads, timing
from app.config import allow_networks, connections_of
from app.errors import BadLookup, Invalid, TooLarge
from app.netguard import check_address, parse_ip_literal
from app.retry import RetryPolicy
from app.schemas import JobIn, TimingFields
from app.targets import connections

DEFAULT_TARGET = {"type": "queue", "name": "default"}


@dataclass(frozen=True)
class JobValues:
    """A job as a request sets it: what app.jobs writes."""

    payload: str
    name: str | None
    rules: timing.Timing
    target: dict[str, Any]  # a webhook without a secret keeps the job's, or gets a new one
    retry: dict[str, Any]  # the whole policy, defaults filled in
    misfire: str
    max_catch_up: int | None
    paused: bool
    on_complete: str = "keep"  # or "delete": the job goes once its runs are finished
    template: bool = False  # placeholders filled at delivery (app.payloads)
    labels: Mapping[str, str] = field(default_factory=dict)
    window: int | None = None  # seconds of a flexible window (app.jobstate.window_offset)
    dead_letter: dict[str, Any] | None = None  # a target spec; a webhook's secret as target's


def job_values(data: JobIn) -> JobValues:
    check_payload(data.payload)
    if data.template:
        check_template(data.payload, data.name)
    target = _target(data)
    if not data.template:  # a template's payload is only known once filled
        check_payload_for(target, data.payload)
    return JobValues(
        payload=data.payload,
        name=data.name,
        rules=make_timing(data),
        target=target,
        retry=_retry(data),
        misfire=data.misfire,
        max_catch_up=data.maxCatchUp,
        paused=data.status == "paused",
        on_complete=data.onComplete,
        template=data.template,
        labels=data.labels,
        window=data.window,
        dead_letter=_dead_letter(data),
    )


def jobs_values(items: Sequence[JobIn]) -> list[JobValues]:
    """All of a batch or none: every item's errors, named `jobs.<index>.<field>`."""
    if len(items) == 1:
        return [job_values(items[0])]
    values, errors = [], []
    for index, data in enumerate(items):
        try:
            values.append(job_values(data))
        except Invalid as error:
            errors += error.prefixed(f"jobs.{index}.")
    if errors:
        raise Invalid(errors, "no job was created")
    return values


def make_timing(fields: TimingFields) -> timing.Timing:
    """The timing rules of a request (an rrule without `at` starts now: its DTSTART)."""
    minute = fields.minute
    if minute is not None and fields.at is not None:
        # Answers carry both; get-modify-put sends both back. They must agree.
        at = instant_field("at", fields.at)
        if math.floor(at.timestamp() / 60) == minute:
            minute = None
    try:
        return timing.make_timing(
            recurring=fields.recurring,
            minute=minute,
            at=fields.at,
            timezone=fields.timezone,
            cron=fields.cron,
            interval=fields.interval,
            start_at=fields.startAt,
            end_at=fields.endAt,
            max_runs=fields.maxRuns,
            rrule=fields.rrule,
            exclude=None
            if fields.exclude is None
            else fields.exclude.model_dump(exclude_none=True),
            on_excluded=fields.onExcluded,
            dst=None if fields.dst is None else fields.dst.model_dump(),
            created=clock_of(current_app).now() if fields.recurring == "rrule" else None,
        )
    except timing.TimingError as exc:
        raise Invalid.field(exc.field, exc.message) from exc


def instant_field(name: str, value: str, *, lookup: bool = False) -> datetime:
    """An RFC 3339 instant from a request, parsed by the timing rules' parser (`lookup`:
    a filter, not a value to store)."""
    try:
        return timing.parse_instant(value, name)
    except timing.TimingError as exc:
        raise (BadLookup if lookup else Invalid).field(name, exc.message) from exc


def check_payload(payload: str, field: str = "payload") -> None:
    limit = current_app.config["MAX_PAYLOAD_BYTES"]
    if len(payload.encode()) > limit:
        raise TooLarge.field(field, f"larger than {limit} bytes")


def check_template(payload: str, name: str | None) -> None:
    """Only known placeholders, and filled with the longest values it still fits the limit."""
    try:
        payloads.check_template(payload)
    except ValueError as exc:
        raise Invalid.field("payload", str(exc)) from None
    limit = current_app.config["MAX_PAYLOAD_BYTES"]
    if len(payloads.longest(payload, name).encode()) > limit:
        raise TooLarge.field("payload", f"filled in, it can be larger than {limit} bytes")


def _target(data: JobIn) -> dict[str, Any]:
    if data.target is None:
        return dict(current_app.config.get("DEFAULT_TARGET") or DEFAULT_TARGET)
    return _checked_target(data.target, "target")


def _dead_letter(data: JobIn) -> dict[str, Any] | None:
    """The job's dead letter target, checked as a target is; absent, the configured default
    (taken when the job is saved, as DEFAULT_TARGET is)."""
    if data.deadLetter is None:
        default = current_app.config.get("DEFAULT_DEAD_LETTER")
        return dict(default) if default else None
    return _checked_target(data.deadLetter, "deadLetter")


def _checked_target(target: Any, field: str) -> dict[str, Any]:
    spec: dict[str, Any] = target.model_dump(exclude_none=True)
    if spec["type"] == "webhook":
        _check_webhook_address(spec["url"], f"{field}.url")
    if "connection" in spec:
        known = connections_of(current_app.config)
        refusal = connections.refusal(known, spec["type"], spec["connection"])
        if refusal:
            raise Invalid.field(f"{field}.connection", refusal)
    return spec


def check_payload_for(target: dict[str, Any], payload: str) -> None:
    """A target that reads the payload (a Celery task's arguments, an event's detail)
    refuses one it could never deliver. (Imported here: the target modules bring their
    clients, kombu and boto3, which the web side otherwise never loads.)"""
    try:
        if target["type"] == "celery":
            from app.targets.celery import task_arguments

            task_arguments(payload)
        elif target["type"] == "eventbridge":
            from app.targets.eventbridge import json_detail

            json_detail(payload)
    except ValueError as exc:
        raise Invalid.field("payload", f"for a {target['type']} target: {exc}") from None


def _check_webhook_address(url: str, field: str = "target.url") -> None:
    """Refuse a webhook to a literal private address now; names are checked when connecting
    (what a name resolves to can change, so the dispatcher checks every connection)."""
    address = parse_ip_literal(urlsplit(url).hostname or "")
    if address is None:
        return
    refusal = check_address(address, allow_networks(current_app.config))
    if refusal:
        raise Invalid.field(field, f"refused: {refusal} (see WEBHOOK_ALLOW_NETWORKS)")


def _retry(data: JobIn) -> dict[str, Any]:
    defaults = RetryPolicy.of(current_app.config["DEFAULT_RETRY"])
    asked = data.retry.model_dump(exclude_none=True) if data.retry else None
    return RetryPolicy.of(asked, defaults).as_spec()
