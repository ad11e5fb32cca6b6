"""Creates with an Idempotency-Key header: a retry answers the first answer, creates nothing.

The HTTP side of app.idempotency: the header, the request's fingerprint, the answer kept
and given again (marked `Idempotent-Replayed: true`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from flask import Response, current_app, g, request

from app import clock_of, idempotency
from app.idempotency import KEY_FIELD, Answer, Claim
from app.jobs import BeforeCommit
from app.models import Job
from app.problems import field_problem

# Visible ASCII, as the draft's examples; an sf-string's quotes are taken off first.
KEY_PATTERN = re.compile(r"[\x21-\x7e]{1,255}")
Create = Callable[[BeforeCommit | None], list[Job]]
KEY_HEADER = {
    "name": KEY_FIELD,
    "required": False,
    "description": "Create once: a retry with the same key and body within 24 hours answers "
    "the first answer (Idempotent-Replayed: true) and creates nothing; the same key with "
    "another body is a 422.",
    "schema": {"type": "string", "pattern": "^[\x21-\x7e]{1,255}$"},
}


def claim_of_request() -> Claim | None:
    """The request's key and fingerprint; None without the header; a 400 for a bad key."""
    raw = request.headers.get(KEY_FIELD)
    if raw is None:
        return None
    key = raw.strip()
    if len(key) > 2 and key[0] == key[-1] == '"':
        key = key[1:-1]
    if not KEY_PATTERN.fullmatch(key):
        raise field_problem(KEY_FIELD, "must be 1 to 255 visible ASCII characters", 400)
    # The body as data, so a retry that orders its keys or spaces differently is the same.
    body = json.dumps(request.get_json(silent=True), sort_keys=True, separators=(",", ":"))
    fingerprint = idempotency.fingerprint_of(request.method, request.path, body)
    return Claim(g.get("actor", "anonymous"), key, fingerprint)


def create_once(create: Create, answer_of: Callable[[list[Job]], Answer]) -> Response:
    """Run `create` (given the hook that keeps its answer), or answer what a request with
    the same key was answered."""
    claim = claim_of_request()
    if claim is None:
        return response_of(answer_of(create(None)))
    now = clock_of(current_app).now()
    kept = idempotency.recall(claim, now)
    if kept is not None:
        return response_of(kept, replayed=True)
    made: list[Answer] = []

    def keep(created: list[Job]) -> None:
        made.append(answer_of(created))
        idempotency.remember(claim, made[0], now)

    try:
        create(keep)
    except idempotency.Raced:
        current_app.logger.info("idempotency key raced", extra={"action": "create"})
        kept = idempotency.recall(claim, now)
        if kept is None:  # the winner's answer is committed before Raced is raised
            raise
        return response_of(kept, replayed=True)
    return response_of(made[0])


def answer(data: object, status: int, location: str | None = None) -> Answer:
    """An answer in the bytes jsonify would send."""
    return Answer(status, current_app.json.dumps(data) + "\n", location)


def response_of(kept: Answer, *, replayed: bool = False) -> Response:
    response = Response(kept.body, kept.status, mimetype="application/json")
    if kept.location:
        response.headers["Location"] = kept.location
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response
