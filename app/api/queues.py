"""The built-in queue, for consumers: receive, acknowledge, look."""

from __future__ import annotations

import re

from flask import Response, current_app, jsonify

from app import queue
from app.api import bp
from app.api.jobs import now
from app.api.openapi import operation
from app.api.serialize import message_out
from app.instants import format_instant
from app.problems import field_problem
from app.schemas import NAME_PATTERN, AckIn, AckOut, QueueStats, ReceiveIn, ReceiveOut

TAG = "queues"


def checked_name(name: str) -> str:
    if not re.fullmatch(NAME_PATTERN, name):
        raise field_problem("name", "letters, digits, '_', '-', '.', at most 80", 400)
    return name


@operation(bp, "POST", "/queues/<name>/receive", summary="Receive messages (long-poll)",
           tag=TAG, body=ReceiveIn, response=ReceiveOut, errors=[422])  # fmt: skip
def receive(name: str, body: ReceiveIn) -> Response:
    wait = min(body.wait, current_app.config["QUEUE_MAX_WAIT"])
    messages = queue.receive(checked_name(name), body.max, body.visibilityTimeout, wait, now)
    return jsonify({"messages": [message_out(m) for m in messages]})


@operation(bp, "POST", "/queues/<name>/ack", summary="Acknowledge (delete) messages",
           tag=TAG, body=AckIn, response=AckOut, errors=[422])  # fmt: skip
def ack(name: str, body: AckIn) -> Response:
    return jsonify({"deleted": queue.ack(checked_name(name), body.receipts)})


@operation(bp, "GET", "/queues/<name>", summary="Depth and in-flight count", tag=TAG,
           response=QueueStats)  # fmt: skip
def stats(name: str) -> Response:
    answer = queue.stats(checked_name(name), now())
    answer["oldestAt"] = format_instant(answer["oldestAt"])
    return jsonify(answer)
