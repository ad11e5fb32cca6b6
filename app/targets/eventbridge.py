"""EventBridge target: runs go out with PutEvents, ten entries per call, to an event bus
with the job's source and detail type; the payload (JSON) is the event's detail. The run
and job are named in the event's resources (runId for de-duplication); PutEvents answers
entry by entry, each failed entry fails its own run only."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from app.targets.aws import AwsBatchTarget, Item
from app.targets.base import Outcome
from app.targets.common import failure, short

PERMANENT_CODES = frozenset(
    {"ResourceNotFoundException", "ValidationException", "AccessDeniedException",
     "InvalidArgument", "MalformedDetail", "NotAuthorized"}
)  # fmt: skip
# Per-entry codes that a retry may get past.
TRANSIENT_ENTRY_CODES = frozenset({"ThrottlingException", "InternalException", "InternalFailure"})


def json_detail(payload: str) -> str:
    """The payload as an event's detail: a JSON object, or ValueError."""
    try:
        value = json.loads(payload)
    except ValueError:
        raise ValueError("must be a JSON object (the event's detail)") from None
    if not isinstance(value, dict):
        raise ValueError("must be a JSON object (the event's detail)")
    return payload


def resources(run_id: str, job_id: str) -> list[str]:
    return [f"scheduler:run/{run_id}", f"scheduler:job/{job_id}"]


class EventBridgeTarget(AwsBatchTarget):
    service = "EventBridge"
    kind = "eventbridge"
    permanent_codes = PERMANENT_CODES

    client_service = "events"

    def destination(self, target: Mapping[str, Any]) -> str:
        return str(target.get("eventBus") or "")

    def call(self, client: Any, chunk: list[Item]) -> dict[int, Outcome]:
        result: dict[int, Outcome] = {}
        sendable: list[Item] = []
        for index, d in chunk:
            try:
                json_detail(d.payload)
            except ValueError as exc:
                result[index] = failure(d, f"EventBridge payload {exc}", permanent=True)
                continue
            sendable.append((index, d))
        if not sendable:
            return result
        entries = [
            {
                "EventBusName": d.target["eventBus"],
                "Source": d.target["source"],
                "DetailType": d.target["detailType"],
                "Detail": d.payload,
                "Time": d.scheduled_for,
                "Resources": resources(d.run_id, d.job_id),
            }
            for _, d in sendable
        ]
        response = client.put_events(Entries=entries)
        answers = response.get("Entries", [])
        for pos, (index, d) in enumerate(sendable):
            answer = answers[pos] if pos < len(answers) else {}
            if answer.get("EventId"):
                result[index] = Outcome(d.run_id, ok=True, extra={"eventId": answer["EventId"]})
            else:
                code = str(answer.get("ErrorCode") or "error")
                error = short(f"EventBridge {code}: {answer.get('ErrorMessage', '')}".rstrip(": "))
                result[index] = failure(d, error, permanent=code not in TRANSIENT_ENTRY_CODES)
        return result
