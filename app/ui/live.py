"""Cheap polls: a live block's poll carries the ETag of what it shows (static/app.js sends it
back as If-None-Match), and when nothing changed the answer is a 304 without a body, from
one query (app.changes.marker) instead of the page's own.

The ETag of a block is a hash of:
- the change marker (what people and the dispatcher changed, see app/changes.py);
- the time, so that what time changes is shown too (the hour and day windows, the chart's
  minutes, relative texts): the current minute, or the current second while a relative
  text of the page may count seconds (a next run or, on the queues page, the oldest
  message within a minute). A relative text in minutes or more is then at most one of its
  own units late, and so is a message coming back when its visibility timeout ends;
- what else the block depends on: the URL with its filters, the block, the viewer's zone
  and whether they may write.
The marker is read before the block: a change in between shows at the next poll. A change
the marker does not see (a run claimed for delivery, old runs removed by retention) shows
at the next minute at the latest.
Only htmx requests for a block are answered this way; full pages are always rendered (they
carry flashed messages and a fresh CSRF field).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from functools import wraps
from typing import ParamSpec

from flask import make_response, request, session
from werkzeug.wrappers import Response

from app.changes import marker
from app.ui.display import now, viewer_zone
from app.ui.render import requested_fragment

P = ParamSpec("P")


def block_etag(fragment: str, shows: Sequence[str]) -> str:
    current = now()
    change = marker()
    tick = current.replace(microsecond=0)
    if not change.needs_seconds(current, shows):
        tick = tick.replace(second=0)
    parts = (
        change.last_audit,
        change.counted,
        tick.isoformat(),
        request.full_path,
        fragment,
        viewer_zone(),
        session.get("scope") != "read",
    )
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:32]


def live(
    fragments: Sequence[str], shows: Sequence[str] = ()
) -> Callable[[Callable[P, Response]], Callable[P, Response]]:
    """A view whose blocks among `fragments` answer polls conditionally; `shows`: the
    relative times its blocks show ("next runs", "queue messages", see app.changes)."""

    def decorate(view: Callable[P, Response]) -> Callable[P, Response]:
        @wraps(view)
        def conditional(*args: P.args, **kwargs: P.kwargs) -> Response:
            fragment = requested_fragment(fragments)
            if fragment is None:
                return view(*args, **kwargs)
            etag = block_etag(fragment, shows)
            if request.if_none_match.contains_weak(etag):
                unchanged = make_response("", 304)
                unchanged.set_etag(etag, weak=True)
                return unchanged
            response = view(*args, **kwargs)
            if response.status_code == 200:
                response.set_etag(etag, weak=True)
                response.headers["Cache-Control"] = "no-cache"
            return response

        return conditional

    return decorate
