"""The built-in queue, for consumers: receive, acknowledge, look."""

from __future__ import annotations

import re
import threading

from flask import Response, current_app, jsonify

from app import queue
from app.api import bp
from app.api.jobs import now
from app.api.openapi import operation
from app.api.serialize import message_out
from app.instants import format_instant
from app.problems import field_problem
from app.schemas import (
    NAME_PATTERN,
    AckIn,
    AckOut,
    ExtendIn,
    ExtendOut,
    QueueStats,
    ReceiveIn,
    ReceiveOut,
)

TAG = "queues"


def checked_name(name: str) -> str:
    if not re.fullmatch(NAME_PATTERN, name):
        raise field_problem("name", "letters, digits, '_', '-', '.', at most 80", 400)
    return name


@operation(bp, "POST", "/queues/<name>/receive", summary="Receive messages (long-poll)",
           tag=TAG, body=ReceiveIn, response=ReceiveOut, errors=[422])  # fmt: skip
def receive(name: str, body: ReceiveIn) -> Response:
    name = checked_name(name)
    wait = min(body.wait, current_app.config["QUEUE_MAX_WAIT"])
    slots = long_poll_slots()
    if wait > 0 and slots.acquire(blocking=False):
        try:
            messages = queue.receive(name, body.max, body.visibilityTimeout, wait, now)
        finally:
            slots.release()
    else:  # this worker's long-poll slots are all waiting: answer at once, keep the threads
        messages = queue.receive(name, body.max, body.visibilityTimeout, 0, now)
    return jsonify({"messages": [message_out(m) for m in messages]})


def long_poll_slots() -> threading.BoundedSemaphore:
    """Long polls that may wait at once in this process: each holds a worker thread, and
    some must stay free for everything else (gunicorn.conf.py sets half the threads)."""
    slots = current_app.extensions.get("long_poll_slots")
    if slots is None:
        size = int(current_app.config["QUEUE_MAX_LONG_POLLS"])
        slots = current_app.extensions.setdefault(
            "long_poll_slots", threading.BoundedSemaphore(size)
        )
    return slots


@operation(bp, "POST", "/queues/<name>/ack", summary="Acknowledge (delete) messages",
           tag=TAG, body=AckIn, response=AckOut, errors=[422])  # fmt: skip
def ack(name: str, body: AckIn) -> Response:
    return jsonify({"deleted": queue.ack(checked_name(name), body.receipts)})


@operation(bp, "POST", "/queues/<name>/extend", summary="Keep received messages hidden longer",
           tag=TAG, body=ExtendIn, response=ExtendOut, errors=[422])  # fmt: skip
def extend(name: str, body: ExtendIn) -> Response:
    changed = queue.extend(checked_name(name), body.receipts, body.visibilityTimeout, now())
    return jsonify({"extended": changed})


@operation(bp, "GET", "/queues/<name>", summary="Depth and in-flight count", tag=TAG,
           response=QueueStats)  # fmt: skip
def stats(name: str) -> Response:
    answer = queue.stats(checked_name(name), now())
    answer["oldestAt"] = format_instant(answer["oldestAt"])
    return jsonify(answer)
