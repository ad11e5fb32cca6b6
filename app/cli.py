"""The `flask` command line: the scheduler process and operator commands."""

from __future__ import annotations

import logging

import click
from flask import Flask, current_app
from flask.cli import AppGroup
from flask_migrate import upgrade

scheduler_cli = AppGroup("scheduler", help="The dispatcher process.")


@scheduler_cli.command("run")
@click.option("--no-migrate", is_flag=True, help="Do not apply migrations first.")
def run_command(no_migrate: bool) -> None:
    """Fire due jobs and deliver their runs until stopped (SIGTERM finishes the batch)."""
    from app.scheduler import run_scheduler

    if not no_migrate:
        upgrade()
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s", force=True
    )
    # A pass drains all due work before it returns, so APScheduler skipping a tick while a
    # pass is still busy is expected, not worth a warning every second under load.
    logging.getLogger("apscheduler").setLevel(logging.ERROR)
    run_scheduler(current_app._get_current_object())  # type: ignore[attr-defined]


def register(app: Flask) -> None:
    app.cli.add_command(scheduler_cli)
