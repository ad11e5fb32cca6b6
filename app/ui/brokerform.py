"""The job form's broker and AWS targets (redis, amqp, nats, celery, sns, eventbridge):
their form fields from a job's target, and the target from the form. A broker target's
connection is a name from CONNECTIONS, chosen in a select that shows names only."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

KINDS = ("redis", "amqp", "nats", "celery", "sns", "eventbridge")
# Their form fields, unprefixed (the dead letter section's are prefixed: app.ui.forms).
FIELDS = (
    "connection", "redis_kind", "redis_key", "redis_max_len", "amqp_exchange",
    "amqp_routing_key", "nats_subject", "celery_task", "celery_queue", "sns_topic",
    "aws_region", "eb_bus", "eb_source", "eb_detail_type",
)  # fmt: skip


def fields_of(target: dict[str, Any]) -> dict[str, str]:
    """The form's fields for a job's target (empty for another kind), unprefixed."""
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


def target_of(
    kind: str, values: Mapping[str, str | None], prefix: str, calls: Any, errors: dict[str, str]
) -> dict[str, Any]:
    """The target one section of the form names, from its fields by unprefixed name (None:
    not sent); the API's model checks it (and names its fields), errors name prefix + field.
    `calls`: its maxInFlight, or KEEP for none."""
    from app.ui.forms import KEEP, _integer

    def text(name: str) -> str:
        return (values.get(name) or "").strip()

    target: dict[str, Any] = {"type": kind}
    if kind in ("redis", "amqp", "nats", "celery"):
        target["connection"] = text("connection")
    if kind == "redis":
        key = "list" if values.get("redis_kind") == "list" else "stream"
        target[key] = text("redis_key")
        if key == "stream":
            target["maxLen"] = _integer(
                text("redis_max_len"), prefix + "redis_max_len", errors, "a whole number"
            )
    elif kind == "amqp":
        target |= {"exchange": text("amqp_exchange"), "routingKey": text("amqp_routing_key")}
    elif kind == "nats":
        target["subject"] = text("nats_subject")
    elif kind == "celery":
        target |= {"task": text("celery_task"), "queue": text("celery_queue") or None}
    elif kind == "sns":
        target |= {"topicArn": text("sns_topic"), "region": text("aws_region") or None}
    else:
        target |= {
            "eventBus": text("eb_bus"), "source": text("eb_source"),
            "detailType": text("eb_detail_type"), "region": text("aws_region") or None,
        }  # fmt: skip
    if calls is not KEEP:
        target["maxInFlight"] = calls
    return {key: value for key, value in target.items() if value is not None}
