"""HTTP with retries: 429 and 503 (the service did nothing), and connection failures.

A request is sent again only when that cannot do anything twice: 429 and 503 answers
changed nothing; a connection never made sent nothing; any other failure mid-request
(a timeout, a connection dropped before the answer) is retried only for a request marked
`safe` (reads, replaces, deletes, creates carrying an Idempotency-Key, acks).
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from scheduler_client.errors import ProblemError

RETRY_STATUSES = frozenset({429, 503})


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5  # in all, the first included
    backoff: float = 0.5  # seconds before the first retry; doubled each time, with jitter
    max_backoff: float = 10.0
    max_retry_after: float = 60.0  # the longest Retry-After the client waits for

    def delay(self, retry: int, retry_after: str | None) -> float:
        """The backoff (with jitter, so clients that failed together part), or the
        server's Retry-After when that is longer (it says when, rounded down to seconds:
        a 0 would have every retry land in the same full window)."""
        step = min(self.max_backoff, self.backoff * 2**retry) * random.uniform(0.5, 1.0)
        asked = 0.0
        with contextlib.suppress(ValueError):  # an HTTP date: rare, the backoff stands
            asked = min(max(0.0, float(retry_after or 0)), self.max_retry_after)
        return max(step, asked)


class Transport:
    def __init__(
        self,
        http: httpx.Client,
        policy: RetryPolicy,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.http = http
        self.policy = policy
        self.sleep = sleep

    def request(
        self,
        method: str,
        url: str,
        *,
        safe: bool,
        json: Any = None,
        params: Mapping[str, Any] | list[tuple[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> httpx.Response:
        limit: Any = httpx.USE_CLIENT_DEFAULT if timeout is None else timeout
        for attempt in range(self.policy.attempts):
            last = attempt == self.policy.attempts - 1
            try:
                response = self.http.request(
                    method, url, json=json, params=params, headers=headers, timeout=limit
                )
            except httpx.TransportError as exc:
                never_sent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
                if last or not (never_sent or safe):
                    raise ProblemError(None, "Service unreachable", f"{url}: {exc}") from exc
                self.sleep(self.policy.delay(attempt, None))
                continue
            if response.status_code in RETRY_STATUSES and not last:
                self.sleep(self.policy.delay(attempt, response.headers.get("Retry-After")))
                continue
            return checked(response)
        raise AssertionError("unreachable")  # the loop returns or raises on its last turn


def checked(response: httpx.Response) -> httpx.Response:
    if response.is_success:
        return response
    try:
        body = response.json()
    except ValueError:
        body = None
    raise ProblemError.from_answer(response.status_code, response.reason_phrase, body)
