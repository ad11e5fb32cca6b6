"""The slice of jobs the caller may see and change: every job, or, for a key scoped by
labels, the jobs carrying all of them (object-level access, OWASP API1).

Authentication puts the key's labels in g.scope_labels; the stores (app.jobs, app.runs,
app.audit) narrow every query by them, so a job outside the slice is one that does not
exist: a 404, never a 403 that would tell it is there. The scheduler process has no
scope: it works on every job.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import g, has_app_context
from sqlalchemy import Select, exists, select

from app.errors import Invalid
from app.models import Job, JobLabel


def current() -> Mapping[str, str]:
    """The caller's labels; empty when it may see every job."""
    labels = g.get("scope_labels") if has_app_context() else None
    return labels or {}


def with_labels(query: Select[Any], labels: Any) -> Select[Any]:
    """Only jobs carrying every one of `labels`, (key, value) pairs (a value of None: the
    key, any value); one lookup each in job_labels' primary key."""
    for key, value in labels:
        found = exists().where(JobLabel.job_id == Job.id, JobLabel.key == key)
        if value is not None:
            found = found.where(JobLabel.value == value)
        query = query.where(found)
    return query


def jobs_in_scope(query: Select[Any]) -> Select[Any]:
    """A query over jobs, narrowed to the caller's slice."""
    return with_labels(query, current().items())


def job_ids_in_scope() -> Select[Any] | None:
    """The ids of the caller's jobs, for queries over runs and the audit log; None: all."""
    if not current():
        return None
    return jobs_in_scope(select(Job.id))


def labels_in_scope(labels: Mapping[str, str]) -> dict[str, str]:
    """A new or changed job's labels: the caller's own are added, and may not differ."""
    scoped = current()
    for key, value in scoped.items():
        if key in labels and labels[key] != value:
            raise Invalid.field(f"labels.{key}", f"this key's jobs carry {key}: {value}")
    return {**labels, **scoped}
