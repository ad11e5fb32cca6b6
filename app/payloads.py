"""Payloads as they go out: whether one is JSON, and a template's placeholders filled.

A job with `template` has its placeholders filled at each delivery attempt: `{{scheduledFor}}`
and `{{firedAt}}` (RFC 3339), `{{runId}}`, `{{jobId}}`, `{{name}}` (empty when the job has
none) and `{{attempt}}` (1 for the first). With `template`, every `{{...}}` in the payload is
a placeholder, and one not in that list is refused when the job is saved. Placeholders are
matched in the payload's text as written (a brace spelled `\\u007b` in JSON is not one).

A payload is JSON when it parses as JSON; the webhook target sends it as application/json
by the same rule. In a JSON payload a value goes in as JSON string content: quotes,
backslashes and control characters escaped, other characters as they are. That keeps the
payload valid JSON, and leaves every other byte in place, because in valid JSON a
placeholder can only sit inside a string literal: outside one, `{` opens an object, whose
next token is `"` or `}`, never a second `{`; and a placeholder holds no `"` or `\\`, so it
lies within one literal and is no part of an escape. A payload that is not JSON gets the
values as they are.

Without `template` the payload is not looked at: it goes out byte for byte.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

from app import jsontext

PLACEHOLDERS = ("scheduledFor", "firedAt", "runId", "jobId", "name", "attempt")
_PLACEHOLDER = re.compile(r"\{\{([^{}]*)\}\}")
# The longest values (the name aside): a filled payload still fits the payload limit.
_LONGEST = {
    "scheduledFor": "2026-12-01T22:30:00.000Z",
    "firedAt": "2026-12-01T22:30:00.000Z",
    "runId": "00000000-0000-0000-0000-000000000000",
    "jobId": "00000000-0000-0000-0000-000000000000",
    "attempt": "100",  # retry.attempts is at most 100
}


def is_json(payload: str) -> bool:
    """Whether a payload is JSON (and goes out as such): what a parser of ours takes."""
    try:
        jsontext.loads(payload, max_depth=None)
    except ValueError:  # TooDeep too
        return False
    return True


def check_template(payload: str) -> None:
    """ValueError naming the first placeholder that is not one of PLACEHOLDERS."""
    for match in _PLACEHOLDER.finditer(payload):
        if match.group(1) not in PLACEHOLDERS:
            known = ", ".join(f"{{{{{name}}}}}" for name in PLACEHOLDERS)
            raise ValueError(f"unknown placeholder {match.group(0)[:60]}; known: {known}")


def render(payload: str, values: Mapping[str, str], *, json_payload: bool) -> str:
    """The payload with its placeholders filled from `values` (one it lacks stays as
    written); `json_payload`: is_json(payload), so values go in as JSON string content."""
    if "{{" not in payload:
        return payload
    if json_payload:
        values = {key: json.dumps(value, ensure_ascii=False)[1:-1] for key, value in values.items()}
    return _PLACEHOLDER.sub(lambda match: values.get(match.group(1), match.group(0)), payload)


def fill(payload: str, values: Mapping[str, str]) -> str:
    """render, deciding JSON by is_json (only when there is something to fill)."""
    if "{{" not in payload:
        return payload
    return render(payload, values, json_payload=is_json(payload))


def longest(payload: str, name: str | None) -> str:
    """The payload filled with the longest values a delivery of this job can have."""
    return fill(payload, _LONGEST | {"name": name or ""})
