"""Settings are typed and checked when the app starts: a value that does not fit stops
start-up with one line naming the setting; every setting can come from the environment."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

import pytest
from flask import Flask

from app import create_app
from app.config import ConfigError, Settings, settings
from tests.support.processes import BIN, ROOT, process_env


@pytest.mark.parametrize(
    ("name", "value", "line"),
    [
        ("TRUST_PROXY", "maybe", "TRUST_PROXY: Input should be a valid boolean"),
        ("DEFAULT_TARGET", '{"type": "sqs"}', "DEFAULT_TARGET.sqs.queueUrl: Field required"),
        ("DEFAULT_TARGET", "queue", "DEFAULT_TARGET: "),
        ("DATABASE_URL", "mysql://db/scheduler", "DATABASE_URL: use sqlite:///"),
        ("RATE_LIMIT", "lots", "RATE_LIMIT: a rate like '100 per second'"),
        ("RATELIMIT_STORAGE_URI", "memcached://x", "RATELIMIT_STORAGE_URI: memory:// or"),
        ("WEBHOOK_ALLOW_NETWORKS", "10.0.0.0/33", "WEBHOOK_ALLOW_NETWORKS: '10.0.0.0/33'"),
        ("DELIVERY_MAX_IN_FLIGHT", "0", "DELIVERY_MAX_IN_FLIGHT: Input should be greater"),
        ("DEFAULT_RETRY", '{"attempts": 0}', "DEFAULT_RETRY.attempts: Input should be greater"),
    ],
)
def test_a_setting_that_does_not_fit_names_itself(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, line: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as raised:
        create_app({"SECRET_KEY": "test"})
    assert str(raised.value).startswith(line), str(raised.value)


def test_booleans_and_every_setting_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, make_app: Callable[..., Flask]
) -> None:
    monkeypatch.setenv("TRUST_PROXY", "True")  # the usual spellings of true are true
    monkeypatch.setenv("AUDIT_RETENTION_DAYS", "7")
    monkeypatch.setenv("DEFAULT_RETRY", '{"attempts": 3}')
    monkeypatch.setenv("DEFAULT_TARGET", '{"type": "queue", "name": "jobs"}')
    app = create_app({"SECRET_KEY": "test"})
    assert app.config["TRUST_PROXY"] is True
    assert app.config["AUDIT_RETENTION_DAYS"] == 7.0
    assert app.config["DEFAULT_RETRY"] == {"attempts": 3}  # the rest: the built-in defaults
    assert app.config["DEFAULT_TARGET"] == {"type": "queue", "name": "jobs"}


def test_the_readme_lists_every_setting() -> None:
    readme = (ROOT / "README.md").read_text()
    table = readme.split("## Configuration", 1)[1].split("## Running in production", 1)[0]
    missing = [name for name in Settings.model_fields if f"`{name}`" not in table]
    assert missing == []


def test_the_environment_wins_over_the_instance_file_and_a_test_over_both(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from_file = {"RATE_LIMIT": "1 per second", "MISFIRE_GRACE": 5, "SIGN_IN_LIMIT": "3/minute"}
    monkeypatch.setenv("RATE_LIMIT", "2 per second")
    values = settings(from_file, {"MISFIRE_GRACE": 9, "TESTING": True})
    assert values["RATE_LIMIT"] == "2 per second"  # the environment over the file
    assert values["MISFIRE_GRACE"] == 9.0  # a test's override over both
    assert values["SIGN_IN_LIMIT"] == "3/minute"  # the file over the default
    assert "TESTING" not in values  # not a setting: left to Flask


def test_the_flask_command_stops_with_one_line_per_setting(database_url: str) -> None:
    env = process_env(database_url, TRUST_PROXY="maybe", DATABASE_URL="mysql://db/x")
    done = subprocess.run(
        [str(BIN / "flask"), "--app", "wsgi", "keys", "list"], cwd=ROOT, env=env,
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "scheduler: a setting does not fit:",
        "DATABASE_URL: use sqlite:///path/to/file.sqlite or postgresql://user@host/db",
        "TRUST_PROXY: Input should be a valid boolean, unable to interpret input",
    ]
