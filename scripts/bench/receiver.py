"""A webhook receiver for the delivery part: one process, one or more ports on 127.0.0.1.

    python scripts/bench/receiver.py --ports 4 --delay 1.0 --parent PID --lifetime 1200

Every request is answered `200` with an empty body, `delay` seconds after its body has
arrived (0: at once, inside the read callback). It is a bare asyncio Protocol (HTTP/1.1,
keep-alive, Content-Length bodies; no chunked bodies, no pipelining: aiohttp sends neither),
so that it costs far less per request than the clients it measures. It counts requests,
requests in flight (received, not yet answered) and open connections, and their highest
values. A control port of its own answers `GET /_stats` (the counts, as JSON) and
`POST /_reset` (zeroes them); its connections are not counted.

It prints `listening <port>,<port>... control <port>` once bound, and exits on SIGTERM or
SIGINT, when its parent process is gone, or after `lifetime` seconds, whichever comes
first. Only the standard library: it starts in a fraction of a second.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import time

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nContent-Type: text/plain\r\n\r\n"
MAX_HEAD = 64 * 1024


class Counts:
    def __init__(self) -> None:
        self.reset()
        self.connections = 0  # open now: not zeroed by a reset

    def reset(self) -> None:
        self.requests = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.max_connections = getattr(self, "connections", 0)
        self.body_bytes = 0
        self.first = 0.0  # time.time() of the first request's arrival / last answer
        self.last = 0.0

    def as_json(self) -> bytes:
        return json.dumps(
            {
                "requests": self.requests,
                "in_flight": self.in_flight,
                "max_in_flight": self.max_in_flight,
                "connections": self.connections,
                "max_connections": self.max_connections,
                "body_bytes": self.body_bytes,
                "first": self.first,
                "last": self.last,
            }
        ).encode()


class Http(asyncio.Protocol):
    def __init__(self, counts: Counts, delay: float, control: bool = False) -> None:
        self.counts = counts
        self.delay = delay
        self.control = control  # the control port: stats and reset, never counted
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if not self.control:
            self.counts.connections += 1
            self.counts.max_connections = max(self.counts.max_connections, self.counts.connections)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.control:
            self.counts.connections -= 1
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > MAX_HEAD and self.transport is not None:
                    self.transport.close()
                return
            head = bytes(self.buffer[:end])
            length = _content_length(head)
            if len(self.buffer) < end + 4 + length:
                return
            del self.buffer[: end + 4 + length]
            self._request(head.split(b"\r\n", 1)[0], length)

    def _request(self, line: bytes, length: int) -> None:
        counts = self.counts
        if self.control:
            if line.startswith(b"POST /_reset "):
                counts.reset()
            body = counts.as_json()
            self._write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                        b"Content-Length: %d\r\n\r\n%s" % (len(body), body))  # fmt: skip
            return
        now = time.time()
        counts.requests += 1
        counts.body_bytes += length
        counts.first = counts.first or now
        counts.in_flight += 1
        counts.max_in_flight = max(counts.max_in_flight, counts.in_flight)
        if self.delay <= 0:
            self._answer()
        else:
            asyncio.get_running_loop().call_later(self.delay, self._answer)

    def _answer(self) -> None:
        self.counts.in_flight -= 1
        self.counts.last = time.time()
        self._write(OK)

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)


def _content_length(head: bytes) -> int:
    at = head.lower().find(b"\r\ncontent-length:")
    if at < 0:
        return 0
    value = head[at + 17 :].split(b"\r\n", 1)[0]
    return int(value.strip() or 0)


async def serve(ports: int, delay: float, parent: int, lifetime: float) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    counts = Counts()
    servers = [
        await loop.create_server(lambda: Http(counts, delay), "127.0.0.1", 0, backlog=2048)
        for _ in range(ports)
    ]
    control = await loop.create_server(lambda: Http(counts, 0, control=True), "127.0.0.1", 0)
    bound = [server.sockets[0].getsockname()[1] for server in servers]
    listening = ",".join(str(p) for p in bound)
    print(f"listening {listening} control {control.sockets[0].getsockname()[1]}", flush=True)
    servers.append(control)
    deadline = time.monotonic() + lifetime
    while not stop.is_set() and time.monotonic() < deadline:
        if os.getppid() != parent:  # the bench is gone: so are we
            break
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.5)
    for server in servers:
        server.close()
    for server in servers:
        await asyncio.wait_for(server.wait_closed(), 5)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--ports", type=int, default=1)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before answering")
    parser.add_argument("--parent", type=int, required=True, help="exit when this pid is gone")
    parser.add_argument("--lifetime", type=float, default=1200.0, help="exit after this many s")
    args = parser.parse_args()
    with contextlib.suppress(TimeoutError):  # connections still open at the end: exit anyway
        asyncio.run(serve(args.ports, args.delay, args.parent, args.lifetime))
    return 0


if __name__ == "__main__":
    sys.exit(main())
