"""The `flask` command line: the scheduler process and operator commands."""

from __future__ import annotations

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from app import auth, clock_of

scheduler_cli = AppGroup("scheduler", help="The dispatcher process.")


@scheduler_cli.command("run")
@click.option("--no-migrate", is_flag=True, help="Do not apply migrations first.")
def run_command(no_migrate: bool) -> None:
    """Fire due jobs and deliver their runs until stopped (SIGTERM finishes the batch)."""
    from flask_migrate import upgrade

    from app.scheduler.process import configure_logging, run_scheduler

    if not no_migrate:
        upgrade()
    configure_logging(str(current_app.config["LOG_FORMAT"]))
    run_scheduler(current_app._get_current_object())  # type: ignore[attr-defined]


keys_cli = AppGroup("keys", help="API keys.")


@keys_cli.command("create")
@click.option("--name", required=True, help="Who or what the key is for.")
@click.option("--scope", type=click.Choice(auth.SCOPES), default="write", show_default=True)
@click.option(
    "--labels",
    "labels",
    multiple=True,
    metavar="KEY=VALUE",
    help="Only jobs carrying these labels (repeat, or comma-separated): a slice of the jobs.",
)
def create_key_command(name: str, scope: str, labels: tuple[str, ...]) -> None:
    """Create an API key and print it (shown once; only its hash is kept)."""
    try:
        scoped = label_options(labels)
        key, secret = auth.create_key(name, scope, clock_of(current_app).now(), scoped)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(secret)
    click.echo(
        f"created key {key.name!r} ({key.scope}); store it now, it is not shown again", err=True
    )


def label_options(options: tuple[str, ...]) -> dict[str, str]:
    """`team=billing` (repeated or comma-separated) as labels."""
    labels: dict[str, str] = {}
    for part in (p.strip() for option in options for p in option.split(",")):
        key, equals, value = part.partition("=")
        if not equals:
            raise ValueError(f"{part!r}: write labels as key=value")
        labels[key.strip()] = value.strip()
    return labels


@keys_cli.command("list")
def list_keys_command() -> None:
    """List keys (never their secrets)."""
    for key in auth.list_keys():
        state = "revoked" if key.revoked_at else "active"
        labels = ",".join(f"{k}={v}" for k, v in sorted((key.labels or {}).items())) or "-"
        created = f"{key.created_at:%Y-%m-%d}"
        click.echo(f"{key.name}\t{key.prefix}…\t{key.scope}\t{labels}\t{state}\t{created}")


@keys_cli.command("revoke")
@click.argument("name_or_prefix")
def revoke_key_command(name_or_prefix: str) -> None:
    """Revoke a key by its name or prefix."""
    if not auth.revoke_key(name_or_prefix, clock_of(current_app).now()):
        raise click.ClickException(f"no active key {name_or_prefix!r}")
    click.echo(f"revoked {name_or_prefix}")


def register(app: Flask) -> None:
    app.cli.add_command(scheduler_cli)
    app.cli.add_command(keys_cli)
