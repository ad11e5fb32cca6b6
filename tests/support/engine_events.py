"""Listening to the app's database engine for the span of a block."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from flask import Flask
from sqlalchemy import event

from app.database import db


@contextmanager
def listening(app: Flask, name: str, listener: Callable[..., Any]) -> Iterator[None]:
    """`listener` gets the engine's `name` events (SQLAlchemy's) while the block runs."""
    with app.app_context():
        engine = db.engine
    event.listen(engine, name, listener)
    try:
        yield
    finally:
        event.remove(engine, name, listener)
