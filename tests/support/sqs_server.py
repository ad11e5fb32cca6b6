"""SQS for tests: moto in server mode on loopback, real boto3 clients, fresh queues, and a TCP
proxy in front of moto that can be switched off and on (an endpoint that goes away and comes
back)."""

from __future__ import annotations

import contextlib
import socket
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from moto.server import ThreadedMotoServer

REGION = "us-east-1"
DUMMY_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


@pytest.fixture(scope="session")
def sqs_endpoint() -> Iterator[str]:
    """URL of a moto server (SQS and the rest of AWS) on 127.0.0.1, for the whole session."""
    with pytest.MonkeyPatch.context() as mp:
        # Never let boto3 look for credentials on the EC2 metadata address.
        mp.setenv("AWS_EC2_METADATA_DISABLED", "true")
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        try:
            yield f"http://{host}:{port}"
        finally:
            server.stop()


@pytest.fixture(scope="session")
def _boto_session() -> boto3.session.Session:
    # One session: its loaded service models make every later client cheap to create.
    return boto3.session.Session(region_name=REGION, **DUMMY_CREDENTIALS)


def make_sqs_client(session: boto3.session.Session, endpoint: str, **config: Any) -> Any:
    """A client for `endpoint`; `config` overrides botocore Config (e.g. retries)."""
    options: dict[str, Any] = {"connect_timeout": 2, "read_timeout": 5, **config}
    return session.client("sqs", endpoint_url=endpoint, config=Config(**options))


@pytest.fixture
def sqs_client(sqs_endpoint: str, _boto_session: boto3.session.Session) -> Iterator[Any]:
    client = make_sqs_client(_boto_session, sqs_endpoint)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def sqs_client_factory(sqs_endpoint: str, _boto_session: boto3.session.Session) -> Iterator[Any]:
    """make(endpoint=None, **config) -> client; every client made is closed afterwards."""
    clients: list[Any] = []

    def make(endpoint: str | None = None, **config: Any) -> Any:
        client = make_sqs_client(_boto_session, endpoint or sqs_endpoint, **config)
        clients.append(client)
        return client

    try:
        yield make
    finally:
        for client in clients:
            client.close()


def _unique_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


@pytest.fixture
def sqs_queue(sqs_client: Any) -> Iterator[str]:
    """URL of a new, empty standard queue."""
    url = sqs_client.create_queue(QueueName=_unique_name("test"))["QueueUrl"]
    try:
        yield url
    finally:
        sqs_client.delete_queue(QueueUrl=url)


@pytest.fixture
def sqs_fifo_queue(sqs_client: Any) -> Iterator[str]:
    """URL of a new, empty FIFO queue (explicit deduplication ids)."""
    name = _unique_name("test") + ".fifo"
    url = sqs_client.create_queue(QueueName=name, Attributes={"FifoQueue": "true"})["QueueUrl"]
    try:
        yield url
    finally:
        sqs_client.delete_queue(QueueUrl=url)


def receive_all(client: Any, queue_url: str, expected: int) -> list[dict[str, Any]]:
    """Receive (and delete) messages until `expected` arrived or the queue is empty."""
    messages: list[dict[str, Any]] = []
    while len(messages) < expected:
        batch = client.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=10,
            MessageAttributeNames=["All"],
            MessageSystemAttributeNames=["All"],
            WaitTimeSeconds=0,
        ).get("Messages", [])
        if not batch:
            break
        messages.extend(batch)
        client.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)
            ],
        )
    return messages


class TcpProxy:
    """Forwards 127.0.0.1:<port> to an upstream address. disable() closes the port and drops
    every connection (clients then get 'connection refused'); enable() opens the same port."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.port = 0
        self._listener: socket.socket | None = None
        self._sockets: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def enabled(self) -> bool:
        return self._listener is not None

    def enable(self) -> None:
        if self._listener is not None:
            return
        listener = socket.create_server(("127.0.0.1", self.port))  # SO_REUSEADDR on POSIX
        self.port = listener.getsockname()[1]
        self._listener = listener
        self._start(self._accept_loop, listener)

    def disable(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            _shutdown(listener)  # wakes the blocked accept()
            listener.close()
        with self._lock:
            sockets, self._sockets = list(self._sockets), set()
            threads, self._threads = self._threads, []
        for sock in sockets:
            _shutdown(sock)
        for thread in threads:
            thread.join(timeout=5)
        for sock in sockets:
            sock.close()

    def _start(self, target: Any, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _accept_loop(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # disabled
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._sockets.update((client, upstream))
            self._start(_pump, client, upstream)
            self._start(_pump, upstream, client)


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def sqs_proxy(sqs_endpoint: str) -> Iterator[TcpProxy]:
    """A switchable TCP proxy in front of moto: proxy.url, proxy.disable(), proxy.enable()."""
    host, port = sqs_endpoint.removeprefix("http://").rsplit(":", 1)
    proxy = TcpProxy((host, int(port)))
    proxy.enable()
    try:
        yield proxy
    finally:
        proxy.disable()
