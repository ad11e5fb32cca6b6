"""SSRF guard: which addresses the service may connect to on a job's behalf.

A connection goes to an address this module has checked, from one resolution of the host
(no second lookup, so no DNS-rebinding window). A name is refused if ANY of its addresses is
forbidden: a mix of public and private records is a trick, not an accident. IPv6 forms that
reach an IPv4 address (mapped, NAT64, 6to4) are judged by the IPv4 address inside.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_METADATA_ADDRESSES = frozenset(
    {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
)
_SHARED = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
_LEGACY_PART = re.compile(r"0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*")


class AddressRefused(Exception):
    """The target resolves to an address we must not connect to."""


def parse_networks(networks: Iterable[str | IPNetwork]) -> tuple[IPNetwork, ...]:
    """The allow-list as networks; raises ValueError on a bad CIDR."""
    return tuple(ipaddress.ip_network(n) if isinstance(n, str) else n for n in networks)


def check_address(
    ip: str | IPAddress, allow_networks: Iterable[str | IPNetwork] = ()
) -> str | None:
    """None if connecting to `ip` is fine, else why not (e.g. '127.0.0.1 is loopback').
    Raises ValueError if `ip` is not an IP address."""
    addr = ipaddress.ip_address(ip) if isinstance(ip, str) else ip
    return _refusal(addr, parse_networks(allow_networks))


def refuse_forbidden(
    host: str, addresses: Iterable[str | IPAddress], allow_networks: Sequence[IPNetwork]
) -> None:
    """Raise AddressRefused if any of the addresses `host` resolved to is forbidden."""
    for ip in addresses:
        addr = ipaddress.ip_address(ip) if isinstance(ip, str) else ip
        reason = _refusal(addr, allow_networks)
        if reason:
            raise AddressRefused(f"{host} resolves to a private address ({reason})")


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
