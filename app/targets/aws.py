"""What the SNS and EventBridge targets share: boto3 clients per (service, region), calls
on a small thread pool (boto3 blocks), batches of ten grouped by destination, and the
split of a failed call into permanent and transient errors (as SQS's)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import boto3
from botocore.exceptions import ConnectionError as BotoConnectionError

from app.targets import sqs
from app.targets.base import BlockingTarget, Delivery, Outcome
from app.targets.common import failure

logger = logging.getLogger(__name__)

ClientFactory = Callable[[str | None], Any]  # region -> client
Item = tuple[int, Delivery]  # (position in the deliver() batch, delivery)
MAX_BATCH_ENTRIES = 10  # PublishBatch and PutEvents both take ten
_clients: dict[tuple[str, str | None], Any] = {}
_clients_lock = threading.Lock()


def default_factory(service: str) -> ClientFactory:
    """One cached boto3 client per region; endpoint and credentials from the environment
    (AWS_ENDPOINT_URL_<SERVICE>, the usual chain)."""

    def make(region: str | None) -> Any:
        with _clients_lock:  # boto3's default session is not safe for concurrent creation
            client = _clients.get((service, region))
            if client is None:
                client = boto3.client(service, region_name=region, config=sqs._CONFIG)
                _clients[(service, region)] = client
            return client

    return make


class AwsBatchTarget(BlockingTarget):
    """A subclass says its service, its permanent error codes, the destination a target
    names (destination) and how a chunk of at most ten goes out (call)."""

    batch_size = MAX_BATCH_ENTRIES
    service = ""  # its name in error texts
    kind = ""  # the target type
    permanent_codes: frozenset[str] = frozenset()

    client_service = ""  # boto3's name of the service

    def __init__(
        self, client_factory: ClientFactory | None = None, max_threads: int = sqs.MAX_THREADS
    ) -> None:
        super().__init__(max_threads, self.kind)
        self._client_factory = client_factory or default_factory(self.client_service)

    def destination(self, target: Mapping[str, Any]) -> str:
        raise NotImplementedError

    def call(self, client: Any, chunk: list[Item]) -> dict[int, Outcome]:
        raise NotImplementedError

    def origin(self, target: Mapping[str, Any]) -> str:
        return f"{self.kind}:{target.get('region') or ''}"

    def timeout(self, delivery: Delivery) -> float:
        return sqs.CALL_TIMEOUT

    def send(self, deliveries: list[Delivery]) -> list[Outcome]:
        """Blocking: one call per destination and ten deliveries; one outcome each, in order."""
        groups: dict[tuple[str | None, str], list[Item]] = {}
        for index, d in enumerate(deliveries):
            key = (d.target.get("region") or None, self.destination(d.target))
            groups.setdefault(key, []).append((index, d))
        outcomes: dict[int, Outcome] = {}
        for (region, _), items in groups.items():
            for start in range(0, len(items), MAX_BATCH_ENTRIES):
                outcomes.update(self._call_safely(region, items[start : start + MAX_BATCH_ENTRIES]))
        return [outcomes[i] for i in range(len(deliveries))]

    def _call_safely(self, region: str | None, chunk: list[Item]) -> dict[int, Outcome]:
        started = time.monotonic()
        try:
            result = self.call(self._client_factory(region), chunk)
        except Exception as exc:
            permanent, error = sqs.classify_call_error(exc, self.service, self.permanent_codes)
            logger.warning("aws batch failed", extra={"target": self.kind, "error": error})
            unreachable = isinstance(exc, BotoConnectionError)
            return {index: failure(d, error, permanent, unreachable) for index, d in chunk}
        elapsed_ms = (time.monotonic() - started) * 1000
        for outcome in result.values():
            outcome.response_ms = elapsed_ms
        return result
