"""Rate limits (Flask-Limiter), answered with 429 and Retry-After.

- A request with a valid API key, or from a signed-in UI session: RATE_LIMIT for that
  key or session.
- Any other request (no key where one is needed, a made-up or revoked key): the
  stricter RATE_LIMIT_ANONYMOUS per client address, so a flood of different bad tokens
  shares one bucket.
- Failed UI sign-ins: SIGN_IN_LIMIT per client address, and SIGN_IN_LIMIT_ALL from all
  clients together (whoever guesses at the admin password guesses at one account).

Not limited: requests without a key from this machine while no key exists (the open
loopback mode; failed sign-ins still count), static files, and the probes and OpenAPI
document. Those are told apart before Flask-Limiter looks up any limit (a request filter),
which costs less than exempting them from each. Counters live in
memory per web worker unless RATELIMIT_STORAGE_URI names a shared store
(redis://127.0.0.1:6379): then every worker and every web process counts against the
same limits.
"""

from __future__ import annotations

from flask import Response, current_app, g, request, session
from flask_limiter import Limiter, RouteLimit

from app import auth

SIGN_IN_ENDPOINT = "ui.login"  # the view under the sign-in limits (app/ui/login.py)


def client_address() -> str:
    """The client's address (the proxy's own unless TRUST_PROXY believes its headers)."""
    return request.remote_addr or "unknown"


def limit_key() -> str:
    key = auth.current_key()
    if key is not None:
        return f"key:{key.id}"
    if session.get("actor") and request.blueprint == "ui":
        return f"session:{session['actor']}"
    return f"address:{client_address()}"


def current_limit() -> str:
    known = limit_key().startswith(("key:", "session:"))
    return str(current_app.config["RATE_LIMIT" if known else "RATE_LIMIT_ANONYMOUS"])


def unlimited() -> bool:
    """Requests no limit applies to, told apart before any limit is looked up: files and
    probes (cheap, and a probe must not need the database); in the open loopback mode,
    all but sign-ins, which the sign-in limits count wherever they come from."""
    endpoint = request.endpoint
    if endpoint == "static" or endpoint in auth.OPEN_ENDPOINTS:
        return True
    if endpoint == SIGN_IN_ENDPOINT:
        return False
    open_loopback = auth.bearer_token() is None and auth.is_local_request()
    return open_loopback and not auth.auth_required()


def sign_in_failed(response: Response) -> bool:
    """Only failed sign-ins count against the sign-in limits (not successes, and not the
    attempts refused for the limit itself)."""
    return bool(g.get("sign_in_failed"))


def sign_in_limit(scope: str) -> RouteLimit:
    """A sign-in limit on failed attempts: per client address, or from everyone ("all")."""
    setting = "SIGN_IN_LIMIT_ALL" if scope == "all" else "SIGN_IN_LIMIT"
    return limiter.limit(
        lambda: str(current_app.config[setting]),
        key_func=lambda: "all" if scope == "all" else client_address(),
        scope=f"sign-in-{scope}",
        methods=["POST"],
        deduct_when=sign_in_failed,
    )


limiter = Limiter(key_func=limit_key, default_limits=[current_limit], headers_enabled=True)
limiter.request_filter(unlimited)
