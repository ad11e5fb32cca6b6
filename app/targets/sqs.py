"""SQS target: runs go out with SendMessageBatch, up to 10 entries per call.

Batches for one endpoint are sent a few at a time in parallel so that throughput stays close to
(or above) a bare boto3 loop. boto3 clients are thread-safe, so one client per region is shared.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
    PartialCredentialsError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)

from app.targets.base import Delivery, Outcome

logger = logging.getLogger(__name__)

ClientFactory = Callable[[str | None], Any]

MAX_BATCH_ENTRIES = 10  # SendMessageBatch limit
# Every SQS-compatible endpoint accepts 256 KiB per batch (AWS itself now takes 1 MiB).
MAX_BATCH_BYTES = 256 * 1024
MAX_IN_FLIGHT = 8
MAX_ERROR_CHARS = 200
SKIPPED = "SQS endpoint unreachable (not tried again in this batch)"

# Errors about the job's target itself: retrying cannot help until someone changes the job.
PERMANENT_CODES = frozenset(
    {
        "AWS.SimpleQueueService.NonExistentQueue",
        "QueueDoesNotExist",
        "AccessDenied",
        "AccessDeniedException",
        "InvalidParameterValue",
        "InvalidAddress",
        "InvalidSecurity",
        "InvalidMessageContents",
        "UnsupportedOperation",
        "BatchRequestTooLong",
    }
)
# AWS messages for these can echo request details (signatures, tokens): keep only the code.
_QUIET_CODES = frozenset(
    {
        "SignatureDoesNotMatch",
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "IncompleteSignature",
        "MissingAuthenticationToken",
        "ExpiredToken",
        "InvalidSignatureException",
    }
)

_CONFIG = Config(
    retries={"mode": "standard"},
    connect_timeout=5,
    read_timeout=5,
    max_pool_connections=20,
)
_clients: dict[str | None, Any] = {}
_clients_lock = threading.Lock()


def default_client_factory(region: str | None) -> Any:
    """One cached boto3 SQS client per region; endpoint, credentials come from the environment."""
    with _clients_lock:  # boto3's default session is not safe for concurrent client creation
        client = _clients.get(region)
        if client is None:
            client = boto3.client("sqs", region_name=region, config=_CONFIG)
            _clients[region] = client
        return client


Item = tuple[int, Delivery]  # (position in the deliver() batch, delivery)


class SqsTarget:
    def __init__(
        self,
        client_factory: ClientFactory = default_client_factory,
        max_in_flight: int = MAX_IN_FLIGHT,
    ) -> None:
        self._client_factory = client_factory
        self._pool = ThreadPoolExecutor(max_workers=max_in_flight, thread_name_prefix="sqs-send")

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def __enter__(self) -> SqsTarget:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def deliver(self, deliveries: list[Delivery]) -> list[Outcome]:
        outcomes: dict[int, Outcome] = {}
        # Regions whose endpoint could not be reached during this call: their remaining chunks
        # fail at once instead of each waiting out connect timeouts and botocore's retries.
        unreachable: set[str | None] = set()
        tasks: list[list[list[Item]]] = []  # each task: chunks sent one after the other
        for (_, url), items in _group(deliveries, outcomes).items():
            chunks = list(_chunks(items))
            if url.endswith(".fifo"):
                tasks.append(chunks)  # keep FIFO order: this queue's chunks go in sequence
            else:
                tasks.extend([chunk] for chunk in chunks)
        run = functools.partial(self._run_task, unreachable=unreachable)
        # One task runs inline: no thread hop for the common small batch.
        results = map(run, tasks) if len(tasks) == 1 else self._pool.map(run, tasks)
        for result in results:
            outcomes.update(result)
        return [outcomes[i] for i in range(len(deliveries))]

    def _run_task(
        self, chunks: list[list[Item]], unreachable: set[str | None]
    ) -> dict[int, Outcome]:
        result: dict[int, Outcome] = {}
        for chunk in chunks:
            try:
                result.update(self._send(chunk, unreachable))
            except Exception:  # a bug here must not lose the batch: report it, let it retry
                logger.exception("sqs send failed unexpectedly")
                for index, d in chunk:
                    result[index] = _failure(d, "internal error while sending", permanent=False)
        return result

    def _send(self, chunk: list[Item], unreachable: set[str | None]) -> dict[int, Outcome]:
        target = chunk[0][1].target
        region, url = target.get("region") or None, target["queueUrl"]
        if region in unreachable:
            return {index: _failure(d, SKIPPED, permanent=False) for index, d in chunk}
        fifo = url.endswith(".fifo")
        entries = [_entry(str(pos), d, fifo) for pos, (_, d) in enumerate(chunk)]
        started = time.monotonic()
        try:
            client = self._client_factory(region)
            response = client.send_message_batch(QueueUrl=url, Entries=entries)
        except Exception as exc:
            permanent, error = classify_call_error(exc)
            if isinstance(exc, BotoConnectionError):
                unreachable.add(region)
            logger.warning(
                "sqs batch failed",
                extra={"queue_url": url, "entries": len(chunk), "error": error},
            )
            return {index: _failure(d, error, permanent) for index, d in chunk}
        elapsed_ms = (time.monotonic() - started) * 1000
        return _map_results(chunk, response, elapsed_ms)


def _group(
    deliveries: Sequence[Delivery], outcomes: dict[int, Outcome]
) -> dict[tuple[str | None, str], list[Item]]:
    """Group by (region, queueUrl); a delivery without a usable queueUrl fails at once."""
    groups: dict[tuple[str | None, str], list[Item]] = {}
    for index, d in enumerate(deliveries):
        url = d.target.get("queueUrl")
        if not isinstance(url, str) or not url:
            outcomes[index] = _failure(d, "invalid target: queueUrl missing", permanent=True)
            continue
        groups.setdefault((d.target.get("region") or None, url), []).append((index, d))
    return groups


def _chunks(items: list[Item]) -> Iterator[list[Item]]:
    """Split into SendMessageBatch calls: at most 10 entries and MAX_BATCH_BYTES each."""
    chunk: list[Item] = []
    size = 0
    for item in items:
        item_size = _entry_size(item[1])
        if chunk and (len(chunk) == MAX_BATCH_ENTRIES or size + item_size > MAX_BATCH_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append(item)
        size += item_size
    if chunk:
        yield chunk


def _entry_size(d: Delivery) -> int:
    # body + attribute names, types and values, as SQS counts them (with a little slack)
    return len(d.payload.encode()) + len(d.run_id) + len(d.job_id) + 80


def _entry(entry_id: str, d: Delivery, fifo: bool) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "Id": entry_id,
        "MessageBody": d.payload,
        "MessageAttributes": {
            "runId": {"DataType": "String", "StringValue": d.run_id},
            "jobId": {"DataType": "String", "StringValue": d.job_id},
            "scheduledFor": {"DataType": "String", "StringValue": rfc3339(d.scheduled_for)},
        },
    }
    if fifo:
        entry["MessageGroupId"] = d.job_id
        entry["MessageDeduplicationId"] = d.run_id
    return entry


def rfc3339(instant: datetime) -> str:
    """'2030-01-01T09:30:00Z' (fractional seconds only when present)."""
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=UTC)
    return instant.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _map_results(
    chunk: list[Item], response: dict[str, Any], elapsed_ms: float
) -> dict[int, Outcome]:
    succeeded = {e["Id"]: e for e in response.get("Successful", [])}
    failed = {e["Id"]: e for e in response.get("Failed", [])}
    result: dict[int, Outcome] = {}
    for pos, (index, d) in enumerate(chunk):
        entry_id = str(pos)
        if entry_id in succeeded:
            result[index] = Outcome(
                d.run_id,
                ok=True,
                response_ms=elapsed_ms,
                extra={"messageId": succeeded[entry_id].get("MessageId")},
            )
        elif entry_id in failed:
            f = failed[entry_id]
            error = _short(f"SQS {f.get('Code', 'error')}: {f.get('Message', '')}".rstrip(": "))
            # SenderFault: the message itself is wrong (size, characters...); resending won't help
            result[index] = _failure(d, error, permanent=bool(f.get("SenderFault")))
            logger.warning("sqs entry failed", extra={"run_id": d.run_id, "error": error})
        else:
            result[index] = _failure(d, "SQS returned no result for this entry", permanent=False)
        result[index].response_ms = elapsed_ms
    return result


def classify_call_error(exc: Exception) -> tuple[bool, str]:
    """(permanent, short error text) for a SendMessageBatch call that failed as a whole."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code") or "error")
        message = "" if code in _QUIET_CODES else str(error.get("Message") or "")
        text = f"SQS {code}: {message}" if message else f"SQS {code}"
        return code in PERMANENT_CODES, _short(text)
    if isinstance(exc, ParamValidationError):
        return True, "invalid SQS request parameters (check queueUrl)"
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return False, "AWS credentials missing or incomplete"
    if isinstance(exc, NoRegionError):
        return False, "no AWS region configured"
    if isinstance(exc, BotoConnectionError | HTTPClientError):
        return False, f"SQS endpoint unreachable ({type(exc).__name__})"
    if isinstance(exc, BotoCoreError):
        return False, f"SQS call failed ({type(exc).__name__})"
    logger.error("unexpected error from SQS client", exc_info=exc)
    return False, f"SQS call failed ({type(exc).__name__})"


def _failure(d: Delivery, error: str, permanent: bool) -> Outcome:
    return Outcome(d.run_id, ok=False, error=error, permanent=permanent)


def _short(text: str) -> str:
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"
