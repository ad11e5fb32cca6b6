"""Configuration: defaults, then instance/config.py, then the environment, then test overrides."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

from app.retry import DEFAULT_RETRY

DEFAULTS: dict[str, Any] = {
    "DISPATCH_INTERVAL": 1.0,  # seconds between dispatch passes
    "DISPATCH_BATCH_SIZE": 1000,  # jobs claimed per transaction
    "DELIVERY_BATCH_SIZE": 500,  # runs claimed per delivery transaction
    "DELIVERY_LEASE": 60.0,  # seconds before a run left in flight by a crash is taken over
    "DELIVERY_LEASE_MARGIN": 30.0,  # a run's lease is at least its call's timeout plus this
    "DELIVERY_MAX_IN_FLIGHT": 1000,  # delivery calls in flight at once, all targets
    "DELIVERY_ORIGIN_IN_FLIGHT": 250,  # ... to one origin (a target's maxInFlight may lower it)
    "DELIVERY_MAX_HELD": 10000,  # runs held by the delivery loop at once
    "DELIVERY_ORIGIN_BACKOFF": 60.0,  # longest pause for an origin that cannot be reached, s
    "MAX_CATCH_UP": 100,  # misfire "all": missed occurrences fired at most, per job
    "MISFIRE_GRACE": 60.0,  # seconds late before an occurrence counts as missed (skip policy)
    "DEFAULT_TARGET": None,  # a target spec; None means the built-in queue "default"
    "DEFAULT_RETRY": DEFAULT_RETRY.as_spec(),
    "MAX_PAYLOAD_BYTES": 256 * 1024,
    "MAX_CONTENT_LENGTH": 16 * 1024 * 1024,  # whole request body; a batch of jobs fits
    "MAX_BATCH_JOBS": 1000,
    "PAGE_LIMIT_DEFAULT": 100,
    "PAGE_LIMIT_MAX": 1000,
    "WEBHOOK_ALLOW_NETWORKS": "",
    "QUEUE_MAX_WAIT": 20.0,  # longest long-poll of the built-in queue, seconds
    "QUEUE_MAX_LONG_POLLS": 4,  # long polls waiting at once per web process; more answer at once
    "RATE_LIMIT": "100 per second",  # per API key or signed-in UI session
    "RATE_LIMIT_ANONYMOUS": "20 per second",  # per client address: no key, or a wrong one
    "SIGN_IN_LIMIT": "5 per minute",  # failed UI sign-ins per client address
    "SIGN_IN_LIMIT_ALL": "30 per minute",  # failed UI sign-ins from all clients together
    "RATELIMIT_STORAGE_URI": "memory://",  # redis://127.0.0.1:6379 shares them across workers
    "REQUIRE_API_KEYS": False,  # set when listening beyond loopback
    "RUN_RETENTION_DAYS": 30.0,  # finished runs older than this are pruned
    "QUEUE_RETENTION_DAYS": 14.0,  # built-in queue messages older than this are pruned
    "AUDIT_RETENTION_DAYS": 365.0,
    "ADMIN_PASSWORD": None,  # lets people sign in to the UI without a key
    "TRUST_PROXY": False,  # behind a TLS-terminating proxy that sets X-Forwarded-*
    "SESSION_COOKIE_SAMESITE": "Lax",
    "SESSION_COOKIE_HTTPONLY": True,
}

# Environment variables read as they are (strings), and those parsed as JSON or numbers.
ENV_STRINGS = (
    "DATABASE_URL",
    "SECRET_KEY",
    "WEBHOOK_ALLOW_NETWORKS",
    "RATE_LIMIT",
    "RATE_LIMIT_ANONYMOUS",
    "SIGN_IN_LIMIT",
    "SIGN_IN_LIMIT_ALL",
    "RATELIMIT_STORAGE_URI",
    "RATELIMIT_KEY_PREFIX",
    "ADMIN_PASSWORD",
)
ENV_JSON = (
    "DEFAULT_TARGET",
    "DISPATCH_INTERVAL",
    "DISPATCH_BATCH_SIZE",
    "DELIVERY_BATCH_SIZE",
    "DELIVERY_LEASE",
    "DELIVERY_LEASE_MARGIN",
    "DELIVERY_MAX_IN_FLIGHT",
    "DELIVERY_ORIGIN_IN_FLIGHT",
    "DELIVERY_MAX_HELD",
    "DELIVERY_ORIGIN_BACKOFF",
    "MAX_CATCH_UP",
    "DEFAULT_RETRY",
    "MAX_PAYLOAD_BYTES",
    "QUEUE_MAX_WAIT",
    "QUEUE_MAX_LONG_POLLS",
    "REQUIRE_API_KEYS",
    "RUN_RETENTION_DAYS",
    "QUEUE_RETENTION_DAYS",
    "MISFIRE_GRACE",
    "TRUST_PROXY",
)


def load_environment(config: dict[str, Any]) -> None:
    for name in ENV_STRINGS:
        if os.environ.get(name):
            config[name] = os.environ[name]
    for name in ENV_JSON:
        if os.environ.get(name):
            config[name] = json.loads(os.environ[name])


def database_url(config: dict[str, Any], instance_path: str) -> str:
    url = config.get("DATABASE_URL") or f"sqlite:///{Path(instance_path) / 'scheduler.sqlite'}"
    # Accept the common short forms and use psycopg 3 for PostgreSQL.
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            url = "postgresql+psycopg://" + url[len(prefix) :]
    return str(url)


def instance_secret_key(instance_path: str) -> str:
    """A secret key kept in instance/, made on first start, never in the code."""
    path = Path(instance_path) / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()
