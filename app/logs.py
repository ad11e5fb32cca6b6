"""Log lines that carry their context, as text (the default) or one JSON object a line.

Every module logs with `extra={...}` (action, job_id, run_id, target, attempt, error...);
the formatters here print those fields: `key=value` after the message in text, members of
the object in JSON (LOG_FORMAT=json, python-json-logger). Whatever a line holds, signing
secrets and API keys are blanked before it is written. The web process logs each request
(method, path, status, ms and the key's name, never the key itself).
"""

from __future__ import annotations

import logging
import re
import sys
import time
from datetime import UTC, datetime
from typing import Any

from flask import Flask, Response, g, request
from pythonjsonlogger.json import JsonFormatter

from app.auth import KEY_PREFIX
from app.schemas import SECRET_PREFIX

FORMATS = ("text", "json")
# What a LogRecord holds of its own; anything else on a record came in `extra`.
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}
# A webhook's signing secret and an API key, wherever they appear (an error text, a URL).
_SECRETS = re.compile(
    rf"(?:{re.escape(SECRET_PREFIX)}|{re.escape(KEY_PREFIX)})[A-Za-z0-9+/=_-]{{8,}}"
)
REDACTED = "[redacted]"
_QUOTED = re.compile(r'[\s"=]')  # a text value with one of these is written in quotes
log = logging.getLogger("app.requests")


def redact(text: str) -> str:
    return _SECRETS.sub(REDACTED, text)


def instant(record: logging.LogRecord) -> str:
    """RFC 3339, UTC, to the millisecond: the same in both formats and every process."""
    moment = datetime.fromtimestamp(record.created, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def context_of(record: logging.LogRecord) -> dict[str, Any]:
    return {
        k: v for k, v in record.__dict__.items() if k not in _STANDARD and not k.startswith("_")
    }


class TextFormatter(logging.Formatter):
    """`time level logger message key=value ...`"""

    def format(self, record: logging.LogRecord) -> str:
        record.message = record.getMessage()
        line = f"{instant(record)} {record.levelname} {record.name} {record.message}"
        fields = " ".join(f"{k}={_text_value(v)}" for k, v in context_of(record).items())
        if fields:
            line += " " + fields
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        elif record.exc_text:
            line += "\n" + record.exc_text
        return redact(line)


def _text_value(value: Any) -> str:
    text = str(value)
    if not text or _QUOTED.search(text):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return text


class JsonLineFormatter(JsonFormatter):
    """One JSON object a line: time, level, logger, message, then the context fields."""

    def __init__(self) -> None:
        super().__init__(
            "%(levelname)s %(name)s %(message)s",
            rename_fields={"levelname": "level", "name": "logger"},
            json_ensure_ascii=False,
            json_default=str,
        )

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        log_data["time"] = instant(record)
        super().add_fields(log_data, record, message_dict)

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def formatter(fmt: str) -> logging.Formatter:
    return JsonLineFormatter() if fmt == "json" else TextFormatter()


def configure(fmt: str = "text", level: int = logging.INFO) -> None:
    """The process's one handler: standard error, in the given format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(fmt))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    # A pass drains all due work before it returns, so APScheduler skipping a tick while a
    # pass is still busy is expected, not worth a warning every second under load.
    logging.getLogger("apscheduler").setLevel(logging.ERROR)


def init_app(app: Flask) -> None:
    """Log every request the app answers (registered first, so its time counts it all)."""
    app.before_request(_start_clock)
    app.after_request(_log_request)


def _start_clock() -> None:
    g.request_started = time.perf_counter()


def _log_request(response: Response) -> Response:
    started = g.get("request_started")
    ms = round((time.perf_counter() - started) * 1000, 1) if started is not None else None
    actor = str(g.get("actor") or "anonymous")
    log.info(
        "request",
        extra={
            "method": request.method,
            "path": request.path,  # never the query: a cursor or search is the caller's own
            "status": response.status_code,
            "ms": ms,
            "key": actor.removeprefix("key:") if actor.startswith("key:") else None,
            "actor": actor,
        },
    )
    return response
