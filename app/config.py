"""Configuration: every setting typed and checked at start-up (pydantic-settings).

Where a value comes from, the later winning: the defaults below, instance/config.py, the
environment (the same names), then a test's overrides. A value that does not fit stops
start-up with one line per setting at fault, naming it.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from limits import parse_many
from pydantic import AfterValidator, BeforeValidator, Field, ValidationError
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from pydantic_settings import SettingsError as SourceError

from app.netguard import parse_networks
from app.retry import DEFAULT_RETRY
from app.schemas import RetryIn, Target
from app.targets import connections

# Flask's own, not meant to be changed by operators.
FLASK_DEFAULTS: dict[str, Any] = {
    "SESSION_COOKIE_SAMESITE": "Lax",
    "SESSION_COOKIE_HTTPONLY": True,
}
DATABASE_SCHEMES = ("sqlite", "postgres", "postgresql", "postgresql+psycopg")
STORAGE_SCHEMES = ("memory", "redis", "rediss", "redis+sentinel", "redis+cluster")


class ConfigError(Exception):
    """A setting that does not fit: the message has one line per setting, naming it."""


def _database_url(url: str | None) -> str | None:
    if url is not None and urlsplit(url).scheme not in DATABASE_SCHEMES:
        raise ValueError("use sqlite:///path/to/file.sqlite or postgresql://user@host/db")
    return url


def _rate_limit(text: str) -> str:
    try:
        parse_many(text)
    except ValueError:
        raise ValueError("a rate like '100 per second' or '5/minute'") from None
    return text


def _storage(uri: str) -> str:
    if urlsplit(uri).scheme not in STORAGE_SCHEMES:
        raise ValueError("memory:// or redis://host:port")
    return uri


def allow_networks(config: Mapping[str, Any]) -> list[str]:
    """WEBHOOK_ALLOW_NETWORKS as a list of CIDRs."""
    return _cidrs(config["WEBHOOK_ALLOW_NETWORKS"])


def _cidrs(text: str) -> list[str]:
    return [n.strip() for n in text.split(",") if n.strip()]


def _networks(text: str) -> str:
    parse_networks(_cidrs(text))  # ValueError: bad CIDR
    return text


def connections_of(config: Mapping[str, Any]) -> dict[str, str]:
    """CONNECTIONS: broker URLs by name (README: Connections)."""
    return dict(config.get("CONNECTIONS") or {})


def _none_if_empty(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


Positive = Annotated[float, Field(gt=0)]
Count = Annotated[int, Field(ge=1)]
RateLimit = Annotated[str, AfterValidator(_rate_limit)]


class Settings(BaseSettings):
    """Every setting an operator may give (README: Configuration), with its default."""

    model_config = SettingsConfigDict(case_sensitive=True, extra="ignore")

    DATABASE_URL: Annotated[str | None, AfterValidator(_database_url)] = None
    SECRET_KEY: str | None = None  # None: made once and kept in instance/secret_key
    DISPATCH_INTERVAL: Positive = 1.0  # seconds between dispatch passes
    DISPATCH_BATCH_SIZE: Count = 1000  # jobs claimed per transaction
    FIRE_WORKERS: Count = 2  # firing loops side by side on PostgreSQL (SQLite: always 1)
    DELIVERY_BATCH_SIZE: Count = 500  # runs claimed per delivery transaction
    DELIVERY_LEASE: Positive = 60.0  # seconds before a run left in flight by a crash is taken over
    DELIVERY_LEASE_MARGIN: Annotated[float, Field(ge=0)] = 30.0  # a lease: the timeout + this
    DELIVERY_MAX_IN_FLIGHT: Count = 1000  # delivery calls in flight at once, all targets
    DELIVERY_ORIGIN_IN_FLIGHT: Count = 250  # ... to one origin (maxInFlight may lower it)
    DELIVERY_MAX_HELD: Count = 10000  # runs held by the delivery loop at once
    DELIVERY_ORIGIN_BACKOFF: Positive = 60.0  # longest pause for an unreachable origin, s
    DELIVERY_PROCESS: bool = True  # delivery calls in a child process (false: a thread)
    MAX_CATCH_UP: Count = 100  # misfire "all": missed occurrences fired at most, per job
    MISFIRE_GRACE: Annotated[float, Field(ge=0)] = 60.0  # seconds late before "missed"
    DEFAULT_TARGET: Target | None = None  # None: the built-in queue "default"
    # For jobs saved without a deadLetter; empty: none.
    DEFAULT_DEAD_LETTER: Annotated[Target | None, BeforeValidator(_none_if_empty)] = None
    DEFAULT_RETRY: RetryIn = RetryIn(**DEFAULT_RETRY.as_spec())  # for fields a job leaves out
    MAX_PAYLOAD_BYTES: Count = 256 * 1024
    MAX_CONTENT_LENGTH: Count = 16 * 1024 * 1024  # whole request body; a batch of jobs fits
    MAX_BATCH_JOBS: Count = 1000
    PAGE_LIMIT_DEFAULT: Count = 100
    PAGE_LIMIT_MAX: Count = 1000
    # Broker URLs by name, JSON: {"rabbit": "amqp://...", "cache": "redis://..."}.
    CONNECTIONS: Annotated[dict[str, str], AfterValidator(connections.checked)] = Field(
        default_factory=dict
    )
    WEBHOOK_ALLOW_NETWORKS: Annotated[str, AfterValidator(_networks)] = ""
    QUEUE_MAX_WAIT: Annotated[float, Field(ge=0, le=3600)] = 20.0  # longest long-poll, s
    QUEUE_MAX_LONG_POLLS: Count = 4  # long polls waiting at once per web process
    RATE_LIMIT: RateLimit = "100 per second"  # per API key or signed-in UI session
    RATE_LIMIT_ANONYMOUS: RateLimit = "20 per second"  # per client address: no or a wrong key
    SIGN_IN_LIMIT: RateLimit = "5 per minute"  # failed UI sign-ins per client address
    SIGN_IN_LIMIT_ALL: RateLimit = "30 per minute"  # failed UI sign-ins from all clients
    RATELIMIT_STORAGE_URI: Annotated[str, AfterValidator(_storage)] = "memory://"
    RATELIMIT_KEY_PREFIX: str = ""
    REQUIRE_API_KEYS: bool = False  # set when listening beyond loopback
    # Seconds a "no key exists" answer is reused; the first `keys create` waits this long.
    KEYS_ABSENT_TTL: Annotated[float, Field(ge=0, le=10)] = 1.0
    RUN_RETENTION_DAYS: Positive = 30.0  # finished runs older than this are pruned
    QUEUE_RETENTION_DAYS: Positive = 14.0  # built-in queue messages older than this
    AUDIT_RETENTION_DAYS: Positive = 365.0  # audit entries older than this
    COMPLETED_JOB_RETENTION_DAYS: Positive = 30.0  # completed jobs, their runs finished
    ADMIN_PASSWORD: str | None = None  # lets people sign in to the UI without a key
    TRUST_PROXY: bool = False  # behind a TLS-terminating proxy that sets X-Forwarded-*
    LOG_FORMAT: Literal["text", "json"] = "text"  # json: one JSON object per log line


def settings(from_file: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The settings as Flask config: instance/config.py's values, then the environment's,
    then `overrides` (a test's), all checked. Raises ConfigError."""
    names = Settings.model_fields
    file_values = {k: v for k, v in from_file.items() if k in names}

    class Sourced(Settings):
        @classmethod
        def settings_customise_sources(
            cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:  # fmt: skip
            return init_settings, env_settings, InitSettingsSource(settings_cls, file_values)

    try:
        values = Sourced(**{k: v for k, v in overrides.items() if k in names})
    except ValidationError as exc:
        raise ConfigError("\n".join(_line(error) for error in exc.errors())) from None
    except SourceError as exc:  # a JSON-typed variable that is not JSON
        raise ConfigError(str(exc)) from None
    specs = {  # as the jobs' own specs are stored: only the fields given
        name: getattr(values, name).model_dump(exclude_none=True)
        for name in ("DEFAULT_TARGET", "DEFAULT_DEAD_LETTER", "DEFAULT_RETRY")
        if getattr(values, name) is not None
    }
    return values.model_dump() | specs


def _line(error: Any) -> str:
    name = str(error["loc"][0]) if error["loc"] else "settings"
    where = ".".join(str(part) for part in error["loc"][1:])
    message = error["msg"].removeprefix("Value error, ")
    return f"{name}{'.' + where if where else ''}: {message}"


def database_url(config: dict[str, Any], instance_path: str) -> str:
    url = config.get("DATABASE_URL") or f"sqlite:///{Path(instance_path) / 'scheduler.sqlite'}"
    # Accept the common short forms and use psycopg 3 for PostgreSQL.
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            url = "postgresql+psycopg://" + url[len(prefix) :]
    return str(url)


def instance_secret_key(instance_path: str) -> str:
    """A secret key kept in instance/, made on first start, never in the code."""
    path = Path(instance_path) / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()
