"""API keys and who is asking.

Loopback-only by default and open there: while no key exists, the application refuses
requests from other machines itself (gunicorn's start-up check is only the early, friendly
message). Once a key exists (or REQUIRE_API_KEYS is set) every API call needs
`Authorization: Bearer <key>`; read-only keys may only read.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import secrets
import time
import uuid
from datetime import datetime

from flask import current_app, g, request
from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError

from app.database import begin_write, db
from app.ids import new_id
from app.models import ApiKey
from app.problems import Problem
from app.schemas import checked_labels

SCOPES = ("read", "write")
KEY_PREFIX = "sk_"
OPEN_ENDPOINTS = frozenset({"api.healthz", "api.readyz", "api.openapi"})
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
UI_UNSCOPED_ENDPOINTS = frozenset({"ui.queues_page"})
KEYS_EXIST_TTL = 5.0  # seconds a "some key exists" answer is reused
# Built once and run through Core: asked on every request while no key exists, where the
# ORM's statement building and result handling cost about 175 µs of CPU more.
ANY_ACTIVE_KEY = select(ApiKey.id).where(ApiKey.revoked_at.is_(None)).limit(1)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(
    name: str, scope: str, now: datetime, labels: dict[str, str] | None = None
) -> tuple[ApiKey, str]:
    """Make a key (with `labels`, one that sees only the jobs carrying them); the returned
    secret is never stored and cannot be shown again."""
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {', '.join(SCOPES)}")
    checked_labels(labels or {})
    begin_write()  # the look-up and the insert in one writer's transaction
    if db.session.scalar(select(ApiKey.id).where(ApiKey.name == name)) is not None:
        raise ValueError(f"a key named {name!r} exists already (keys list shows them)")
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(
        id=new_id(),
        name=name,
        prefix=secret[:10],
        key_hash=hash_key(secret),
        scope=scope,
        labels=labels or None,
        created_at=now,
    )
    first = db.session.execute(ANY_ACTIVE_KEY).first() is None
    db.session.add(key)
    try:
        db.session.commit()
    except IntegrityError:  # the same name, created at the same moment elsewhere
        db.session.rollback()
        raise ValueError(f"a key named {name!r} exists already (keys list shows them)") from None
    if first:
        _wait_out_absent_answers()
    return key, secret


def _wait_out_absent_answers() -> None:
    """The first key guards the service by the time its maker has it: every process's
    reused "no key exists" answer (this one's is dropped) has run out by then."""
    current_app.extensions.get("auth_cache", {}).pop("no_at", None)
    time.sleep(current_app.config["KEYS_ABSENT_TTL"])


def list_keys() -> list[ApiKey]:
    return list(db.session.execute(select(ApiKey).order_by(ApiKey.created_at)).scalars())


def revoke_key(name_or_prefix: str, now: datetime) -> bool:
    begin_write()
    key = db.session.execute(
        select(ApiKey).where(
            or_(ApiKey.name == name_or_prefix, ApiKey.prefix == name_or_prefix),
            ApiKey.revoked_at.is_(None),
        )
    ).scalar_one_or_none()
    if key is None:
        return False
    key.revoked_at = now
    db.session.commit()
    return True


def current_key() -> ApiKey | None:
    """The active key this request's bearer token names (looked up once per request)."""
    if "api_key" not in g:
        token = bearer_token()
        g.api_key = find_key(token) if token else None
    key: ApiKey | None = g.api_key
    return key


def find_key(secret: str) -> ApiKey | None:
    return db.session.execute(
        select(ApiKey).where(ApiKey.key_hash == hash_key(secret), ApiKey.revoked_at.is_(None))
    ).scalar_one_or_none()


def active_key(key_id: str) -> ApiKey | None:
    """The key with this id, unless it was revoked (or never was)."""
    try:
        key = db.session.get(ApiKey, uuid.UUID(key_id))
    except ValueError:
        return None
    return key if key is not None and key.revoked_at is None else None


def active_keys_exist() -> bool:
    """Whether any key is active. A yes is reused for KEYS_EXIST_TTL, so revoking the last
    key opens the service again only after it, the safe way round. A no is reused for
    KEYS_ABSENT_TTL (without it, every request of the open loopback mode would ask the
    database), and making the first key waits that long before it hands the key over: the
    key guards the service, in every process, by the time anyone holds it."""
    cache = current_app.extensions.setdefault("auth_cache", {"yes_at": -1e9})
    now = time.monotonic()
    if now - cache["yes_at"] <= KEYS_EXIST_TTL:
        return True
    if now - cache.get("no_at", -1e9) < current_app.config["KEYS_ABSENT_TTL"]:
        return False
    if db.session.connection().execute(ANY_ACTIVE_KEY).first() is None:
        cache["no_at"] = now
        return False
    cache["yes_at"] = now
    return True


def auth_required() -> bool:
    """Asked by several before_request hooks: answered once per request."""
    if "auth_required" not in g:
        g.auth_required = bool(current_app.config.get("REQUIRE_API_KEYS")) or active_keys_exist()
    return bool(g.auth_required)


def bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def authenticate_api() -> None:
    """before_request of the JSON API: set g.actor, or refuse with 401/403."""
    if request.endpoint in OPEN_ENDPOINTS:
        return
    token = bearer_token()
    if token is None:
        if auth_required():
            raise Problem(
                401,
                "Unauthorized",
                "send an API key: Authorization: Bearer <key>",
                headers={"WWW-Authenticate": 'Bearer realm="scheduler"'},
            )
        g.actor = "anonymous"
        return
    key = current_key()
    if key is None:
        raise Problem(
            401,
            "Unauthorized",
            "unknown or revoked API key",
            headers={"WWW-Authenticate": 'Bearer realm="scheduler", error="invalid_token"'},
        )
    if key.scope == "read" and request.method not in READ_METHODS:
        raise Problem(403, "Forbidden", f"key {key.name!r} is read-only")
    g.actor = f"key:{key.name}"
    g.api_key_id = str(key.id)
    enter_scope(key)


# What a key scoped by labels may not reach at all: the built-in queues and the metrics
# hold every job's messages and figures. As for jobs outside its slice, they do not exist.
UNSCOPED_ENDPOINTS = frozenset({"api.receive", "api.ack", "api.extend", "api.stats", "api.metrics"})


def enter_scope(key: ApiKey) -> None:
    """The key's slice for this request (app.scope); a 404 for what no slice reaches."""
    g.scope_labels = dict(key.labels or {})
    if g.scope_labels and request.endpoint in UNSCOPED_ENDPOINTS | UI_UNSCOPED_ENDPOINTS:
        raise Problem(404, "Not found", f"{request.path} does not exist")


FORWARDING_HEADERS = ("Forwarded", "X-Forwarded-For", "X-Real-IP")
NO_KEYS_REFUSAL = (
    "no API key exists, so only this machine may use the service: create one with "
    "`flask --app wsgi keys create --name NAME` (then send Authorization: Bearer <key>), "
    "or call from 127.0.0.1"
)


def refuse_unguarded_remote() -> None:
    """before_request of the whole application, whatever server runs it: while no key
    exists (nothing is guarded), a request from another machine is refused. A request
    relayed by a proxy on this machine counts as from another machine unless TRUST_PROXY
    says whose address to believe."""
    if request.endpoint in OPEN_ENDPOINTS or request.endpoint == "static":
        return
    if is_local_request() or auth_required():
        return
    if request.blueprint == "ui" and current_app.config.get("ADMIN_PASSWORD"):
        return  # the UI asks for the admin password
    raise Problem(403, "Forbidden", NO_KEYS_REFUSAL)


def is_local_request() -> bool:
    """From this machine: a loopback peer, and (without TRUST_PROXY, under which ProxyFix
    already put the client's address in remote_addr) not relayed for someone else.
    Asked by several before_request hooks: answered once per request."""
    if "local_request" not in g:
        g.local_request = _is_local(request.remote_addr or "")  # none: a unix socket
    return bool(g.local_request)


def _is_local(address: str) -> bool:
    if not is_loopback(address):
        return False
    trusted = bool(current_app.config.get("TRUST_PROXY"))
    return trusted or not any(name in request.headers for name in FORWARDING_HEADERS)


@functools.lru_cache(maxsize=4096)  # a peer's address is parsed once, not on each request
def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
