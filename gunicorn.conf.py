"""gunicorn settings read from the working directory (`make run`, the Procfile).

The service is loopback-only by default. Listening on any other address without API keys
would expose the API to the network, so the master refuses to start then.
"""

from __future__ import annotations

import json
import os
from typing import Any

import gunicorn.util

graceful_timeout = 10
# The longest request line gunicorn reads (its own maximum): long cursors and many filters fit.
limit_request_line = 8190


def write_problem(sock: Any, status_int: int, reason: str, mesg: str) -> None:
    """gunicorn's answer to a request it could not parse (414, 431, 400, ...) as an RFC 9457
    problem, like every other error of the API, instead of an HTML page. (It is written
    before the request reaches the application, so the UI gets the same JSON.)"""
    from gunicorn.util import write_nonblock

    body = json.dumps({"type": "about:blank", "title": reason, "status": status_int,
                       "detail": mesg[:500]}).encode()  # fmt: skip
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\n"
        f"Content-Type: application/problem+json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    write_nonblock(sock, head.encode("latin-1") + body)


gunicorn.util.write_error = write_problem  # the workers fork from the master that read this


def bound_hosts(binds: list[str]) -> list[str]:
    hosts = []
    for bind in binds:
        if bind.startswith(("unix:", "fd://")):
            continue  # a local socket, not the network
        host = bind.rsplit(":", 1)[0] if ":" in bind else bind
        hosts.append(host.strip("[]"))
    return hosts


def on_starting(server: Any) -> None:
    from app import create_app
    from app.auth import is_loopback
    from app.config import ConfigError

    # Long polls of the built-in queue may hold half of each worker's threads at most, so
    # the other half always serves everything else (health probes, the UI, creates).
    os.environ.setdefault("QUEUE_MAX_LONG_POLLS", str(max(1, int(server.cfg.threads) // 2)))
    try:
        app = create_app()  # the settings checked once, here, before any worker starts
    except ConfigError as exc:
        raise SystemExit(f"scheduler: a setting does not fit:\n{exc}") from None
    from app.logs import configure

    configure(app.config["LOG_FORMAT"])  # the workers, forked from here, log the same way
    exposed = [h for h in bound_hosts(list(server.cfg.bind)) if not is_loopback(h)]
    if exposed and not _active_keys(app):
        raise SystemExit(
            f"refusing to listen on {', '.join(exposed)} without API keys: create one with "
            "`flask --app wsgi keys create --name NAME`, or bind to 127.0.0.1"
        )
    if exposed:
        os.environ["REQUIRE_API_KEYS"] = "true"  # the workers, forked from here, demand keys


def _active_keys(app: Any) -> int:
    from sqlalchemy import func, select

    from app.database import db
    from app.models import ApiKey

    with app.app_context():
        keys = db.session.scalar(
            select(func.count()).select_from(ApiKey).where(ApiKey.revoked_at.is_(None))
        )
        db.session.remove()
        db.engine.dispose()  # the workers fork from here: they must not share connections
    return int(keys or 0)
