"""A real local HTTP server for webhook tests: records every request, answers as scripted.

def test_x(http_target):
    http_target.respond("/hook", Response(500), Response(200, body=b"ok"))  # then 200 forever
    ... deliver to http_target.url + "/hook" ...
    assert http_target.requests[0].headers["webhook-id"] == run_id
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


@dataclass(frozen=True)
class Response:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    delay: float = 0.0  # seconds before answering (cut short when the server stops)


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so clients can reuse connections
    disable_nagle_algorithm = True  # else headers and body meet delayed ACKs: +40 ms a response
    timeout = 10  # an idle keep-alive connection does not hold a thread forever
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, add=False)

    def _handle(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        path = self.path
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.server.target.record(Recorded(self.command, path, headers, body))
        reply = self.server.target.next_response(path.split("?", 1)[0])
        if reply.delay and self.server.target.stopping.wait(reply.delay):
            self.close_connection = True  # hang up: the caller sees it at once, no timeout
            return
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("content-length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = False
    block_on_close = True  # server_close() joins handler threads: a clean shutdown
    request_queue_size = 128  # the default 5 drops bursts of connects (1 s SYN retries)

    def __init__(self, target: HttpTarget) -> None:
        self.target = target
        self.connections: set[socket.socket] = set()
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    def track(self, conn: socket.socket, add: bool) -> None:
        with self.lock:
            (self.connections.add if add else self.connections.discard)(conn)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that time out or hang up are part of the tests


class HttpTarget:
    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self.requests: list[Recorded] = []
        self.stopping = threading.Event()
        self._responses: dict[str, list[Response]] = {}
        self._lock = threading.Lock()
        self._server = _Server(self)
        if ssl_context is not None:
            self._server.socket = ssl_context.wrap_socket(self._server.socket, server_side=True)
        self.port: int = self._server.server_address[1]
        scheme = "https" if ssl_context else "http"
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def respond(self, path: str, *responses: Response) -> None:
        """Answer requests to `path` with these responses in turn, the last one repeating."""
        with self._lock:
            self._responses[path] = list(responses) or [Response()]

    def next_response(self, path: str) -> Response:
        with self._lock:
            queue = self._responses.get(path)
            if not queue:
                return Response()
            return queue.pop(0) if len(queue) > 1 else queue[0]

    def record(self, request: Recorded) -> None:
        with self._lock:
            self.requests.append(request)

    def requests_to(self, path: str) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def stop(self) -> None:
        self.stopping.set()  # ends scripted delays at once
        self._server.shutdown()
        with self._server.lock:
            for conn in list(self._server.connections):
                # wake handler threads blocked on an idle keep-alive connection
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
        self._server.server_close()
        self._thread.join()


@pytest.fixture
def http_target() -> Iterator[HttpTarget]:
    target = HttpTarget()
    try:
        yield target
    finally:
        target.stop()
