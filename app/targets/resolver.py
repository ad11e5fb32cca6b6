"""The webhook target's DNS resolver: aiohttp connects to exactly the addresses it returns,
and it returns none that app.netguard forbids. (Apart from app.netguard so that the web
side, which checks literal addresses only, never imports aiohttp.)"""

from __future__ import annotations

import socket
from collections.abc import Iterable

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

from app.netguard import IPAddress, IPNetwork, parse_ip_literal, parse_networks, refuse_forbidden


class GuardedResolver(AbstractResolver):
    """An aiohttp resolver that refuses a host when any of its addresses is forbidden.

    aiohttp connects to exactly the addresses a resolver returns, so what is checked here is
    what is connected to. aiohttp does not ask a resolver about canonical IP literals
    (127.0.0.1, [::1]): callers check those themselves with parse_ip_literal.
    Create it inside the running event loop (the default inner resolver binds to it)."""

    def __init__(
        self,
        allow_networks: Iterable[str | IPNetwork] = (),
        resolver: AbstractResolver | None = None,
    ) -> None:
        self.allow_networks = parse_networks(allow_networks)
        self._resolver = resolver or ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        literal = parse_ip_literal(host)  # legacy forms (0x7f.1) never go to DNS either
        if literal is not None:
            results = [_literal_result(host, literal, port)]
        else:
            results = await self._resolver.resolve(host, port, family)
        refuse_forbidden(host, [r["host"] for r in results], self.allow_networks)
        return results

    async def close(self) -> None:
        await self._resolver.close()


def _literal_result(host: str, addr: IPAddress, port: int) -> ResolveResult:
    family = socket.AF_INET6 if addr.version == 6 else socket.AF_INET
    return ResolveResult(
        hostname=host,
        host=str(addr),
        port=port,
        family=family,
        proto=0,
        flags=socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
    )
