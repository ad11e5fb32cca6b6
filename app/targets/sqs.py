"""SQS target: runs go out with SendMessageBatch, up to 10 entries per call.

The delivery loop keeps many calls in flight, so throughput stays close to a bare boto3
loop. boto3 clients are thread-safe, so one client per region is shared.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

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

from app.targets.base import BlockingTarget, Delivery, Outcome

logger = logging.getLogger(__name__)

ClientFactory = Callable[[str | None], Any]

MAX_BATCH_ENTRIES = 10  # SendMessageBatch limit
# Every SQS-compatible endpoint accepts 256 KiB per batch (AWS itself now takes 1 MiB).
MAX_BATCH_BYTES = 256 * 1024
MAX_THREADS = 32  # calls blocked in boto3 at once; more wait for a thread
MAX_ERROR_CHARS = 200
CONNECT_TIMEOUT = READ_TIMEOUT = 5
MAX_ATTEMPTS = 3  # botocore's standard retry mode, inside one call
CALL_TIMEOUT = float(MAX_ATTEMPTS * (CONNECT_TIMEOUT + READ_TIMEOUT) + 10)  # + its backoff

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
    retries={"mode": "standard", "max_attempts": MAX_ATTEMPTS},
    connect_timeout=CONNECT_TIMEOUT,
    read_timeout=READ_TIMEOUT,
    max_pool_connections=MAX_THREADS,
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


class SqsTarget(BlockingTarget):
    """Calls go out on a small thread pool (boto3 is blocking); the delivery loop decides
    how many are in flight."""

    batch_size = MAX_BATCH_ENTRIES

    def __init__(
        self,
        client_factory: ClientFactory = default_client_factory,
        max_threads: int = MAX_THREADS,
    ) -> None:
        super().__init__(max_threads, "sqs-send")
        self._client_factory = client_factory

    def origin(self, target: Mapping[str, Any]) -> str:
        """The SQS endpoint (region and host) a run goes to; a FIFO queue is an origin of
        its own, so that it can be held to one call at a time."""
        queue_url = str(target.get("queueUrl") or "")
        url = urlsplit(queue_url)
        region = target.get("region") or ""
        if _is_fifo(queue_url):
            return f"sqs:{region}:{queue_url}"
        return f"sqs:{region}:{url.scheme}://{url.netloc}"

    def max_in_flight(self, target: Mapping[str, Any]) -> int | None:
        """A FIFO queue takes one call at a time, so its messages keep their order."""
        return 1 if _is_fifo(str(target.get("queueUrl") or "")) else None

    def timeout(self, delivery: Delivery) -> float:
        return CALL_TIMEOUT

    def __enter__(self) -> SqsTarget:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def send(self, deliveries: list[Delivery]) -> list[Outcome]:
        """Send a batch with SendMessageBatch calls, one queue after another (blocking)."""
        outcomes: dict[int, Outcome] = {}
        for items in _group(deliveries, outcomes).values():
            for chunk in _chunks(items):
                outcomes.update(self._send_safely(chunk))
        return [outcomes[i] for i in range(len(deliveries))]

    def _send_safely(self, chunk: list[Item]) -> dict[int, Outcome]:
        try:
            return self._send(chunk)
        except Exception:  # a bug here must not lose the batch: report it, let it retry
            logger.exception("sqs send failed unexpectedly")
            return {index: _failure(d, "internal error while sending", False) for index, d in chunk}

    def _send(self, chunk: list[Item]) -> dict[int, Outcome]:
        target = chunk[0][1].target
        region, url = target.get("region") or None, target["queueUrl"]
        fifo = _is_fifo(url)
        entries = [_entry(str(pos), d, fifo) for pos, (_, d) in enumerate(chunk)]
        started = time.monotonic()
        try:
            client = self._client_factory(region)
            response = client.send_message_batch(QueueUrl=url, Entries=entries)
        except Exception as exc:
            permanent, error = classify_call_error(exc)
            logger.warning(
                "sqs batch failed",
                extra={
                    "target": f"sqs {url}",
                    "entries": len(chunk),
                    "error": error,
                    "run_ids": [d.run_id for _, d in chunk],
                },
            )
            unreachable = isinstance(exc, BotoConnectionError)
            return {index: _failure(d, error, permanent, unreachable) for index, d in chunk}
        elapsed_ms = (time.monotonic() - started) * 1000
        return _map_results(chunk, response, elapsed_ms)


def _is_fifo(queue_url: str) -> bool:
    return queue_url.endswith(".fifo")


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
    if fifo:  # the job's own group, else the job: each job's runs keep their order
        entry["MessageGroupId"] = d.target.get("messageGroupId") or d.job_id
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
            logger.warning("sqs entry failed", extra={**d.log_context(), "error": error})
        else:
            result[index] = _failure(d, "SQS returned no result for this entry", permanent=False)
        result[index].response_ms = elapsed_ms
    return result


def classify_call_error(
    exc: Exception, service: str = "SQS", permanent_codes: frozenset[str] = PERMANENT_CODES
) -> tuple[bool, str]:
    """(permanent, short error text) for a batch call (SendMessageBatch, PublishBatch,
    PutEvents) that failed as a whole."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code") or "error")
        message = "" if code in _QUIET_CODES else str(error.get("Message") or "")
        text = f"{service} {code}: {message}" if message else f"{service} {code}"
        return code in permanent_codes, _short(text)
    if isinstance(exc, ParamValidationError):
        return True, f"invalid {service} request parameters (check the target)"
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return False, "AWS credentials missing or incomplete"
    if isinstance(exc, NoRegionError):
        return False, "no AWS region configured"
    if isinstance(exc, BotoConnectionError | HTTPClientError):
        return False, f"{service} endpoint unreachable ({type(exc).__name__})"
    if isinstance(exc, BotoCoreError):
        return False, f"{service} call failed ({type(exc).__name__})"
    logger.error("unexpected error from an AWS client", exc_info=exc)
    return False, f"{service} call failed ({type(exc).__name__})"


def _failure(d: Delivery, error: str, permanent: bool, unreachable: bool = False) -> Outcome:
    return Outcome(d.run_id, ok=False, error=error, permanent=permanent, unreachable=unreachable)


def _short(text: str) -> str:
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"
