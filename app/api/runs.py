"""Run history across jobs, and retrying dead runs."""

from __future__ import annotations

from uuid import UUID

from flask import Response, jsonify

from app import runs
from app.api import bp
from app.api.jobs import now, paged, run_filter
from app.api.openapi import operation
from app.api.serialize import run_out, runs_out
from app.schemas import RunListQuery, RunOut

TAG = "runs"


@operation(bp, "GET", "/runs", summary="Runs of every job, newest first", tag=TAG,
           query=RunListQuery, response=RunOut, list_response=True)  # fmt: skip
def list_runs(query: RunListQuery) -> Response:
    page, cursor = runs.list_runs(query.limit, query.cursor, run_filter(query))
    return paged(runs_out(page), cursor, query.limit)


@operation(bp, "GET", "/runs/<uuid:runId>", summary="Get a run", tag=TAG, response=RunOut,
           errors=[404])  # fmt: skip
def get_run(runId: UUID) -> Response:
    return jsonify(runs_out([runs.get_run(str(runId))])[0])


@operation(bp, "POST", "/runs/<uuid:runId>/retry", summary="Retry a dead run", tag=TAG,
           response=RunOut, status=202, errors=[404, 409])  # fmt: skip
def retry_run(runId: UUID) -> tuple[Response, int]:
    return jsonify(run_out(runs.retry_run(str(runId), now()))), 202
