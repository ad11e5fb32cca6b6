"""The audit log, read-only."""

from __future__ import annotations

import uuid

from flask import Response

from app import audit
from app.api import bp
from app.api.jobs import paged
from app.api.openapi import operation
from app.cursors import decode_id_cursor
from app.instants import format_instant
from app.problems import field_problem
from app.schemas import AuditOut, AuditQuery


@operation(bp, "GET", "/audit", summary="Who changed what, newest first", tag="audit",
           query=AuditQuery, response=AuditOut, list_response=True)  # fmt: skip
def list_audit(query: AuditQuery) -> Response:
    job_id = None
    if query.jobId is not None:  # present but empty is not a job id either
        try:
            job_id = uuid.UUID(query.jobId)
        except ValueError:
            job_id = None
        if job_id is None or str(job_id) != query.jobId.lower():  # the form the API writes
            raise field_problem("jobId", "not a job id", 400)
    before = decode_id_cursor(query.cursor) if query.cursor else None
    entries = audit.list_entries(query.limit, before, job_id)
    next_cursor = None
    if len(entries) > query.limit:
        entries = entries[: query.limit]
        next_cursor = str(entries[-1].id)
    items = [
        {
            "id": e.id,
            "at": format_instant(e.at),
            "actor": e.actor,
            "action": e.action,
            "jobId": str(e.job_id) if e.job_id else None,
            "runId": str(e.run_id) if e.run_id else None,
            "detail": e.detail,
        }
        for e in entries
    ]
    return paged(items, next_cursor, query.limit)
