"""WebhookTarget against a real local HTTP server: signing, status handling, SSRF guard.

Each test drives its targets on one event loop in a thread (tests/support/aio.py), as the
delivery loop does in production.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import datetime as dt
import hashlib
import hmac
import ipaddress
import socket
import ssl
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from app.clock import ManualClock
from app.netguard import AddressRefused, check_address, parse_ip_literal
from app.targets.base import Delivery, Outcome
from app.targets.resolver import GuardedResolver
from app.targets.signing import generate_secret, sign
from app.targets.webhook import WebhookTarget, parse_retry_after
from tests.support.aio import LoopThread
from tests.support.http_target import HttpTarget, Response

LOOPBACK = ["127.0.0.0/8"]
T0 = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

MakeTarget = Callable[..., WebhookTarget]
Deliver = Callable[[WebhookTarget, Delivery], Outcome]


def delivery(url: str, payload: str = '{"n": 1}', attempt: int = 1, **target: Any) -> Delivery:
    return Delivery(
        run_id=str(uuid.uuid4()),
        job_id=str(uuid.uuid4()),
        scheduled_for=T0,
        payload=payload,
        target={"type": "webhook", "url": url, **target},
        attempt=attempt,
    )


def verify(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """A receiver's check, written from the spec: any listed v1 signature matches."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    listed = [s.split(",", 1) for s in headers["webhook-signature"].split(" ")]
    return any(v == "v1" and hmac.compare_digest(sig, expected) for v, sig in listed)


def closed_port() -> int:
    """A port on 127.0.0.1 with nobody listening."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def wall() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def make_target(loop_thread: LoopThread, wall: ManualClock) -> Iterator[MakeTarget]:
    """Makes WebhookTargets (loopback allowed unless told otherwise), closed on the loop."""
    made: list[WebhookTarget] = []

    def make(allow_networks: Sequence[str] = LOOPBACK, **kwargs: Any) -> WebhookTarget:
        kwargs.setdefault("clock", wall)
        made.append(WebhookTarget(allow_networks, **kwargs))
        return made[-1]

    yield make
    for target in made:
        loop_thread.run(target.aclose())


@pytest.fixture
def webhook(make_target: MakeTarget) -> WebhookTarget:
    return make_target()


@pytest.fixture
def guarded(make_target: MakeTarget) -> WebhookTarget:
    return make_target(())  # no allow-list: loopback is forbidden


@pytest.fixture
def deliver(loop_thread: LoopThread) -> Deliver:
    """Delivers one Delivery, as the delivery loop does (batch_size is 1)."""

    def deliver_one(target: WebhookTarget, d: Delivery) -> Outcome:
        [outcome] = loop_thread.run(target.deliver([d]))
        assert outcome.run_id == d.run_id
        return outcome

    return deliver_one


# --- signing ---------------------------------------------------------------------------------


def test_spec_test_vector() -> None:
    # From github.com/standard-webhooks/standard-webhooks,
    # libraries/python/tests/test_webhooks.py::test_sign_function
    signature = sign(SECRET, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, '{"test": 2432232314}')

    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_generated_secret_is_24_random_bytes() -> None:
    secret = generate_secret()

    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 24
    assert generate_secret() != secret
    assert sign(secret, "id", 1, "x").startswith("v1,")


def test_malformed_secret_is_a_permanent_error(
    webhook: WebhookTarget, deliver: Deliver, http_target: HttpTarget
) -> None:
    outcome = deliver(webhook, delivery(http_target.url + "/h", secret="whsec_not base64!"))

    assert outcome.permanent and "invalid target" in (outcome.error or "")
    assert "not base64" not in (outcome.error or "")  # the secret never shows
    assert http_target.requests == []


def test_every_attempt_is_signed_with_the_same_id(
    webhook: WebhookTarget, deliver: Deliver, http_target: HttpTarget, wall: ManualClock
) -> None:
    http_target.respond("/hook", Response(500), Response(200))
    first = delivery(http_target.url + "/hook", secret=SECRET)

    assert not deliver(webhook, first).ok
    wall.advance(42)
    assert deliver(webhook, dataclasses.replace(first, attempt=2)).ok

    one, two = http_target.requests
    assert one.headers["webhook-id"] == two.headers["webhook-id"] == first.run_id
    assert one.headers["webhook-timestamp"] == str(int(T0.timestamp()))
    assert two.headers["webhook-timestamp"] == str(int(T0.timestamp()) + 42)
    assert verify(SECRET, one.headers, one.body) and verify(SECRET, two.headers, two.body)
    assert one.body == two.body == b'{"n": 1}'


def test_each_secret_of_a_rotation_signs(
    webhook: WebhookTarget, deliver: Deliver, http_target: HttpTarget
) -> None:
    old, new = generate_secret(), generate_secret()

    assert deliver(webhook, delivery(http_target.url + "/h", secret=[new, old])).ok

    [request] = http_target.requests
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    assert verify(new, request.headers, request.body)
    assert verify(old, request.headers, request.body)
    assert not verify(generate_secret(), request.headers, request.body)


def test_request_shape(webhook: WebhookTarget, deliver: Deliver, http_target: HttpTarget) -> None:
    d = delivery(
        http_target.url + "/put?x=1",
        method="PUT",
        headers={"X-Team": "ops", "webhook-id": "forged", "Content-Length": "1"},
    )

    assert deliver(webhook, d).ok

    [request] = http_target.requests
    assert (request.method, request.path, request.body) == ("PUT", "/put?x=1", b'{"n": 1}')
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == "Scheduler-Webhook/1"
    assert request.headers["x-team"] == "ops"
    assert request.headers["webhook-id"] == d.run_id  # a job cannot forge our headers
    assert "webhook-signature" not in request.headers  # no secret, no signature


def test_content_type(webhook: WebhookTarget, deliver: Deliver, http_target: HttpTarget) -> None:
    url = http_target.url + "/h"
    deliver(webhook, delivery(url, payload="drink more water"))
    deliver(webhook, delivery(url, payload="<a/>", headers={"Content-Type": "text/xml"}))

    plain, xml = http_target.requests
    assert plain.headers["content-type"].startswith("text/plain")
    assert xml.headers["content-type"] == "text/xml"


def test_get_sends_no_body(
    webhook: WebhookTarget, deliver: Deliver, http_target: HttpTarget
) -> None:
    assert deliver(webhook, delivery(http_target.url + "/h", method="GET", secret=SECRET)).ok

    [request] = http_target.requests
    assert request.method == "GET" and request.body == b""
    assert "content-type" not in request.headers
    assert verify(SECRET, request.headers, b"")


# --- the contract: origin, timeout, never raising --------------------------------------------


def test_origin_and_timeout(webhook: WebhookTarget) -> None:
    assert (
        webhook.origin(delivery("https://Hooks.Example/a?t=1").target)
        == "https://hooks.example:443"
    )
    assert webhook.origin(delivery("http://hooks.example/a").target) == "http://hooks.example:80"
    assert (
        webhook.origin(delivery("http://hooks.example:8080/").target) == "http://hooks.example:8080"
    )
    assert webhook.origin(delivery("http://[::1]:81/").target) == "http://[::1]:81"
    # one server, one origin, however its address is spelled
    assert webhook.origin(delivery("http://0x7f.1/").target) == "http://127.0.0.1:80"
    assert webhook.timeout(delivery("http://hooks.example/")) == 10.0
    assert webhook.timeout(delivery("http://hooks.example/", timeout=2.5)) == 2.5
    assert (webhook.in_transaction, webhook.batch_size) == (False, 1)


BAD_TARGETS = [
    delivery("ftp://127.0.0.1/x"),
    delivery("http://127.0.0.1:99999/x"),
    delivery("http://127.0.0.1:1/x", method="TRACE"),
    Delivery("r", "j", T0, "p", {"type": "webhook"}, 1),
    delivery("http://127.0.0.1:1/x", headers={"X-Bad": "a\r\nInjected: 1"}),
    delivery("http://127.0.0.1:1/x", headers={"X Bad": "a"}),
    delivery("http://127.0.0.1:1/x", headers=["X-Bad"]),
    delivery("http://127.0.0.1:1/x", timeout="soon"),
    delivery("http://127.0.0.1:1/x", timeout=0),
    delivery("http://127.0.0.1:1/x", secret=12345),
    # Saved before the API checked them, or edited in the database:
    delivery("http://127.0.0.1:1/x", secret="whsec_!!!"),
    delivery("http://127.0.0.1:1/x", headers={"X-Name": "€"}),
    delivery("http://"),
]


def test_a_stored_target_that_no_longer_validates_names_the_field(
    webhook: WebhookTarget, deliver: Deliver
) -> None:
    outcome = deliver(webhook, delivery("http://127.0.0.1:1/x", secret="whsec_!!!"))
    assert outcome.permanent
    assert outcome.error == "invalid target: secret: Value error, must be whsec_ followed by base64"


@pytest.mark.parametrize("bad", BAD_TARGETS)
def test_invalid_targets_are_permanent(
    webhook: WebhookTarget, deliver: Deliver, bad: Delivery
) -> None:
    outcome = deliver(webhook, bad)

    assert not outcome.ok and outcome.permanent and not outcome.unreachable, outcome
    assert "invalid target" in (outcome.error or "")
    assert isinstance(webhook.origin(bad.target), str)  # the loop asks both before delivering
    assert webhook.timeout(bad) > 0


def test_an_error_inside_deliver_becomes_a_failed_outcome(
    make_target: MakeTarget, deliver: Deliver, http_target: HttpTarget
) -> None:
    class BrokenClock:
        def now(self) -> dt.datetime:
            raise RuntimeError("clock broke")

    target = make_target(clock=BrokenClock())

    outcome = deliver(target, delivery(http_target.url + "/h"))

    assert not outcome.ok and not outcome.permanent
    assert outcome.error == "internal error while delivering"


def test_200_deliveries_in_flight_at_once(
    webhook: WebhookTarget, loop_thread: LoopThread, http_target: HttpTarget
) -> None:
    http_target.respond("/slow", Response(200, delay=0.5))
    batch = [delivery(http_target.url + "/slow") for _ in range(200)]

    async def all_at_once() -> list[list[Outcome]]:
        return await asyncio.gather(*(webhook.deliver([d]) for d in batch))

    started = time.monotonic()
    results = loop_thread.run(all_at_once())

    assert time.monotonic() - started < 10  # one after the other: 100 s
    assert [o.run_id for [o] in results] == [d.run_id for d in batch]
    assert all(o.ok for [o] in results)
    assert len(http_target.requests) == 200


# --- status handling -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("response", "ok", "permanent", "disable", "retry_after"),
    [
        (Response(200), True, False, False, None),
        (Response(204), True, False, False, None),
        (Response(301, {"Location": "/elsewhere"}), False, True, False, None),
        (Response(307, {"Location": "/elsewhere"}), False, True, False, None),
        (Response(400), False, True, False, None),
        (Response(404), False, True, False, None),
        (Response(410), False, True, True, None),
        (Response(429, {"Retry-After": "7"}), False, False, False, 7.0),
        (Response(500), False, False, False, None),
        (Response(503, {"Retry-After": "120"}), False, False, False, 120.0),
    ],
)
def test_status_classification(
    webhook: WebhookTarget,
    deliver: Deliver,
    http_target: HttpTarget,
    response: Response,
    ok: bool,
    permanent: bool,
    disable: bool,
    retry_after: float | None,
) -> None:
    http_target.respond("/h", response)

    outcome = deliver(webhook, delivery(http_target.url + "/h"))

    assert (outcome.ok, outcome.permanent, outcome.disable_job) == (ok, permanent, disable)
    assert outcome.retry_after == retry_after
    assert outcome.response_status == response.status
    assert outcome.response_ms is not None and outcome.response_ms >= 0
    assert not outcome.unreachable  # it answered, whatever it said
    assert [r.path for r in http_target.requests] == ["/h"]  # redirects not followed
    assert ok == (outcome.error is None)


def test_retry_after_http_date() -> None:
    now = time.time()
    later = dt.datetime.fromtimestamp(now + 90, dt.UTC)

    assert parse_retry_after(format_datetime(later, usegmt=True), now) == pytest.approx(90, abs=1)
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now) == 0.0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None


def test_response_body_is_truncated(
    make_target: MakeTarget, deliver: Deliver, http_target: HttpTarget
) -> None:
    http_target.respond("/h", Response(500, body=b"\xff" + b"e" * 5000))

    outcome = deliver(make_target(max_body_keep=100), delivery(http_target.url + "/h"))

    assert outcome.response_body == "\ufffd" + "e" * 99


def test_a_huge_body_is_not_read_to_the_end(
    webhook: WebhookTarget, deliver: Deliver, http_target: HttpTarget
) -> None:
    http_target.respond("/big", Response(200, body=b"x" * (8 << 20)))

    first = deliver(webhook, delivery(http_target.url + "/big"))
    again = deliver(webhook, delivery(http_target.url + "/h"))  # a new connection works

    assert first.ok and first.response_body == "x" * 512
    assert again.ok


def test_timeout_is_retryable(
    webhook: WebhookTarget, deliver: Deliver, http_target: HttpTarget
) -> None:
    http_target.respond("/slow", Response(200, delay=2))

    started = time.monotonic()
    outcome = deliver(webhook, delivery(http_target.url + "/slow", timeout=0.2))

    assert time.monotonic() - started < 1.5
    assert not outcome.ok and not outcome.permanent
    assert not outcome.unreachable  # connected, then too slow: the host is up
    assert outcome.error == "timeout after 0.2s talking to 127.0.0.1"


def test_a_refused_connection_is_unreachable(webhook: WebhookTarget, deliver: Deliver) -> None:
    outcome = deliver(webhook, delivery(f"http://127.0.0.1:{closed_port()}/h?token=SECRET"))

    assert not outcome.ok and not outcome.permanent and outcome.unreachable
    assert outcome.error == "connection to 127.0.0.1 failed: Connection refused"


def test_a_connect_timeout_is_unreachable(webhook: WebhookTarget, deliver: Deliver) -> None:
    # Linux drops the SYNs to a listener whose accept queue is full: connecting hangs.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        queued = [socket.socket() for _ in range(3)]
        for s in queued:
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
        try:
            outcome = deliver(webhook, delivery(f"http://127.0.0.1:{port}/h", timeout=0.3))
        finally:
            for s in queued:
                s.close()

    assert not outcome.ok and not outcome.permanent and outcome.unreachable
    assert outcome.error == "timeout after 0.3s connecting to 127.0.0.1"


def test_a_name_that_does_not_resolve_is_unreachable(
    monkeypatch: pytest.MonkeyPatch, webhook: WebhookTarget, deliver: Deliver
) -> None:
    def no_such_name(host: Any, *args: Any, **kwargs: Any) -> Any:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_name)

    outcome = deliver(webhook, delivery("http://nowhere.test/h"))

    assert not outcome.ok and not outcome.permanent and outcome.unreachable
    assert outcome.error == "connection to nowhere.test failed: name resolution failed"


# --- SSRF guard ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "localhost",
        "2130706433",
        "0x7f.1",
        "0x7f000001",
        "017700000001",
        "127.1",
        "[::ffff:127.0.0.1]",
        "[::1]",
    ],
)
def test_loopback_is_refused_in_every_spelling(
    guarded: WebhookTarget, deliver: Deliver, http_target: HttpTarget, host: str
) -> None:
    outcome = deliver(guarded, delivery(f"http://{host}:{http_target.port}/h"))

    assert not outcome.ok and outcome.permanent and not outcome.unreachable
    assert (outcome.error or "").startswith(f"refused: {host.strip('[]')} resolves to a private")
    assert http_target.requests == []


@pytest.mark.parametrize("host", ["127.0.0.1", "0x7f.1", "2130706433", "127.1"])
def test_allow_networks_lets_loopback_through(
    make_target: MakeTarget, deliver: Deliver, http_target: HttpTarget, host: str
) -> None:
    target = make_target(["127.0.0.1/32"])

    ok = deliver(target, delivery(f"http://{host}:{http_target.port}/h"))
    refused = deliver(target, delivery(f"http://127.0.0.2:{http_target.port}/h"))

    assert ok.ok, ok.error
    assert not refused.ok and refused.permanent
    assert len(http_target.requests) == 1


@pytest.mark.parametrize(
    "address",
    [
        "10.1.2.3",
        "172.16.5.4",
        "192.168.1.1",
        "100.64.0.1",
        "169.254.169.254",
        "169.254.1.1",
        "0.0.0.0",
        "127.0.0.1",
        "224.0.0.1",
        "240.0.0.1",
        "255.255.255.255",
        "198.18.0.1",
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "fd00:ec2::254",
        "ff02::1",
        "::ffff:10.0.0.1",
        "::ffff:169.254.169.254",
        "64:ff9b::7f00:1",
        "64:ff9b::a9fe:a9fe",
        "64:ff9b:1::1",
        "2002:7f00:1::1",
    ],
)
def test_check_address_refuses(address: str) -> None:
    assert check_address(address, []) is not None


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "64:ff9b::808:808", "::ffff:8.8.8.8"]
)
def test_check_address_allows_public(address: str) -> None:
    assert check_address(address) is None


def test_check_address_reasons_and_allow_list() -> None:
    assert check_address("169.254.169.254") == "169.254.169.254 is cloud metadata"
    assert check_address("100.64.0.1") == "100.64.0.1 is shared (100.64.0.0/10)"
    assert check_address("::ffff:10.0.0.1") == (
        f"{ipaddress.ip_address('::ffff:10.0.0.1')} embeds 10.0.0.1, which is private"
    )
    assert check_address("10.1.2.3", ["10.0.0.0/8"]) is None
    assert check_address("::ffff:10.1.2.3", ["10.0.0.0/8"]) is None


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("2130706433", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("017700000001", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("10.0x10.1", "10.16.0.1"),
        ("[::1]", "::1"),
        ("example.com", None),
        ("08.1.1.1", None),
        ("1.2.3.4.5", None),
        ("256.1.1.1", None),
        ("1.2.65536", None),
    ],
)
def test_parse_ip_literal(host: str, expected: str | None) -> None:
    parsed = parse_ip_literal(host)
    assert (str(parsed) if parsed else None) == expected


def test_the_resolver_checks_legacy_literals_without_dns(
    monkeypatch: pytest.MonkeyPatch, loop_thread: LoopThread
) -> None:
    """aiohttp hands a name like 0x7f.1 to the resolver: it is read as the address it spells."""
    lookups = fake_dns(monkeypatch, {"0x7f.1": ["10.0.0.1"]})  # DNS would say otherwise

    async def resolve(allow: list[str]) -> list[str]:
        resolver = GuardedResolver(allow)
        try:
            return [r["host"] for r in await resolver.resolve("0x7f.1", 80)]
        finally:
            await resolver.close()

    assert loop_thread.run(resolve(["127.0.0.1/32"])) == ["127.0.0.1"]
    with pytest.raises(AddressRefused, match=r"0x7f\.1 resolves to a private address"):
        loop_thread.run(resolve([]))
    assert lookups == []


def fake_dns(monkeypatch: pytest.MonkeyPatch, answers: dict[str, list[str]]) -> list[str]:
    """Resolve the names in `answers` (one answer per lookup, the last repeating)."""
    real = socket.getaddrinfo
    lookups: list[str] = []

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in answers:
            return real(host, port, *args, **kwargs)
        lookups.append(host)
        queue = answers[host]
        ip = queue.pop(0) if len(queue) > 1 else queue[0]
        return real(ip, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return lookups


def test_connects_to_the_checked_address(
    monkeypatch: pytest.MonkeyPatch,
    make_target: MakeTarget,
    deliver: Deliver,
    http_target: HttpTarget,
) -> None:
    """DNS rebinding: the first answer is checked and used; a later lookup would get a forbidden
    address (127.0.0.9, nobody listening) and fail this test."""
    lookups = fake_dns(monkeypatch, {"hooks.test": ["127.0.0.1", "127.0.0.9"]})

    target = make_target(["127.0.0.1/32"])
    outcome = deliver(target, delivery(f"http://hooks.test:{http_target.port}/h"))

    assert outcome.ok, outcome.error
    assert lookups == ["hooks.test"]
    assert http_target.requests[0].headers["host"] == f"hooks.test:{http_target.port}"


def test_a_name_with_any_private_address_is_refused(
    monkeypatch: pytest.MonkeyPatch,
    make_target: MakeTarget,
    deliver: Deliver,
    http_target: HttpTarget,
) -> None:
    real = socket.getaddrinfo

    def two_answers(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host != "mixed.test":
            return real(host, port, *args, **kwargs)
        return real("127.0.0.1", port, *args, **kwargs) + real("10.0.0.1", port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", two_answers)
    target = make_target(["127.0.0.1/32"])
    outcome = deliver(target, delivery(f"http://mixed.test:{http_target.port}/h"))

    assert outcome.permanent and "10.0.0.1 is private" in (outcome.error or "")
    assert http_target.requests == []


def test_environment_proxies_are_ignored(
    monkeypatch: pytest.MonkeyPatch,
    webhook: WebhookTarget,
    deliver: Deliver,
    http_target: HttpTarget,
) -> None:
    """Through a proxy we could not check the address finally connected to."""
    proxy = HttpTarget()  # would record the request if it were used as a proxy
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(name, proxy.url)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    try:
        outcome = deliver(webhook, delivery(http_target.url + "/h"))
    finally:
        proxy.stop()

    assert outcome.ok, outcome.error
    assert [r.path for r in http_target.requests] == ["/h"]
    assert proxy.requests == []


# --- TLS: SNI and certificate checks use the host name, not the connected IP ------------------


def make_certificates(folder: Path, name: str) -> tuple[Path, ssl.SSLContext]:
    """A CA (returned as a PEM file to trust) and a server context with a cert for `name`."""
    now = dt.datetime.now(dt.UTC)

    def certificate(subject: str, key: Any, issuer: str, issuer_key: Any, ca: bool) -> Any:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName(subject)]), critical=False
            )
        return builder.sign(issuer_key, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = certificate("Test CA", ca_key, "Test CA", ca_key, ca=True)
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = certificate(name, key, "Test CA", ca_key, ca=False)
    ca_file, cert_file, key_file = folder / "ca.pem", folder / "cert.pem", folder / "key.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    return ca_file, context


@pytest.mark.parametrize(("name", "ok"), [("hooks.test", True), ("other.test", False)])
def test_tls_verifies_the_host_name(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    make_target: MakeTarget,
    deliver: Deliver,
    name: str,
    ok: bool,
) -> None:
    ca_file, context = make_certificates(tmp_path, "hooks.test")
    fake_dns(monkeypatch, {"hooks.test": ["127.0.0.1"], "other.test": ["127.0.0.1"]})
    server = HttpTarget(ssl_context=context)
    target = make_target(ssl_context=ssl.create_default_context(cafile=ca_file))

    try:
        outcome = deliver(target, delivery(f"https://{name}:{server.port}/h"))
    finally:
        server.stop()

    assert outcome.ok is ok, outcome.error
    if not ok:  # the certificate is for hooks.test: a mismatch must fail, and may be fixed later
        assert not outcome.permanent and outcome.error == "TLS error with other.test"
        assert not outcome.unreachable  # the host answered
        assert server.requests == []
