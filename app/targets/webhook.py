"""Webhook target: one signed HTTP request per run, as Standard Webhooks says
(https://www.standardwebhooks.com/): webhook-id, webhook-timestamp, webhook-signature.

SSRF guard: every connection resolves the host itself, checks every address, and connects to
the checked address (no second DNS lookup, so no rebinding window). The Host header and TLS
SNI/certificate checks still use the URL's host name.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import ipaddress
import json
import logging
import re
import secrets as secrets_module
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.poolmanager import PoolManager
from urllib3.util.connection import allowed_gai_family, create_connection

from app.clock import Clock, SystemClock
from app.targets.base import Delivery, Outcome

logger = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

USER_AGENT = "Scheduler-Webhook/1"
METHODS = frozenset({"POST", "PUT", "PATCH", "GET", "DELETE"})
DEFAULT_TIMEOUT = 10.0
MAX_WORKERS = 16
MAX_DRAIN_BYTES = 64 * 1024  # read at most this much of a response (then drop the connection)
MAX_ERROR_CHARS = 200
SECRET_PREFIX = "whsec_"
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

_METADATA_ADDRESSES = frozenset(
    {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
)
_SHARED = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
_LEGACY_PART = re.compile(r"0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*")


# --- Standard Webhooks signing ---------------------------------------------------------------


def generate_secret() -> str:
    """A new signing secret: whsec_ + base64 of 24 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets_module.token_bytes(24)).decode()


def sign(secret: str, msg_id: str, timestamp: int, body: str | bytes) -> str:
    """'v1,<base64 HMAC-SHA256 of "{msg_id}.{timestamp}.{body}">', keyed by the secret's bytes.
    Raises ValueError on a malformed secret."""
    key = _secret_key(secret)
    payload = body.encode() if isinstance(body, str) else body
    digest = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + payload, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def _secret_key(secret: str) -> bytes:
    try:
        return base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("invalid webhook secret (expected whsec_<base64>)") from None


# --- SSRF guard ------------------------------------------------------------------------------


class AddressRefused(Exception):
    """The target resolves to an address we must not connect to."""


def check_address(
    ip: str | IPAddress, allow_networks: Iterable[str | IPNetwork] = ()
) -> str | None:
    """None if connecting to `ip` is fine, else why not (e.g. '127.0.0.1 is loopback').
    Raises ValueError if `ip` is not an IP address."""
    addr = ipaddress.ip_address(ip) if isinstance(ip, str) else ip
    nets = [ipaddress.ip_network(n) if isinstance(n, str) else n for n in allow_networks]
    return _refusal(addr, nets)


def _refusal(addr: IPAddress, nets: Sequence[IPNetwork]) -> str | None:
    found = _forbidden(addr, nets)
    if found is None:
        return None
    offender, kind = found
    if offender == addr:
        return f"{addr} is {kind}"
    return f"{addr} embeds {offender}, which is {kind}"


def _forbidden(addr: IPAddress, nets: Sequence[IPNetwork]) -> tuple[IPAddress, str] | None:
    """(the forbidden address, its kind), looking inside IPv6 forms that reach an IPv4 address."""
    if any(addr in net for net in nets):
        return None
    inner = _embedded_ipv4(addr)
    if inner is not None:  # ::ffff:a.b.c.d, NAT64 and 6to4 end up at the IPv4 address inside
        return _forbidden(inner, nets)
    kind = _forbidden_kind(addr)
    return (addr, kind) if kind else None


def _embedded_ipv4(addr: IPAddress) -> ipaddress.IPv4Address | None:
    if not isinstance(addr, ipaddress.IPv6Address):
        return None
    if addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    if addr in _NAT64:
        return ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
    return addr.sixtofour


def _forbidden_kind(addr: IPAddress) -> str | None:
    if addr in _METADATA_ADDRESSES:
        return "cloud metadata"
    checks = [
        (addr.is_loopback, "loopback"),
        (addr.is_unspecified, "unspecified"),
        (addr.is_link_local, "link-local"),
        (addr.is_multicast, "multicast"),
        (addr in _SHARED, "shared (100.64.0.0/10)"),
        (addr in _NAT64_LOCAL, "local-use NAT64"),
        (addr.is_private, "private"),
        (addr.is_reserved, "reserved"),
        (not addr.is_global, "not globally routable"),
    ]
    return next((kind for hit, kind in checks if hit), None)


def parse_ip_literal(host: str) -> IPAddress | None:
    """The address a host name denotes by itself, including the legacy IPv4 forms resolvers
    accept (2130706433, 0x7f.1, 017700000001, 127.1); None for a real name."""
    host = host.strip("[]")
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    parts = host.split(".")
    if not 1 <= len(parts) <= 4 or not all(_LEGACY_PART.fullmatch(p) for p in parts):
        return None
    *head, last = [_legacy_number(p) for p in parts]
    if any(v > 255 for v in head) or last >= 256 ** (4 - len(head)):
        return None
    number = last
    for i, v in enumerate(head):
        number += v << (8 * (3 - i))
    return ipaddress.IPv4Address(number)


def _legacy_number(part: str) -> int:
    if part[:2] in ("0x", "0X"):
        return int(part[2:], 16)
    if part.startswith("0"):
        return int(part, 8)
    return int(part)


def _resolve(host: str, port: int) -> list[tuple[socket.AddressFamily, str]]:
    """(family, ip) for every address of host; a literal never goes to DNS."""
    literal = parse_ip_literal(host)
    if literal is not None:
        family = socket.AF_INET6 if literal.version == 6 else socket.AF_INET
        return [(family, str(literal))]
    infos = socket.getaddrinfo(host, port, allowed_gai_family(), socket.SOCK_STREAM)
    return [(info[0], str(info[4][0])) for info in infos]


class _GuardedConnectionMixin:
    """Resolves, checks every address, then connects to a checked address (never re-resolves)."""

    host: str
    port: int
    timeout: Any
    source_address: tuple[str, int] | None
    socket_options: Any

    def __init__(self, *args: Any, allow_networks: Sequence[IPNetwork] = (), **kwargs: Any):
        self.allow_networks = allow_networks
        super().__init__(*args, **kwargs)

    def _new_conn(self) -> socket.socket:
        try:
            addresses = _resolve(self.host, self.port)
        except socket.gaierror as e:
            raise NameResolutionError(self.host, self, e) from e  # type: ignore[arg-type]
        # Refuse if ANY address is forbidden: a mix of public and private records is a trick.
        for _, ip in addresses:
            reason = _refusal(ipaddress.ip_address(ip), self.allow_networks)
            if reason:
                raise AddressRefused(f"{self.host} resolves to a private address ({reason})")
        error: OSError | None = None
        for _, ip in addresses:
            try:
                return create_connection(
                    (ip, self.port),
                    self.timeout,
                    source_address=self.source_address,
                    socket_options=self.socket_options,
                )
            except OSError as e:  # includes TimeoutError; try the next address
                error = e
        if isinstance(error, TimeoutError):
            raise ConnectTimeoutError(self, f"connection to {self.host} timed out") from error
        message = f"failed to connect: {error}"
        raise NewConnectionError(self, message) from error  # type: ignore[arg-type]


class _GuardedHTTPConnection(_GuardedConnectionMixin, HTTPConnection):
    pass


class _GuardedHTTPSConnection(_GuardedConnectionMixin, HTTPSConnection):
    pass


class _GuardedPoolManager(PoolManager):
    def __init__(self, allow_networks: Sequence[IPNetwork], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.allow_networks = allow_networks

    def _new_pool(
        self,
        scheme: str,
        host: str,
        port: int,
        request_context: dict[str, Any] | None = None,
    ) -> HTTPConnectionPool:
        pool = super()._new_pool(scheme, host, port, request_context)
        pool.ConnectionCls = (
            _GuardedHTTPSConnection if scheme == "https" else _GuardedHTTPConnection
        )
        pool.conn_kw["allow_networks"] = self.allow_networks
        return pool


class GuardedAdapter(HTTPAdapter):
    """A requests adapter whose connections pass the SSRF guard. Proxies are refused: through a
    proxy we could not see (or check) the address finally connected to."""

    def __init__(self, allow_networks: Sequence[IPNetwork] = (), **kwargs: Any) -> None:
        self.allow_networks = tuple(allow_networks)
        super().__init__(**kwargs)

    def init_poolmanager(
        self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any
    ) -> None:
        self._pool_connections = connections
        self._pool_maxsize = maxsize
        self._pool_block = block
        self.poolmanager = _GuardedPoolManager(
            self.allow_networks, num_pools=connections, maxsize=maxsize, block=block, **pool_kwargs
        )

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        raise AddressRefused("proxies are not supported for webhooks")


# --- The target ------------------------------------------------------------------------------


class _InvalidTarget(Exception):
    pass


class WebhookTarget:
    def __init__(
        self,
        allow_networks: Sequence[str] = (),
        session_factory: Callable[[], requests.Session] | None = None,
        max_body_keep: int = 512,
        *,
        clock: Clock | None = None,
        max_workers: int = MAX_WORKERS,
    ) -> None:
        """allow_networks: CIDRs the SSRF guard lets through (e.g. an internal hook host).
        session_factory: makes each worker's requests.Session (CA bundle, client certs...); the
        guard adapter is mounted on it whatever it returns."""
        self.allow_networks = tuple(ipaddress.ip_network(n) for n in allow_networks)
        self._session_factory = session_factory or requests.Session
        self.max_body_keep = max_body_keep
        self._clock = clock or SystemClock()
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="webhook")
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._sessions_lock = threading.Lock()

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        with self._sessions_lock:
            for session in self._sessions:
                session.close()
            self._sessions.clear()

    def __enter__(self) -> WebhookTarget:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def deliver(self, deliveries: list[Delivery]) -> list[Outcome]:
        # Origins we could not connect to during this call: later deliveries to them fail at
        # once rather than each waiting out a connect timeout (and blocking the batch).
        unreachable: set[Origin] = set()
        run = functools.partial(self._deliver_safely, unreachable=unreachable)
        return list(self._pool.map(run, deliveries))

    def _deliver_safely(self, d: Delivery, unreachable: set[Origin]) -> Outcome:
        try:
            return self._deliver_one(d, unreachable)
        except Exception:  # never raise out of deliver(): report and let it retry
            logger.exception("webhook delivery failed unexpectedly", extra={"run_id": d.run_id})
            return Outcome(d.run_id, ok=False, error="internal error while delivering")

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = self._session_factory()
            session.trust_env = False  # no proxies or .netrc from the environment
            adapter = GuardedAdapter(self.allow_networks, pool_connections=32, pool_maxsize=2)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            self._local.session = session
            with self._sessions_lock:
                self._sessions.append(session)
        return session

    def _deliver_one(self, d: Delivery, unreachable: set[Origin]) -> Outcome:
        try:
            request = self._build_request(d)
        except _InvalidTarget as e:
            return Outcome(d.run_id, ok=False, error=f"invalid target: {e}", permanent=True)
        if request.origin in unreachable:
            error = f"connection to {request.host} failed earlier in this batch; not tried again"
            return Outcome(d.run_id, ok=False, error=error)
        started = time.monotonic()
        try:
            response = self._session().request(
                request.method,
                request.url,
                data=request.body,
                headers=request.headers,
                timeout=(request.timeout, request.timeout),
                allow_redirects=False,  # Standard Webhooks: a 3xx is a failure, not followed
                stream=True,
            )
        except Exception as exc:
            if _connect_failed(exc):
                unreachable.add(request.origin)
            permanent, error = _classify_exception(exc, request.host, request.timeout)
            self._log(d, request, error=error)
            return Outcome(d.run_id, ok=False, error=error, permanent=permanent)
        with response:
            kept = self._read_body(response)
        outcome = classify_response(d.run_id, response.status_code, response.headers, time.time())
        outcome.response_ms = (time.monotonic() - started) * 1000
        outcome.response_body = kept
        self._log(d, request, status=response.status_code, ms=round(outcome.response_ms, 1))
        return outcome

    def _log(self, d: Delivery, request: _Request, **extra: Any) -> None:
        ok = 200 <= extra.get("status", 0) < 300
        logger.log(
            logging.DEBUG if ok else logging.WARNING,
            "webhook delivered" if ok else "webhook delivery failed",
            extra={"run_id": d.run_id, "host": request.host, "attempt": d.attempt, **extra},
        )

    def _build_request(self, d: Delivery) -> _Request:
        target = d.target
        url = target.get("url")
        if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https"):
            raise _InvalidTarget("url must be an http(s) URL")
        method = str(target.get("method") or "POST").upper()
        if method not in METHODS:
            raise _InvalidTarget(f"unsupported method {method[:10]}")
        # GET carries no body; the signature then covers the empty body.
        body = b"" if method == "GET" else d.payload.encode()
        headers = _headers(target.get("headers"), d.payload if body else None)
        timestamp = int(self._clock.now().timestamp())
        headers["webhook-id"] = d.run_id
        headers["webhook-timestamp"] = str(timestamp)
        signatures = [sign(s, d.run_id, timestamp, body) for s in _secrets(target.get("secret"))]
        if signatures:
            headers["webhook-signature"] = " ".join(signatures)
        return _Request(method, url, headers, body, _timeout(target.get("timeout")))

    def _read_body(self, response: requests.Response) -> str:
        """First max_body_keep bytes. The rest is drained (up to a cap) so the connection can be
        reused; a body that fails midway keeps what arrived: the status already decided."""
        data = bytearray()
        try:
            for chunk in response.iter_content(chunk_size=16384):
                data += chunk
                if len(data) > MAX_DRAIN_BYTES:
                    break  # leaving the `with` then closes the connection instead of reusing it
        except (requests.RequestException, OSError):
            pass
        return bytes(data[: self.max_body_keep]).decode("utf-8", errors="replace")


Origin = tuple[str, str, int | None]  # scheme, host, port


@dataclass(frozen=True, slots=True)
class _Request:
    method: str
    url: str
    headers: CaseInsensitiveDict[str]
    body: bytes
    timeout: float

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    @property
    def origin(self) -> Origin:
        parts = urlsplit(self.url)
        return parts.scheme, parts.hostname or "", parts.port


def _headers(job_headers: object, payload: str | None) -> CaseInsensitiveDict[str]:
    """Our defaults, then the job's headers (which may not touch signature or framing)."""
    headers: CaseInsensitiveDict[str] = CaseInsensitiveDict({"user-agent": USER_AGENT})
    if payload is not None:
        headers["content-type"] = _content_type(payload)
    if job_headers is None:
        return headers
    if not isinstance(job_headers, dict):
        raise _InvalidTarget("headers must be an object")
    for name, value in job_headers.items():
        if str(name).lower() not in RESERVED_HEADERS:
            headers[str(name)] = str(value)
    return headers


def _secrets(value: object) -> list[str]:
    """The signing secrets: none, one, or several during a key rotation."""
    secrets = [value] if isinstance(value, str) else value
    if not secrets:
        return []
    if not isinstance(secrets, list | tuple) or not all(isinstance(s, str) for s in secrets):
        raise _InvalidTarget("secret must be a string or a list of strings")
    for secret in secrets:
        try:
            _secret_key(secret)
        except ValueError as e:
            raise _InvalidTarget(str(e)) from None
    return list(secrets)


def _timeout(value: object) -> float:
    if value is None:
        return DEFAULT_TIMEOUT
    try:
        timeout = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise _InvalidTarget("timeout must be a number") from None
    if not 0 < timeout <= 3600:
        raise _InvalidTarget("timeout must be > 0 seconds")
    return timeout


def _content_type(payload: str) -> str:
    try:
        json.loads(payload)
    except ValueError:
        return "text/plain; charset=utf-8"
    return "application/json"


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
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - now)


_BAD_REQUEST_ERRORS = (
    requests.exceptions.InvalidURL,
    requests.exceptions.InvalidSchema,
    requests.exceptions.MissingSchema,
    requests.exceptions.InvalidHeader,
    UnicodeError,  # a header value that is not latin-1
)


def _classify_exception(exc: Exception, host: str, timeout: float) -> tuple[bool, str]:
    """(permanent, short error) for a request that got no response. The text never holds the
    URL: its path or query may carry a token."""
    if isinstance(exc, AddressRefused):
        # Permanent: the address (or our allow-list) won't change by itself; retrying only
        # knocks on the forbidden door again. Fix the job or allow_networks, then retry the run.
        return True, _short(f"refused: {exc}")
    if isinstance(exc, requests.Timeout):
        return False, f"timeout after {timeout:g}s talking to {host}"
    if isinstance(exc, requests.exceptions.SSLError):
        return False, f"TLS error with {host}"
    if isinstance(exc, requests.ConnectionError):
        return False, _short(f"connection to {host} failed: {_root_reason(exc)}")
    if isinstance(exc, _BAD_REQUEST_ERRORS):
        return True, "invalid target: bad url or header"
    return False, f"request failed ({type(exc).__name__})"


def _connect_failed(exc: BaseException) -> bool:
    """True if no connection could be made (refused, unreachable, DNS, connect timeout)."""
    return any(isinstance(e, ConnectTimeoutError) for e in _chain(exc))


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """exc and what it wraps: urllib3 `reason`, requests' first arg, then cause/context."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        nested = getattr(current, "reason", None)
        if isinstance(nested, BaseException):
            current = nested
        elif current.args and isinstance(current.args[0], BaseException):
            current = current.args[0]
        else:
            current = current.__cause__ or current.__context__


def _root_reason(exc: BaseException) -> str:
    """The innermost OS-level reason ('Connection refused'), else the innermost class name."""
    last = exc
    for e in _chain(exc):
        if isinstance(e, socket.gaierror | NameResolutionError):
            return "name resolution failed"
        if isinstance(e, OSError) and e.strerror:
            return e.strerror
        last = e
    return type(last).__name__


def _short(text: str) -> str:
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"
