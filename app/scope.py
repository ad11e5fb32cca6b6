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
from sqlalchemy import Select, exists, func, select

from app.database import db, is_postgresql
from app.errors import Invalid
from app.jobstate import DELETED
from app.models import Job, JobLabel

# Fewer jobs than this carry a label: a query starts from its rows. Sorting them costs
# about as much as walking the list order to a page of matches at this share of 1M jobs.
RARE_LABEL = 5_000


def current() -> Mapping[str, str]:
    """The caller's labels; empty when it may see every job."""
    labels = g.get("scope_labels") if has_app_context() else None
    return labels or {}


def with_labels(query: Select[Any], labels: Any) -> Select[Any]:
    """Only jobs carrying every one of `labels`, (key, value) pairs (a value of None: the
    key, any value): one lookup each in job_labels' primary key per job looked at, or, for
    a label few jobs carry, from that label's own rows (see _rare)."""
    for key, value in labels:
        carrying = select(JobLabel.job_id).where(JobLabel.key == key)
        if value is not None:
            carrying = carrying.where(JobLabel.value == value)
        if _rare(carrying):
            query = query.where(Job.id.in_(carrying))
        else:
            query = query.where(exists(carrying.where(JobLabel.job_id == Job.id)))
    return query


def _rare(carrying: Select[Any]) -> bool:
    """Whether fewer than RARE_LABEL jobs carry the label, on SQLite. Its planner knows no
    value's share, so it walks the jobs in list order, probing each one's labels: for a
    label a hundred jobs in a million carry, a list page walked them all (6.8 s). Driven
    from the label's rows instead, the page is those rows, sorted. (PostgreSQL's planner
    knows each value's share and picks the join itself.) The count stops at RARE_LABEL."""
    if is_postgresql(db.engine):
        return False
    bounded = select(func.count()).select_from(carrying.limit(RARE_LABEL).subquery())
    return bool(db.session.execute(bounded).scalar_one() < RARE_LABEL)


def jobs_in_scope(query: Select[Any]) -> Select[Any]:
    """A query over jobs, narrowed to the caller's slice; a deleted job whose last runs
    are still being delivered (app.jobstate.DELETED) is in no one's."""
    return with_labels(query.where(Job.status != DELETED), current().items())


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
