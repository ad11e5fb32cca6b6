"""Broker connections, configured once by name (CONNECTIONS) and named by jobs' targets.

A job holds the name only: the URL, with whatever password it carries, stays in the
settings, so neither the API nor the UI can show it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

NAME = re.compile(r"[A-Za-z0-9_.-]{1,80}")
MAX_CONNECTIONS = 100
# The URL schemes each target speaks.
SCHEMES: dict[str, tuple[str, ...]] = {
    "redis": ("redis", "rediss"),
    "amqp": ("amqp", "amqps"),
    "nats": ("nats", "tls"),
    "celery": ("amqp", "amqps", "redis", "rediss"),
}
ALL_SCHEMES = frozenset(scheme for schemes in SCHEMES.values() for scheme in schemes)


def checked(connections: Mapping[str, Any]) -> dict[str, str]:
    """CONNECTIONS as given, or ValueError naming the entry at fault."""
    if len(connections) > MAX_CONNECTIONS:
        raise ValueError(f"at most {MAX_CONNECTIONS} connections")
    for name, url in connections.items():
        if not NAME.fullmatch(name):
            raise ValueError(f"{name[:40]!r}: a name is 1-80 letters, digits, _ . -")
        if not isinstance(url, str) or scheme(url) not in ALL_SCHEMES:
            schemes = ", ".join(f"{s}://" for s in sorted(ALL_SCHEMES))
            raise ValueError(f"{name}: not a broker URL ({schemes}...)")
    return dict(connections)


def scheme(url: str) -> str:
    try:
        return urlsplit(url).scheme.lower()
    except ValueError:
        return ""


def refusal(connections: Mapping[str, str], target_type: str, name: str) -> str | None:
    """Why a target of this type cannot use the named connection; None when it can."""
    url = connections.get(name)
    if url is None:
        known = ", ".join(sorted(connections)[:20]) or "none are configured"
        return f"no connection named {name!r} in CONNECTIONS ({known})"
    allowed = SCHEMES.get(target_type, ())
    if scheme(url) not in allowed:
        takes = "/".join(allowed)
        return f"{name!r} is a {scheme(url)} connection; a {target_type} target takes {takes}"
    return None


def names_for(connections: Mapping[str, str], target_type: str) -> list[str]:
    """The connection names a target of this type may use, sorted (the UI's choices)."""
    allowed = SCHEMES.get(target_type, ())
    return sorted(name for name, url in connections.items() if scheme(url) in allowed)


def redacted(url: str) -> str:
    """The URL without its password, for log lines and errors."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


class UnknownConnection(Exception):
    """A stored target names a connection the settings no longer have."""
