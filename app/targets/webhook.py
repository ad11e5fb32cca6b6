"""Webhook target: one signed HTTP request per run, as Standard Webhooks says
(https://www.standardwebhooks.com/): webhook-id, webhook-timestamp, webhook-signature.

Runs on the delivery loop's event loop with aiohttp, hundreds of requests in flight at once.
Every connection passes the SSRF guard (app.netguard): names through its resolver, IP literals
checked here before sending. The Host header and TLS SNI/certificate checks still use the
URL's host name; proxies from the environment are never used.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import json
import logging
import math
import os
import socket
import ssl
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.client_reqrep import ClientRequest
from aiohttp.connector import Connection
from aiohttp.tracing import Trace
from multidict import CIMultiDict
from pydantic import ValidationError
from yarl import URL

from app.clock import Clock, SystemClock
from app.netguard import (
    AddressRefused,
    IPAddress,
    parse_ip_literal,
    parse_networks,
    refuse_forbidden,
)
from app.payloads import is_json
from app.schemas import WebhookTarget as WebhookSpec
from app.targets.base import Delivery, Outcome
from app.targets.resolver import GuardedResolver
from app.targets.signing import sign

logger = logging.getLogger(__name__)

USER_AGENT = "Scheduler-Webhook/1"
DEFAULT_TIMEOUT = 10.0
CONNECT_TIMEOUT = 10.0  # at most this much of a call goes to connecting (DNS, TCP, TLS)
MAX_DRAIN_BYTES = 64 * 1024  # read at most this much of a response (then drop the connection)
MAX_ERROR_CHARS = 200
# Headers a job may not set: ours (signature) or message framing.
RESERVED_HEADERS = frozenset(
    {
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
    }
)


# --- The target ------------------------------------------------------------------------------


class _InvalidTarget(Exception):
    pass


@dataclass(frozen=True, slots=True)
class _Url:
    url: URL  # an IP literal host in its canonical form
    host: str  # the host as the job wrote it, for error texts and logs (never the whole URL)
    literal: IPAddress | None  # the address, when the host is an IP literal


@dataclass(frozen=True, slots=True)
class _Request:
    method: str
    where: _Url
    headers: CIMultiDict[str]
    body: bytes | None
    timeout: float


class WebhookTarget:
    """Delivers runs as signed HTTP requests; use it on one event loop, then aclose() it there."""

    in_transaction = False
    batch_size = 1
    bounds_its_calls = True  # aiohttp's total timeout (the job's timeout) ends every call

    def __init__(
        self,
        allow_networks: Sequence[str] = (),
        *,
        clock: Clock | None = None,
        max_body_keep: int = 512,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        """allow_networks: CIDRs the SSRF guard lets through (e.g. an internal hook host).
        ssl_context: how servers are verified (e.g. a private CA); default: the system's CAs."""
        self.allow_networks = parse_networks(allow_networks)
        self.max_body_keep = max_body_keep
        self._clock = clock or SystemClock()
        self._ssl_context = ssl_context
        self._session: aiohttp.ClientSession | None = None
        self._resolver: GuardedResolver | None = None
        self._allowed_literals: set[IPAddress] = set()

    def origin(self, target: Mapping[str, Any]) -> str:
        try:
            url = _target_url(target).url
        except _InvalidTarget:
            return "invalid:"  # deliver() fails these at once, without connecting
        return f"{url.scheme}://{url.host_subcomponent}:{url.port}"

    def timeout(self, delivery: Delivery) -> float:
        try:
            return _spec(delivery.target).timeout
        except _InvalidTarget:
            return DEFAULT_TIMEOUT

    async def deliver(self, deliveries: Sequence[Delivery]) -> list[Outcome]:
        if len(deliveries) == 1:  # the usual case (batch_size 1): no task per request
            return [await self._deliver_safely(deliveries[0])]
        return list(await asyncio.gather(*(self._deliver_safely(d) for d in deliveries)))

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()  # and its connector
            self._session = None
        if self._resolver is not None:
            await self._resolver.close()  # a resolver we pass in is not the connector's to close
            self._resolver = None

    def _client(self) -> aiohttp.ClientSession:
        """The session, made on first use: aiohttp binds it to the running loop."""
        if self._session is None:
            self._resolver = GuardedResolver(self.allow_networks)
            connector = _Connector(
                limit=0,  # no limits of its own: the delivery loop limits calls per origin
                limit_per_host=0,
                resolver=self._resolver,
                ssl=self._ssl_context or True,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                # No proxies or .netrc from the environment: through a proxy we could not see
                # (or check) the address finally connected to.
                trust_env=False,
                cookie_jar=aiohttp.DummyCookieJar(),  # no cookies carried from job to job
            )
        return self._session

    async def _deliver_safely(self, d: Delivery) -> Outcome:
        try:
            return await self._deliver_one(d)
        except Exception:  # never raise out of deliver(): report and let it retry
            logger.exception("webhook delivery failed unexpectedly", extra=d.log_context())
            return Outcome(d.run_id, ok=False, error="internal error while delivering")

    async def _deliver_one(self, d: Delivery) -> Outcome:
        try:
            request = self._build_request(d)
        except _InvalidTarget as e:
            return Outcome(d.run_id, ok=False, error=f"invalid target: {e}", permanent=True)
        progress = _Progress()
        _PROGRESS.set(progress)  # this call's own task: seen by _Connector.connect alone
        started = time.monotonic()
        try:
            self._check_literal(request)
            async with self._client().request(
                request.method,
                request.where.url,
                data=request.body,
                headers=request.headers,
                timeout=_client_timeout(request.timeout),
                allow_redirects=False,  # Standard Webhooks: a 3xx is a failure, not followed
            ) as response:
                kept = await self._read_body(response)
        except Exception as exc:
            outcome = _failure(d.run_id, exc, request, connected=progress.connected)
            self._log(d, request, error=outcome.error, unreachable=outcome.unreachable)
            return outcome
        outcome = classify_response(d.run_id, response.status, response.headers, time.time())
        outcome.response_ms = (time.monotonic() - started) * 1000
        outcome.response_body = kept
        self._log(d, request, status=response.status, ms=round(outcome.response_ms, 1))
        return outcome

    def _check_literal(self, request: _Request) -> None:
        """aiohttp never asks the resolver about an IP literal: check it here."""
        literal = request.where.literal
        if literal is not None and literal not in self._allowed_literals:
            refuse_forbidden(request.where.host, [literal], self.allow_networks)
            self._allowed_literals.add(literal)  # the same answer every time: ask once

    def _log(self, d: Delivery, request: _Request, **extra: Any) -> None:
        ok = 200 <= extra.get("status", 0) < 300
        level = logging.DEBUG if ok else logging.WARNING
        if not logger.isEnabledFor(level):  # before the line's fields are gathered
            return
        logger.log(
            level,
            "webhook delivered" if ok else "webhook delivery failed",
            extra={**d.log_context(), "host": request.where.host, **extra},
        )

    def _build_request(self, d: Delivery) -> _Request:
        spec = _spec(d.target)
        where = _parse_url(spec.url)
        # GET carries no body; the signature then covers the empty body.
        body = None if spec.method == "GET" else d.payload.encode()
        headers = _headers(spec.headers, d.payload if body else None)
        timestamp = int(self._clock.now().timestamp())
        headers["webhook-id"] = d.run_id
        headers["webhook-timestamp"] = str(timestamp)
        secrets = [spec.secret] if isinstance(spec.secret, str) else spec.secret or []
        signatures = [sign(s, d.run_id, timestamp, body or b"") for s in secrets]
        if signatures:
            headers["webhook-signature"] = " ".join(signatures)
        return _Request(spec.method, where, headers, body, spec.timeout)

    async def _read_body(self, response: aiohttp.ClientResponse) -> str:
        """First max_body_keep bytes. The rest is drained (up to a cap) so the connection can be
        reused; a body that fails midway keeps what arrived: the status already decided."""
        data = bytearray()
        try:
            while chunk := await response.content.read(16384):
                data += chunk
                if len(data) > MAX_DRAIN_BYTES:
                    response.close()  # too much to drain: drop the connection, don't reuse it
                    break
        except (aiohttp.ClientError, TimeoutError):
            pass
        return bytes(data[: self.max_body_keep]).decode("utf-8", errors="replace")


def _target_url(target: Mapping[str, Any]) -> _Url:
    """The URL to request, and its host as the job wrote it (for error texts)."""
    return _parse_url(_spec(target).url)


def _spec(target: Mapping[str, Any]) -> WebhookSpec:
    """The stored target, validated by the model that validated it when the job was saved;
    one that no longer passes (saved by an older version, edited in the database) fails
    its runs permanently, naming the field."""
    # A run's target is asked for three or four times (origin, timeout, request): the same
    # dict each time, so it is looked up by identity before it is encoded. The entry holds
    # the dict, so its id is not reused while the entry lives.
    known = _SPECS.get(id(target))
    if known is not None and known[0] is target:
        return known[1]
    spec = _spec_of_json(target)
    if len(_SPECS) >= MAX_SPECS:
        _SPECS.clear()
    _SPECS[id(target)] = (target, spec)
    return spec


MAX_SPECS = 4096
_SPECS: dict[int, tuple[Mapping[str, Any], WebhookSpec]] = {}


def _spec_of_json(target: Mapping[str, Any]) -> WebhookSpec:
    try:
        return _validated(json.dumps(target, sort_keys=True, default=str))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "target"
        raise _InvalidTarget(f"{where}: {first['msg']}"[:MAX_ERROR_CHARS]) from None


@functools.lru_cache(maxsize=4096)  # every run of a job asks again: validate once
def _validated(target_json: str) -> WebhookSpec:
    return WebhookSpec.model_validate_json(target_json)


@functools.lru_cache(maxsize=4096)
def _parse_url(url: str) -> _Url:
    """A URL the model accepted, ready to request: an IP literal host is sent in its
    canonical form, so the address checked is the address connected to whatever the
    spelling (0x7f.1), and aiohttp refuses legacy ones (127.1)."""
    parsed, written = URL(url), urlsplit(url).hostname or ""
    literal = parse_ip_literal(parsed.raw_host or "")
    if literal is not None:
        parsed = parsed.with_host(str(literal))
    return _Url(parsed, written, literal)


@functools.lru_cache(maxsize=256)  # a few timeouts, asked for every request
def _client_timeout(timeout: float) -> aiohttp.ClientTimeout:
    # total: the whole call, as timeout() promises the delivery loop (the run's lease covers
    # it), so no rounding up to whole seconds either. connect (DNS, TCP, TLS) gets at most
    # CONNECT_TIMEOUT of it: a long timeout is for a slow receiver, not for a dead host.
    return aiohttp.ClientTimeout(
        total=timeout, connect=min(timeout, CONNECT_TIMEOUT), ceil_threshold=math.inf
    )


@dataclass(slots=True)
class _Progress:
    connected: bool = False


_PROGRESS: contextvars.ContextVar[_Progress] = contextvars.ContextVar("webhook_progress")


class _Connector(aiohttp.TCPConnector):
    """Marks the calling request's progress once it has a connection, so that a timeout can
    tell 'never connected' (unreachable) from 'connected, then too slow': when timeout <= 10
    s the total and connect timers end together, and either may fire. (aiohttp's request
    tracing would tell too, at the price of a dozen signals sent for every request.)"""

    async def connect(
        self, req: ClientRequest, traces: list[Trace], timeout: aiohttp.ClientTimeout
    ) -> Connection:
        connection = await super().connect(req, traces, timeout)
        progress = _PROGRESS.get(None)
        if progress is not None:
            progress.connected = True
        return connection


def _headers(job_headers: Mapping[str, str], payload: str | None) -> CIMultiDict[str]:
    """Our defaults, then the job's headers (which may not touch signature or framing)."""
    headers: CIMultiDict[str] = CIMultiDict({"user-agent": USER_AGENT})
    if payload is not None:
        headers["content-type"] = _content_type(payload)
    for name, value in job_headers.items():
        if name.lower() not in RESERVED_HEADERS:
            headers[name] = value
    return headers


def _content_type(payload: str) -> str:
    # What no parser of ours takes (too deep too) is not sent as JSON.
    return "application/json" if is_json(payload) else "text/plain; charset=utf-8"


def classify_response(run_id: str, status: int, headers: Mapping[str, str], now: float) -> Outcome:
    """Standard Webhooks status handling."""
    if 200 <= status < 300:
        return Outcome(run_id, ok=True, response_status=status)
    if 300 <= status < 400:
        error = f"HTTP {status}: redirects are not followed (update the webhook URL)"
        return Outcome(run_id, ok=False, error=error, permanent=True, response_status=status)
    if status == 410:
        error = "HTTP 410 Gone: the receiver asked to stop; job disabled"
        return Outcome(
            run_id, ok=False, error=error, permanent=True, disable_job=True, response_status=status
        )
    if status in (408, 429) or status >= 500:
        retry_after = parse_retry_after(headers.get("retry-after"), now)
        error = f"HTTP {status}" + (f" (retry after {retry_after:g}s)" if retry_after else "")
        return Outcome(
            run_id, ok=False, error=error, retry_after=retry_after, response_status=status
        )
    # other 4xx: the request itself is wrong (auth, path, payload); resending it won't help
    return Outcome(run_id, ok=False, error=f"HTTP {status}", permanent=True, response_status=status)


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a Retry-After header (delay-seconds or HTTP-date)."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - now)


def _failure(run_id: str, exc: Exception, request: _Request, *, connected: bool) -> Outcome:
    """The Outcome of a request that got no response. The error never holds the URL (its path
    or query may carry a token), so aiohttp's own messages, which do, are not used."""
    host = request.where.host
    if isinstance(exc, AddressRefused):
        # Permanent: the address (or our allow-list) won't change by itself; retrying only
        # knocks on the forbidden door again. Fix the job or allow_networks, then retry the run.
        return Outcome(run_id, ok=False, error=_short(f"refused: {exc}"), permanent=True)
    if isinstance(exc, aiohttp.ClientSSLError):  # before ClientConnectorError, its base
        return Outcome(run_id, ok=False, error=f"TLS error with {host}")
    if isinstance(exc, TimeoutError):  # aiohttp's timeout errors are TimeoutErrors
        if connected:
            error = f"timeout after {request.timeout:g}s talking to {host}"
        else:
            error = f"timeout after {min(request.timeout, CONNECT_TIMEOUT):g}s connecting to {host}"
        return Outcome(run_id, ok=False, error=error, unreachable=not connected)
    if isinstance(exc, aiohttp.ClientConnectorError):  # refused, unreachable, DNS
        error = _short(f"connection to {host} failed: {_os_reason(exc.os_error)}")
        return Outcome(run_id, ok=False, error=error, unreachable=True)
    if isinstance(exc, aiohttp.InvalidURL):
        return Outcome(run_id, ok=False, error="invalid target: bad url", permanent=True)
    if isinstance(exc, aiohttp.ClientError | OSError):  # e.g. the server hung up
        error = f"connection to {host} failed: {type(exc).__name__}"
        return Outcome(run_id, ok=False, error=error, unreachable=not connected)
    return Outcome(run_id, ok=False, error=f"request failed ({type(exc).__name__})")


def _os_reason(error: OSError) -> str:
    """'Connection refused' rather than asyncio's text, which names the address and port."""
    if isinstance(error, socket.gaierror):
        return "name resolution failed"
    if error.errno:
        return os.strerror(error.errno)
    return type(error).__name__


def _short(text: str) -> str:
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"
