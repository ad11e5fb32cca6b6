"""Entry point for gunicorn (`wsgi:app`) and the flask command (`--app wsgi`)."""

from app import create_app

app = create_app()
