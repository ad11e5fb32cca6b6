"""The audit log in the UI: who changed which job, how and when."""

from __future__ import annotations

from flask import request
from werkzeug.wrappers import Response

from app import audit, jobs
from app.cursors import decode_id_cursor
from app.ui import bp
from app.ui.render import page

PAGE_SIZE = 50


@bp.get("/audit")
def audit_page() -> Response:
    before = request.args.get("before", "")
    entries = audit.list_entries(PAGE_SIZE, decode_id_cursor(before) if before else None)
    older = entries[PAGE_SIZE - 1].id if len(entries) > PAGE_SIZE else None
    entries = entries[:PAGE_SIZE]
    job_ids = [e.job_id for e in entries if e.job_id is not None]
    return page(
        "audit.html",
        ("audit-table",),
        entries=entries,
        job_of=jobs.jobs_by_id(job_ids),
        older=older,
        paged=bool(before),
    )
