"""Entry point for gunicorn (`wsgi:app`) and the flask command (`--app wsgi`)."""

from app import create_app
from app.config import ConfigError

try:
    app = create_app()
except ConfigError as exc:  # one line per setting at fault, not a traceback
    raise SystemExit(f"scheduler: a setting does not fit:\n{exc}") from None
