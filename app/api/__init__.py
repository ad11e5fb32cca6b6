"""The JSON API blueprint."""

from flask import Blueprint

bp = Blueprint("api", __name__)

from app.api import health, jobs, queues, runs  # noqa: E402,F401  (views register on import)
