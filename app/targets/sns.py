"""SNS target: runs go out with PublishBatch, ten entries per call, with the message
attributes runId, jobId and scheduledFor; a FIFO topic gets the job as the message group
and the run id as the de-duplication id, so a repeat of a run is dropped by SNS itself."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.targets.aws import AwsBatchTarget, Item
from app.targets.base import Outcome
from app.targets.common import failure, run_fields, short

PERMANENT_CODES = frozenset(
    {"NotFound", "NotFoundException", "InvalidParameter", "InvalidParameterValue",
     "AuthorizationError", "AuthorizationErrorException", "InvalidSecurity",
     "ValidationError", "BatchRequestTooLong", "TooManyEntriesInBatchRequest"}
)  # fmt: skip


class SnsTarget(AwsBatchTarget):
    service = "SNS"
    kind = "sns"
    permanent_codes = PERMANENT_CODES

    client_service = "sns"

    def destination(self, target: Mapping[str, Any]) -> str:
        return str(target.get("topicArn") or "")

    def call(self, client: Any, chunk: list[Item]) -> dict[int, Outcome]:
        topic = chunk[0][1].target["topicArn"]
        fifo = topic.endswith(".fifo")
        entries = []
        for pos, (_, d) in enumerate(chunk):
            entry: dict[str, Any] = {
                "Id": str(pos),
                "Message": d.payload,
                "MessageAttributes": {
                    k: {"DataType": "String", "StringValue": v} for k, v in run_fields(d).items()
                },
            }
            if fifo:
                entry["MessageGroupId"] = d.job_id
                entry["MessageDeduplicationId"] = d.run_id
            entries.append(entry)
        response = client.publish_batch(TopicArn=topic, PublishBatchRequestEntries=entries)
        succeeded = {e["Id"]: e for e in response.get("Successful", [])}
        failed = {e["Id"]: e for e in response.get("Failed", [])}
        result: dict[int, Outcome] = {}
        for pos, (index, d) in enumerate(chunk):
            if str(pos) in succeeded:
                message_id = succeeded[str(pos)].get("MessageId")
                result[index] = Outcome(d.run_id, ok=True, extra={"messageId": message_id})
            elif str(pos) in failed:
                f = failed[str(pos)]
                error = short(f"SNS {f.get('Code', 'error')}: {f.get('Message', '')}".rstrip(": "))
                result[index] = failure(d, error, permanent=bool(f.get("SenderFault")))
            else:
                result[index] = failure(d, "SNS returned no result for this entry")
        return result
