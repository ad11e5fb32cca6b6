"""The job form's broker and AWS targets (redis, amqp, nats, celery, sns, eventbridge):
their form fields from a job's target, and the target from the form. A broker target's
connection is a name from CONNECTIONS, chosen in a select that shows names only."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.ui.forms import JobForm

KINDS = ("redis", "amqp", "nats", "celery", "sns", "eventbridge")


def fields_of(target: dict[str, Any]) -> dict[str, str]:
    """The form's fields for a job's target (empty for another kind)."""
    kind = target.get("type")
    if kind not in KINDS:
        return {}
    text = {key: "" if value is None else str(value) for key, value in target.items()}
    redis_kind = "list" if "list" in target else "stream"
    return {
        "connection": text.get("connection", ""),
        "redis_kind": redis_kind,
        "redis_key": text.get(redis_kind, "") if kind == "redis" else "",
        "redis_max_len": text.get("maxLen", ""),
        "amqp_exchange": text.get("exchange", ""),
        "amqp_routing_key": text.get("routingKey", ""),
        "nats_subject": text.get("subject", ""),
        "celery_task": text.get("task", ""),
        "celery_queue": text.get("queue", "") if kind == "celery" else "",
        "sns_topic": text.get("topicArn", ""),
        "aws_region": text.get("region", ""),
        "eb_bus": text.get("eventBus", ""),
        "eb_source": text.get("source", ""),
        "eb_detail_type": text.get("detailType", ""),
    }


def target_of(form: JobForm, calls: Any, errors: dict[str, str]) -> dict[str, Any]:
    """The target the form names; the API's model checks it (and names its fields)."""
    from app.ui.forms import KEEP, _integer

    kind = form.target_type

    def text(value: str | None) -> str:
        return (value or "").strip()

    values: dict[str, Any] = {"type": kind}
    if kind in ("redis", "amqp", "nats", "celery"):
        values["connection"] = text(form.connection)
    if kind == "redis":
        key = "list" if form.redis_kind == "list" else "stream"
        values[key] = text(form.redis_key)
        if key == "stream":
            values["maxLen"] = _integer(
                form.redis_max_len or "", "redis_max_len", errors, "a whole number"
            )
    elif kind == "amqp":
        values |= {"exchange": text(form.amqp_exchange), "routingKey": text(form.amqp_routing_key)}
    elif kind == "nats":
        values["subject"] = text(form.nats_subject)
    elif kind == "celery":
        values |= {"task": text(form.celery_task), "queue": text(form.celery_queue) or None}
    elif kind == "sns":
        values |= {"topicArn": text(form.sns_topic), "region": text(form.aws_region) or None}
    else:
        values |= {
            "eventBus": text(form.eb_bus), "source": text(form.eb_source),
            "detailType": text(form.eb_detail_type), "region": text(form.aws_region) or None,
        }  # fmt: skip
    if calls is not KEEP:
        values["maxInFlight"] = calls
    return {key: value for key, value in values.items() if value is not None}
