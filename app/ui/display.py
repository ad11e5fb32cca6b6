"""How the UI shows things: instants in the viewer's zone, durations, targets, payloads.

The viewer's zone comes from the `tz` cookie (set by static/app.js from the browser's Intl
zone), checked against the zone list; UTC when absent or unknown. Instants are stored in UTC
and only turned into wall time here, on the way to the screen.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from flask import current_app, g, request
from markupsafe import Markup

from app import clock_of
from app.instants import format_instant
from app.jobs import job_timing
from app.models import Job
from app.timing import TimingError, canonical_timezone, describe
from app.timing.zones import get_zone
from app.ui import bp

PAYLOAD_PREVIEW_CHARS = 80


def now() -> datetime:
    return clock_of(current_app).now()


def viewer_zone() -> str:
    """The viewer's IANA zone (the `tz` cookie), UTC by default."""
    if "viewer_zone" not in g:
        g.viewer_zone = checked_zone(unquote(request.cookies.get("tz", ""))) or "UTC"
    zone: str = g.viewer_zone
    return zone


def checked_zone(name: str) -> str | None:
    """The canonical name of a zone, or None if it is not one."""
    if not name or len(name) > 64:
        return None
    try:
        return canonical_timezone(name)
    except TimingError:
        return None


def wall(instant: datetime, zone: str | None = None) -> datetime:
    """The instant as an aware datetime in `zone` (default: the viewer's)."""
    return instant.astimezone(get_zone(zone or viewer_zone()))


def zone_abbreviation(instant: datetime, zone: str | None = None) -> str:
    return wall(instant, zone).tzname() or (zone or viewer_zone())


@bp.app_template_filter("local")
def local_time(
    instant: datetime | None, zone: str | None = None, *, seconds: bool = True, date: bool = True
) -> Markup:
    """<time> showing the instant's wall time in `zone` (the viewer's by default), zone named;
    its title gives the instant in UTC."""
    if instant is None:
        return Markup("<span class='muted'>—</span>")
    local = wall(instant, zone)
    clock = "%H:%M:%S" if seconds else "%H:%M"
    time_text = f"{local.strftime(clock)} {local.tzname()}"
    utc = instant.astimezone(UTC)
    attributes = Markup('datetime="{}" title="{}"').format(
        format_instant(utc), f"{utc:%Y-%m-%d %H:%M:%S} UTC"
    )
    if not date:
        return Markup("<time {}>{}</time>").format(attributes, time_text)
    day = f"{local:%a} {local.day} {local:%b}"
    if local.year != wall(now(), zone).year:
        day += f" {local.year}"
    # Two unbreakable halves: a narrow column wraps between the date and the time only.
    return Markup("<time {}><span>{},</span> <span>{}</span></time>").format(
        attributes, day, time_text
    )


@bp.app_template_filter("relative")
def relative(instant: datetime | None, reference: datetime | None = None) -> str:
    """How far from now, in words: "in 5 min", "3 h ago", "now"."""
    if instant is None:
        return ""
    seconds = (instant - (reference or now())).total_seconds()
    if abs(seconds) < 1:
        return "now"
    text = in_words(abs(seconds))
    return f"in {text}" if seconds > 0 else f"{text} ago"


@bp.app_template_filter("lag")
def lag(milliseconds: float | None) -> str:
    """A run's lag, readable at any size: "250 ms", "1.5 s", "2 min", "6 days", "7.9 years"."""
    if milliseconds is None:
        return ""
    if abs(milliseconds) < 1000:
        return f"{milliseconds:.0f} ms"
    if abs(milliseconds) < 10_000:
        return f"{milliseconds / 1000:.1f} s"
    return ("-" if milliseconds < 0 else "") + in_words(abs(milliseconds) / 1000)


def in_words(seconds: float) -> str:
    """A duration of a second or more in the unit a person would say it in."""
    if seconds < 60:
        return f"{int(seconds)} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min"
    if seconds < 86400 * 2:
        hours, rest = divmod(int(seconds), 3600)
        minutes = rest // 60
        return f"{hours} h {minutes} min" if minutes and hours < 10 else f"{hours} h"
    if seconds < 86400 * 365:
        return f"{int(seconds // 86400)} days"
    years = seconds / (86400 * 365.25)
    return f"{years:.1f} years" if years < 10 else f"{years:,.0f} years"


@bp.app_template_global("job_label")
def job_label(job: Any) -> str:
    """A job's one label everywhere: its name, else its short id (never its payload, which
    one page showed and another did not); a run's job that is gone: "(deleted job)"."""
    if job is None:
        return "(deleted job)"
    return str(job.name or f"Job {str(job.id)[:8]}")


@bp.app_template_filter("run_lag")
def run_lag(run: Any) -> str:
    return lag(run.lag_seconds * 1000)


@bp.app_template_filter("snippet")
def snippet(text: str | None, length: int = PAYLOAD_PREVIEW_CHARS) -> str:
    """The start of a text on one line (escaped later, by the template)."""
    if not text:
        return ""
    flat = " ".join(text.split())
    return flat if len(flat) <= length else flat[: length - 1] + "…"


@bp.app_template_filter("rule")
def rule(job: Job) -> str:
    """A job's timing rule in words."""
    return describe(job_timing(job))


@bp.app_template_filter("target_text")
def target_text(target: dict[str, Any] | None) -> str:
    """A target in a few words: "queue default", "SQS …/reports", "webhook POST https://…"."""
    if not target:
        return ""
    kind = target.get("type")
    if kind == "queue":
        return f"queue {target.get('name', 'default')}"
    if kind == "sqs":
        return f"SQS {target.get('queueUrl', '')}"
    if kind == "webhook":
        return f"webhook {target.get('method', 'POST')} {target.get('url', '')}"
    return _other_target_text(target)


# The other targets' words: the connection's name (never its URL) and where to.
_WHERE = {
    "redis": ("stream", "list"), "amqp": ("exchange", "routingKey"), "nats": ("subject",),
    "celery": ("task", "queue"), "sns": ("topicArn",),
    "eventbridge": ("eventBus", "source", "detailType"),
}  # fmt: skip


def _other_target_text(target: dict[str, Any]) -> str:
    kind = str(target.get("type"))
    parts = [str(target[key]) for key in _WHERE.get(kind, ()) if target.get(key)]
    via = f" via {target['connection']}" if target.get("connection") else ""
    return f"{kind} {' '.join(parts)}{via}".strip()


@bp.app_template_filter("target_brief")
def target_brief(target: dict[str, Any] | None) -> str:
    """A target in fewer words, for tables: "SQS reports", "webhook POST example.com/hook"."""
    if not target:
        return ""
    if target.get("type") == "sqs":
        url = str(target.get("queueUrl", ""))
        return f"SQS {url.rstrip('/').rsplit('/', 1)[-1]}"
    if target.get("type") == "webhook":
        host = str(target.get("url", "")).split("://", 1)[-1].split("/", 1)[0]
        return f"webhook {snippet(host, 32)}"
    return target_text(target)


@bp.app_context_processor  # every page, also an error page no UI route matched
def ui_context() -> dict[str, Any]:
    return {"viewer_zone": viewer_zone(), "current_time": now()}
