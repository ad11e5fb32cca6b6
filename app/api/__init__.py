"""The JSON API blueprint."""

from flask import Blueprint

from app.auth import authenticate_api

bp = Blueprint("api", __name__)
bp.before_request(authenticate_api)

from app.api import audit, health, jobs, queues, runs  # noqa: E402,F401  (views register on import)
