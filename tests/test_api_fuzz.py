"""Property-based fuzzing of the whole API from its own OpenAPI document (schemathesis),
both ways: requests the document calls invalid are refused with a documented problem, and
requests it calls valid are accepted, except where a rule is one no JSON Schema can state
(listed in SEMANTIC_FIELDS and said in the document's description)."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from schemathesis.checks import positive_data_acceptance
from schemathesis.generation.meta import TestPhase
from schemathesis.specs.openapi.schemas import OpenApiSchema

schema = schemathesis.pytest.from_fixture("api_schema")

# Refusals a valid-looking request may still get, each for a rule beyond JSON Schema:
# cursors are only ever ones the service gave out; the timing fields must make a rule that
# can fire (cron, interval, zone, dates that exist, start before end, minute or at); an
# Idempotency-Key is refused when it was used for another request within a day; a broker
# target's connection must be one configured in CONNECTIONS; a Celery or EventBridge
# target's payload must be JSON of the shape it reads (task arguments, an event's detail);
# the calendar fields' rules are said below.
SEMANTIC_FIELDS = frozenset(
    {"cursor", "minute", "at", "recurring", "cron", "interval", "timezone", "startAt",
     "endAt", "maxRuns", "after", "since", "until", "Idempotency-Key", "target.connection",
     "deadLetter.connection", "payload",
     # calendars: a rule that fires, real dates in order, a known holiday calendar, a DST
     # policy only where the wall clock is followed
     "rrule", "exclude", "exclude.dates", "exclude.ranges", "exclude.holidays", "dst",
     # backfill: a past range of at most 10,000 occurrences of a recurring job
     "from", "to", "jobId"}
)  # fmt: skip
SETTING_LIMITS = {413: {"payload"}}  # the payload limit is a setting, counted in bytes


@pytest.fixture
def api_schema(make_app: Callable[..., Flask]) -> OpenApiSchema:
    app = make_app(QUEUE_MAX_WAIT=0.01)  # long-polls would only slow the fuzzing down
    return schemathesis.openapi.from_wsgi("/openapi.json", app)


def refused_for_semantics(status: int, body: dict[str, object]) -> bool:
    """A 4xx a valid request may get: an id that exists nowhere (404, 409 on its state), or
    problems naming only fields whose rules no schema can state."""
    if status in (404, 409):
        return True
    errors = body.get("errors")
    if not isinstance(errors, list) or not errors:
        return False
    fields = {re.sub(r"^jobs\.\d+\.", "", str(e.get("field"))) for e in errors}
    allowed = SEMANTIC_FIELDS if status in (400, 422) else SETTING_LIMITS.get(status, set())
    return fields <= allowed


@schema.parametrize()
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_api_answers_as_documented(case: schemathesis.Case) -> None:
    response = case.call()
    # Judged on generated cases, not on the coverage phase's boundary values: those take
    # one keyword to its edge and may break another (a 2,048-character URL of zeros).
    meta = case.meta
    positive = (
        meta is not None
        and meta.generation.mode == GenerationMode.POSITIVE
        and meta.phase.name != TestPhase.COVERAGE
    )
    if positive and 400 <= response.status_code < 500:
        body = response.json() if response.content else {}
        assert refused_for_semantics(response.status_code, body), (
            f"a request valid by the document was refused: {case.method} {case.formatted_path}"
            f" (body {case.body!r:.500}, query {case.query!r:.300})"
            f" -> {response.status_code} {response.text[:300]}"
        )
    case.validate_response(response, excluded_checks=[positive_data_acceptance])
