"""Signing in to the UI: with an API key or the configured admin password.

The UI asks for it whenever the API asks for keys (a key exists, or the service listens
beyond loopback) or when ADMIN_PASSWORD is set. The session cookie is HttpOnly,
SameSite=Lax, and Secure when the request came over HTTPS.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from urllib.parse import urlsplit

from flask import current_app, g, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response

from app import audit, auth, clock_of, scope
from app.database import begin_write, db
from app.problems import Problem
from app.ratelimit import client_address, sign_in_limit
from app.ui import bp

log = logging.getLogger(__name__)

OPEN_ENDPOINTS = frozenset({"ui.login", "ui.logout"})  # signing in and out: always allowed
WRITE_PAGES = frozenset({"ui.new_job", "ui.edit_job"})  # forms a read-only user cannot send
READ_ONLY = "Signed in with a read-only key: it can look, not change."


def login_required() -> bool:
    return bool(current_app.config.get("ADMIN_PASSWORD")) or auth.auth_required()


@bp.before_request
def authenticate_ui() -> Response | None:
    """Set g.actor for the audit log; send strangers to the sign-in page. A session is
    only as good as what opened it: it ends when its key is revoked or the admin password
    changes."""
    if session.get("actor") and not session_still_valid():
        session.clear()
    actor = session.get("actor")
    if request.endpoint in OPEN_ENDPOINTS:
        g.actor = actor or "ui:anonymous"
        return None
    if actor:
        g.actor = actor
        read_only = session.get("scope") == "read"
        if read_only and (
            request.method not in auth.READ_METHODS or request.endpoint in WRITE_PAGES
        ):
            raise Problem(403, "Forbidden", READ_ONLY)
        return None
    if not login_required():
        g.actor = "ui:anonymous"
        return None
    return redirect(url_for("ui.login", next=request.full_path.rstrip("?")))


@bp.app_context_processor
def access_context() -> dict[str, bool]:
    """can_write: whether to show write controls (hidden from a read-only key, which
    would be refused); sees_queues: not for a key scoped by labels (app.scope)."""
    return {"can_write": session.get("scope") != "read", "sees_queues": not scope.current()}


def safe_next(target: str | None) -> str:
    """Only paths inside the UI: never an open redirect to another site."""
    if not target or urlsplit(target).netloc or not target.startswith("/ui"):
        return url_for("ui.overview")
    return target


def check_secret(secret: str) -> dict[str, str] | None:
    """What a session signed in with this admin password or API key holds, else None."""
    password = current_app.config.get("ADMIN_PASSWORD") or ""
    if password and hmac.compare_digest(secret.encode(), password.encode()):
        return {"actor": "ui:admin", "scope": "write", "password": password_mark(password)}
    key = auth.find_key(secret)
    if key is not None:
        return {"actor": f"ui:key:{key.name}", "scope": key.scope, "key_id": str(key.id)}
    return None


def record_failed_sign_in() -> None:
    """In the log and the audit log: who tried (the address), never what was typed."""
    g.sign_in_failed = True  # counted against the sign-in limits
    address = client_address()
    log.warning("failed UI sign-in", extra={"action": "sign-in", "client": address})
    begin_write()  # the request has read (its key look-up): a write starts afresh
    audit.record("sign-in failed", clock_of(current_app).now(), detail=f"from {address}")
    db.session.commit()


def session_still_valid() -> bool:
    """The key that opened the session is not revoked, or the admin password is the one
    it was opened with (a session from before these checks is not valid either)."""
    if "key_id" in session:
        key = auth.active_key(session["key_id"])
        if key is not None:
            auth.enter_scope(key)  # the key's slice, as it is now
        return key is not None
    password = current_app.config.get("ADMIN_PASSWORD") or ""
    mark = str(session.get("password") or "")
    return bool(password and mark) and hmac.compare_digest(mark, password_mark(password))


def password_mark(password: str) -> str:
    """Tells the current password from an old one without keeping it in the cookie."""
    key = str(current_app.config["SECRET_KEY"]).encode()
    return hmac.new(key, b"admin-password:" + password.encode(), hashlib.sha256).hexdigest()


@bp.route("/login", methods=["GET", "POST"])
@sign_in_limit("client")
@sign_in_limit("all")
def login() -> Response | str:
    error = None
    password_set = bool(current_app.config.get("ADMIN_PASSWORD"))
    if request.method == "POST":
        found = check_secret(request.form.get("secret", ""))
        if found:
            session.clear()
            session.update(found)
            return redirect(safe_next(request.args.get("next")), 303)
        error = (
            "That is neither an API key nor the admin password."
            if password_set
            else "That is not an active API key."
        )
        record_failed_sign_in()
    return render_template(
        "login.html", error=error, required=login_required(), signing_in=True,
        password_set=password_set,
    )  # fmt: skip


@bp.post("/logout")
def logout() -> Response:
    session.clear()
    return redirect(url_for("ui.login"), 303)
