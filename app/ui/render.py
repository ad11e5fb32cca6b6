"""One URL, the full page or one block of it.

htmx names the element it will swap in `HX-Target` (and the element that asked in
`HX-Trigger`). When that name is one of the blocks a view offers, only that block is
rendered (jinja2-fragments); boosted navigation and history restores get the full page,
whatever HX-Request says. Block names are element ids with "-" spelled "_".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flask import Response, make_response, render_template, request
from jinja2_fragments.flask import render_block

VARY = "HX-Request, HX-Target, HX-Trigger"


def requested_fragment(fragments: Sequence[str]) -> str | None:
    """The id of the block htmx asked for, if this view offers it; None for the full page."""
    headers = request.headers
    if headers.get("HX-Request") != "true":
        return None
    if headers.get("HX-Boosted") == "true" or headers.get("HX-History-Restore-Request"):
        return None
    for header in ("HX-Target", "HX-Trigger"):
        name = headers.get(header)
        if name and name in fragments:
            return name
    return None


def page(
    template: str,
    fragments: Sequence[str] = (),
    *,
    status: int = 200,
    **context: Any,
) -> Response:
    """Render `template`, or only the block htmx asked for among `fragments`."""
    fragment = requested_fragment(fragments)
    if fragment is None:
        html = render_template(template, fragment=None, **context)
    else:
        html = render_block(template, block_name(fragment), fragment=fragment, **context)
    return make_response(html, status)


def block_name(element_id: str) -> str:
    return element_id.replace("-", "_")


def htmx_target() -> str | None:
    """The id htmx will swap the answer into (not for boosted requests)."""
    if request.headers.get("HX-Request") != "true" or request.headers.get("HX-Boosted"):
        return None
    return request.headers.get("HX-Target") or None
