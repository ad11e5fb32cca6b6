"""Signing in to the UI: with an API key or the configured admin password.

The UI asks for it whenever the API asks for keys (a key exists, or the service listens
beyond loopback) or when ADMIN_PASSWORD is set. The session cookie is HttpOnly,
SameSite=Lax, and Secure when the request came over HTTPS.
"""

from __future__ import annotations

import hmac
from urllib.parse import urlsplit

from flask import current_app, g, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response

from app import auth
from app.ui import bp

OPEN_ENDPOINTS = frozenset({"ui.login", "ui.logout"})


def login_required() -> bool:
    return bool(current_app.config.get("ADMIN_PASSWORD")) or auth.auth_required()


@bp.before_request
def authenticate_ui() -> Response | None:
    """Set g.actor for the audit log; send strangers to the sign-in page."""
    actor = session.get("actor")
    if actor:
        g.actor = actor
        if session.get("scope") == "read" and request.method not in auth.READ_METHODS:
            return Response("This key is read-only.", status=403, mimetype="text/plain")
        return None
    if request.endpoint in OPEN_ENDPOINTS or not login_required():
        g.actor = "ui:anonymous"
        return None
    return redirect(url_for("ui.login", next=request.full_path.rstrip("?")))


def safe_next(target: str | None) -> str:
    """Only paths inside the UI: never an open redirect to another site."""
    if not target or urlsplit(target).netloc or not target.startswith("/ui"):
        return url_for("ui.overview")
    return target


def check_secret(secret: str) -> tuple[str, str] | None:
    """(actor, scope) for a valid admin password or API key, else None."""
    password = current_app.config.get("ADMIN_PASSWORD") or ""
    if password and hmac.compare_digest(secret.encode(), password.encode()):
        return "ui:admin", "write"
    key = auth.find_key(secret)
    if key is not None:
        return f"ui:key:{key.name}", key.scope
    return None


@bp.route("/login", methods=["GET", "POST"])
def login() -> Response | str:
    error = None
    if request.method == "POST":
        found = check_secret(request.form.get("secret", ""))
        if found:
            session.clear()
            session["actor"], session["scope"] = found
            return redirect(safe_next(request.args.get("next")), 303)
        error = "That is neither an API key nor the admin password."
    return render_template("login.html", error=error, required=login_required())


@bp.post("/logout")
def logout() -> Response:
    session.clear()
    return redirect(url_for("ui.login"), 303)
