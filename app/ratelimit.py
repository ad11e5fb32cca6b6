"""Rate limits per API key (Flask-Limiter), answered with 429 and Retry-After.

Requests without a key are not limited: they are only accepted on loopback, from the
machine's own processes. Counters live in memory per web worker unless
RATELIMIT_STORAGE_URI points at a shared store (e.g. redis://127.0.0.1:6379).
"""

from __future__ import annotations

import hashlib

from flask import current_app
from flask_limiter import Limiter

from app.auth import bearer_token


def limit_key() -> str:
    token = bearer_token() or ""
    return "key:" + hashlib.sha256(token.encode()).hexdigest()[:24]


def current_limit() -> str:
    return str(current_app.config["RATE_LIMIT"])


limiter = Limiter(
    key_func=limit_key,
    default_limits=[current_limit],
    headers_enabled=True,
    storage_uri="memory://",
)


@limiter.request_filter
def without_key() -> bool:
    """Requests without a key skip the limiter altogether (cheaper than exempting them)."""
    return bearer_token() is None
