"""Entry point for gunicorn (`wsgi:app`) and the flask command (`--app wsgi`)."""

import os

from app import create_app
from app.config import ConfigError

# Under gunicorn (its arbiter sets SERVER_SOFTWARE before a worker loads this), the app only
# serves requests: it goes without the migration commands, whose alembic would cost every
# worker a good part of its start. The flask command, tests and scripts get them.
SERVED_BY_GUNICORN = os.environ.get("SERVER_SOFTWARE", "").startswith("gunicorn/")

try:
    app = create_app(migrations=not SERVED_BY_GUNICORN)
except ConfigError as exc:  # one line per setting at fault, not a traceback
    raise SystemExit(f"scheduler: a setting does not fit:\n{exc}") from None
