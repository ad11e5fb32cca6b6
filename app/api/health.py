"""Liveness, readiness and the API's own description."""

from __future__ import annotations

from flask import Response, current_app, jsonify
from sqlalchemy import text

from app import clock_of
from app.api import bp
from app.api.openapi import document, operation
from app.database import db
from app.metrics import render
from app.schemas import Health

TAG = "service"


@operation(bp, "GET", "/healthz", summary="The web process is up", tag=TAG, response=Health)
def healthz() -> Response:
    return jsonify({"status": "ok", "checks": {}})


@operation(bp, "GET", "/readyz", summary="The database answers", tag=TAG, response=Health,
           errors=[503])  # fmt: skip
def readyz() -> tuple[Response, int]:
    try:
        db.session.execute(text("SELECT 1"))
    except Exception as exc:  # any database failure means "not ready", never a 500
        return jsonify({"status": "unavailable", "checks": {"database": type(exc).__name__}}), 503
    return jsonify({"status": "ok", "checks": {"database": "ok"}}), 200


@bp.get("/openapi.json")
def openapi() -> Response:
    return jsonify(document("Scheduler", "1.0.0"))


@bp.get("/metrics")
def metrics() -> Response:
    """Prometheus text format: fires, lag, deliveries by outcome, queue depth, retries."""
    body = render(db.engine, clock_of(current_app).now())
    return Response(body, mimetype="text/plain; version=0.0.4")
