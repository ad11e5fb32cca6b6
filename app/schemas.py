"""The API's request and answer shapes. The same models validate requests and generate
/openapi.json, so the document cannot drift from what the code accepts."""

from __future__ import annotations

import base64
import binascii
import functools
import re
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin
from urllib.parse import urlsplit
from uuid import UUID

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from yarl import URL

from app.errors import FieldError, Invalid

NAME_PATTERN = r"^[A-Za-z0-9_.-]{1,80}$"
_PORT = r"(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3})"
# A webhook URL, as the document states it and the code checks it (WebhookTarget.http_url):
# http(s), a host name (underscores allowed: container names have them) or an IP literal
# (the address guard decides on those), no user:password@, a port 1-65535 (leading zeros
# allowed), then a path, query or fragment without spaces or control characters (written
# as the characters themselves, not escapes: the document's readers take those best).
_H16 = "[0-9A-Fa-f]{1,4}"
_OCTET = "(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_IPV4 = rf"{_OCTET}(\.{_OCTET}){{3}}"
_IPV6 = "|".join(  # RFC 4291's spellings, without a zone
    [
        f"({_H16}:){{7}}{_H16}",
        f"({_H16}:){{1,7}}:",
        f"({_H16}:){{1,6}}:{_H16}",
        *(f"({_H16}:){{1,{6 - n}}}(:{_H16}){{1,{n + 1}}}" for n in range(1, 5)),
        f"{_H16}:(:{_H16}){{1,6}}",
        f":((:{_H16}){{1,7}}|:)",
        # with an IPv4 address at the end: mapped (::ffff:a.b.c.d) and the like
        f"({_H16}:){{6}}{_IPV4}",
        f"::(ffff(:0{{1,4}})?:)?{_IPV4}",
        f"({_H16}:){{1,4}}:{_IPV4}",
    ]
)
_HOST = rf"([A-Za-z0-9_][A-Za-z0-9_.-]*|\[({_IPV6})\])"
_URL_REST = "[^\x00-\x20\x7f]*"
WEBHOOK_URL_PATTERN = rf"^https?://{_HOST}(:0*{_PORT})?([/?#]{_URL_REST})?$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def whole_numbers(cls, data: Any) -> Any:
        """JSON Schema's integer includes 1.0: an integer field takes a float with no
        fraction as that integer (and, being strict, still no "1" and no true)."""
        if not isinstance(data, dict):
            return data
        return {
            key: int(value)
            if isinstance(value, float) and value.is_integer() and key in _integer_fields(cls)
            else value
            for key, value in data.items()
        }

    @field_validator("*", mode="after")
    @classmethod
    def storable_text(cls, value: Any) -> Any:
        """Refuse text no database stores: NUL characters and lone UTF-16 surrogates
        (both can arrive through JSON's \\u escapes)."""
        if not _storable(value):
            raise ValueError("must not contain NUL characters or unpaired surrogates")
        return value


@functools.cache
def _integer_fields(model: type[BaseModel]) -> frozenset[str]:
    return frozenset(
        name for name, field in model.model_fields.items() if _integer_field(field.annotation)
    )


def _integer_field(annotation: Any) -> bool:
    """int, an Annotated int, or either or None."""
    if get_origin(annotation) is Annotated:
        return _integer_field(get_args(annotation)[0])
    if get_origin(annotation) in (Union, UnionType):
        members = [a for a in get_args(annotation) if a is not type(None)]
        return len(members) == 1 and _integer_field(members[0])
    return annotation is int


def _storable(value: Any) -> bool:
    if isinstance(value, str):
        if "\x00" in value:
            return False
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(value, list | tuple):
        return all(_storable(item) for item in value)
    if isinstance(value, dict):
        return all(_storable(k) and _storable(v) for k, v in value.items())
    return True  # numbers, None, nested models (checked by their own validators)


class RetryIn(Strict):
    """Missing fields take the configured defaults (DEFAULT_RETRY)."""

    attempts: Annotated[StrictInt | None, Field(ge=1, le=100, description="Attempts in all")] = None
    backoff: Annotated[StrictFloat | None, Field(ge=0.1, le=3600, description="First delay, s")] = (
        None
    )
    maxBackoff: Annotated[StrictFloat | None, Field(ge=1, le=86400, description="Longest, s")] = (
        None
    )
    maxAge: Annotated[
        StrictFloat | None,
        Field(ge=60, le=86400, description="Seconds after its fire a run is no longer retried"),
    ] = None


# Calls in flight to this target's origin at most (DELIVERY_ORIGIN_IN_FLIGHT when absent).
MaxInFlight = Annotated[StrictInt | None, Field(ge=1, le=10_000)]


class QueueTarget(Strict):
    type: Literal["queue"]
    name: Annotated[str, Field(pattern=NAME_PATTERN)] = "default"


# What SQS takes as a MessageGroupId: alphanumerics and ASCII punctuation, 1-128 of them.
MESSAGE_GROUP_PATTERN = r"^[!-~]{1,128}$"


class SqsTarget(Strict):
    # The document states it too: a message group only with a FIFO queue's URL.
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "if": {
                "properties": {"messageGroupId": {"type": "string"}},
                "required": ["messageGroupId"],
            },
            "then": {"properties": {"queueUrl": {"pattern": r"\.fifo$"}}},
        },
    )

    type: Literal["sqs"]
    # No NUL (Strict.storable_text): a pattern of its own, so the document's says it too.
    queueUrl: Annotated[str, Field(min_length=1, max_length=1024, pattern="^https?://[^\x00]*$")]
    region: Annotated[str | None, Field(max_length=64)] = None
    messageGroupId: Annotated[
        StrictStr | None,
        Field(description="FIFO queues: the message group (default: the job id)"),
    ] = Field(None, json_schema_extra={"pattern": MESSAGE_GROUP_PATTERN})
    maxInFlight: MaxInFlight = None

    @field_validator("messageGroupId")
    @classmethod
    def message_group(cls, group: str | None, info: ValidationInfo) -> str | None:
        if group is None:
            return group
        if not re.fullmatch(MESSAGE_GROUP_PATTERN, group):
            raise ValueError("must be 1-128 letters, digits or ASCII punctuation")
        if not str(info.data.get("queueUrl", "")).endswith(".fifo"):
            raise ValueError("only a FIFO queue (a URL ending in .fifo) takes a message group")
        return group


HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # an RFC 9110 token
# A header value: Latin-1 without CR, LF or NUL (the characters themselves, not escapes:
# the document's readers take those best).
HEADER_VALUE = "^[\x01-\x09\x0b\x0c\x0e-\xff]*$"
SECRET_PREFIX = "whsec_"
MAX_SECRETS = 10  # a webhook signs with each during a rotation
_B64 = r"([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{4}|[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)"
# Patterns only the document states: the validators give the clearer messages.
Secret = Annotated[
    StrictStr,
    Field(max_length=200, json_schema_extra={"pattern": rf"^({SECRET_PREFIX})?{_B64}$"}),
]


def secret_key(secret: str) -> bytes:
    """The signing key of a Standard Webhooks secret (whsec_ + base64); ValueError if it is
    not one."""
    try:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if not key:
        raise ValueError("must be whsec_ followed by base64")
    return key


def check_header(name: str, value: str) -> None:
    """ValueError unless a webhook can send this header."""
    if not HEADER_NAME.fullmatch(name):
        raise ValueError(f"{name[:40]!r} is not a header name (an RFC 9110 token)")
    if any(c in value for c in "\r\n\0"):
        raise ValueError(f"{name}: a value may not contain CR, LF or NUL")
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        raise ValueError(f"{name}: a value must be Latin-1 text") from None


class WebhookTarget(Strict):
    """Checked when a job is saved and again, from what was stored, when a run is delivered:
    a target that passes here is one the webhook target can send."""

    type: Literal["webhook"]
    url: Annotated[str, Field(min_length=1, max_length=2048)] = Field(
        json_schema_extra={"pattern": WEBHOOK_URL_PATTERN}
    )
    method: Literal["POST", "PUT", "PATCH", "GET", "DELETE"] = "POST"
    headers: Annotated[
        dict[
            str, Annotated[str, Field(max_length=4096, json_schema_extra={"pattern": HEADER_VALUE})]
        ],
        Field(
            max_length=50,
            json_schema_extra={"propertyNames": {"pattern": f"^{HEADER_NAME.pattern}$"}},
        ),
    ] = Field(default_factory=dict)
    timeout: Annotated[StrictFloat, Field(gt=0, le=120)] = 10.0
    secret: Secret | Annotated[list[Secret], Field(min_length=1, max_length=MAX_SECRETS)] | None = (
        None
    )
    maxInFlight: MaxInFlight = None

    @field_validator("url")
    @classmethod
    def http_url(cls, url: str) -> str:
        if not re.fullmatch(WEBHOOK_URL_PATTERN, url):
            raise ValueError("must be an http(s) URL with a host and a valid port")
        try:
            parsed = URL(url)
            port = parsed.explicit_port
        except ValueError:  # a port out of range, a bad IPv6 literal...
            raise ValueError("must be an http(s) URL with a host and a valid port") from None
        if parsed.scheme not in ("http", "https") or not parsed.raw_host or port == 0:
            raise ValueError("must be an http(s) URL with a host and a valid port")
        if not urlsplit(url).hostname:
            raise ValueError("must be an http(s) URL with a host and a valid port")
        return url

    @field_validator("headers")
    @classmethod
    def sendable_headers(cls, headers: dict[str, str]) -> dict[str, str]:
        for name, value in headers.items():
            check_header(name, value)
        return headers

    @field_validator("secret")
    @classmethod
    def signing_secret(cls, secret: str | list[str] | None) -> str | list[str] | None:
        for one in [secret] if isinstance(secret, str) else secret or []:
            secret_key(one)
        return secret


# Broker targets name a connection (CONNECTIONS) instead of holding its URL and password.
ConnectionName = Annotated[
    StrictStr,
    Field(
        pattern=NAME_PATTERN,
        description="A connection name configured in CONNECTIONS, of a kind this target "
        "speaks (else 422 naming target.connection)",
    ),
]
# Keys, queue and exchange names: printable ASCII, no spaces.
BROKER_NAME = r"^[!-~]{1,255}$"
AMQP_EXCHANGE = r"^[A-Za-z0-9_.:-]{0,255}$"  # "" is the default exchange
NATS_SUBJECT = r"^[A-Za-z0-9_$:=@/-]{1,64}(\.[A-Za-z0-9_$:=@/-]{1,64}){0,15}$"  # no wildcards
CELERY_TASK = r"^[A-Za-z_][A-Za-z0-9_.:-]{0,199}$"
AWS_REGION = r"^[a-z]{2}(-[a-z]+)+-[0-9]{1,2}$"


def _exactly_one(*names: str) -> Any:
    """A JSON schema hook: exactly one of these fields, none of them null (left out, the
    field is absent; given, it is a value)."""

    def hook(schema: dict[str, Any]) -> None:
        for name in names:
            schema["properties"][name] = next(
                option
                for option in schema["properties"][name]["anyOf"]
                if option != {"type": "null"}
            ) | {"default": None}
        schema["oneOf"] = [{"required": [name]} for name in names]

    return hook


def _given(value: Any) -> Any:
    if value is None:
        raise ValueError("give a value, or leave the field out")
    return value


def _redis_rules(schema: dict[str, Any]) -> None:
    _exactly_one("stream", "list")(schema)
    schema["dependentRequired"] = {"maxLen": ["stream"]}


class RedisTarget(Strict):
    """A stream (XADD, fields payload, runId, jobId, scheduledFor) or a list (LPUSH of
    that as a JSON object): exactly one of stream and list."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_redis_rules)

    type: Literal["redis"]
    connection: ConnectionName
    stream: Annotated[StrictStr | None, Field(pattern=BROKER_NAME)] = None
    list: Annotated[StrictStr | None, Field(pattern=BROKER_NAME)] = None
    maxLen: Annotated[
        StrictInt | None,
        Field(ge=1, le=1_000_000_000, description="stream only: XADD MAXLEN ~ this"),
    ] = None
    maxInFlight: MaxInFlight = None

    _given = field_validator("stream", "list", mode="before")(_given)

    @model_validator(mode="after")
    def one_key(self) -> RedisTarget:
        if (self.stream is None) == (self.list is None):
            raise ValueError("give exactly one of stream and list")
        if self.maxLen is not None and self.stream is None:
            raise ValueError("maxLen caps a stream: give it with stream")
        return self


class AmqpTarget(Strict):
    """RabbitMQ: a persistent message, publisher confirms, message id and runId header the
    run id; a message returned unroutable fails (and is retried)."""

    type: Literal["amqp"]
    connection: ConnectionName
    exchange: Annotated[
        StrictStr, Field(pattern=AMQP_EXCHANGE, description='"" is the default exchange')
    ] = ""
    routingKey: Annotated[StrictStr, Field(pattern=r"^[ -~]{0,255}$")]
    maxInFlight: MaxInFlight = None


class NatsTarget(Strict):
    """JetStream publish, Nats-Msg-Id = run id; the stream's ack is the success."""

    type: Literal["nats"]
    connection: ConnectionName
    subject: Annotated[StrictStr, Field(pattern=NATS_SUBJECT, max_length=255)]
    maxInFlight: MaxInFlight = None


class CeleryTarget(Strict):
    """A Celery task (message protocol v2, task id = run id); the payload is its
    arguments as JSON: {"args": [...], "kwargs": {...}} or an array of args."""

    type: Literal["celery"]
    connection: ConnectionName
    task: Annotated[StrictStr, Field(pattern=CELERY_TASK, description="The task's name")]
    queue: Annotated[
        StrictStr | None, Field(pattern=BROKER_NAME, description='Default "celery"')
    ] = None
    maxInFlight: MaxInFlight = None


class SnsTarget(Strict):
    """PublishBatch in tens; attributes runId, jobId, scheduledFor; a FIFO topic gets the
    job as its group and the run as its de-duplication id."""

    type: Literal["sns"]
    topicArn: Annotated[
        StrictStr,
        Field(
            pattern=r"^arn:aws[a-z-]{0,20}:sns:[a-z0-9-]{1,30}:[0-9]{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?$"
        ),
    ]
    region: Annotated[StrictStr | None, Field(pattern=AWS_REGION, max_length=64)] = None
    maxInFlight: MaxInFlight = None


class EventBridgeTarget(Strict):
    """PutEvents in tens; the payload (JSON) is the event's detail."""

    type: Literal["eventbridge"]
    eventBus: Annotated[
        StrictStr, Field(pattern=r"^[A-Za-z0-9/._:-]{1,1600}$", description="Name or ARN")
    ]
    source: Annotated[StrictStr, Field(pattern=r"^[A-Za-z0-9._/-]{1,256}$")]
    detailType: Annotated[StrictStr, Field(pattern=r"^[ -~]{1,128}$")]
    region: Annotated[StrictStr | None, Field(pattern=AWS_REGION, max_length=64)] = None
    maxInFlight: MaxInFlight = None


BROKER_TARGETS = ("redis", "amqp", "nats", "celery")  # those naming a connection
TARGET_TYPES = ("queue", "sqs", "webhook", "sns", "eventbridge", *BROKER_TARGETS)
Target = Annotated[
    QueueTarget | SqsTarget | WebhookTarget | RedisTarget | AmqpTarget | NatsTarget
    | CeleryTarget | SnsTarget | EventBridgeTarget,
    Field(discriminator="type"),
]  # fmt: skip

Recurring = Literal["none", "daily", "weekly", "interval", "cron", "rrule"]
DateText = Annotated[StrictStr, Field(pattern=r"^\d{4}-\d{2}-\d{2}$", description="YYYY-MM-DD")]


class ExcludeIn(Strict):
    """Days a recurring job does not fire on, on its zone's wall clock (any of the three)."""

    dates: list[DateText] | None = Field(None, max_length=1000)
    ranges: list[tuple[DateText, DateText]] | None = Field(
        None, max_length=100, description="[from, to], both days included"
    )
    holidays: Annotated[
        StrictStr | None,
        Field(
            pattern=r"^[A-Z]{2}(-[A-Z0-9]{1,10})?$",
            description="Public holidays of a country, maybe a region: US, DE-BY",
        ),
    ] = None


class DstIn(Strict):
    """What a wall-clock job does at a daylight-saving change."""

    gap: Literal["shift", "skip"] = Field(
        "shift", description="A wall time the clocks skip: fire just after the gap, or not"
    )
    repeat: Literal["first", "last", "both"] = Field(
        "first", description="A wall time that happens twice: fire at its first pass, last, both"
    )


class TimingFields(Strict):
    """When a job fires; shared by jobs and the preview call."""

    recurring: Recurring = "none"
    minute: StrictInt | None = Field(None, description="Minutes since the Unix epoch, UTC")
    at: StrictStr | None = Field(
        None,
        description="RFC 3339 instant, to the second; without an offset, a wall time in timezone",
    )
    timezone: StrictStr | None = Field("UTC", description="IANA time zone")
    cron: Annotated[StrictStr | None, Field(max_length=200)] = None
    interval: StrictInt | None = Field(None, description="Seconds, for recurring=interval")
    startAt: StrictStr | None = Field(None, description="RFC 3339: no run before")
    endAt: StrictStr | None = Field(None, description="RFC 3339: no run after")
    maxRuns: Annotated[StrictInt | None, Field(ge=1, le=1_000_000_000)] = None
    rrule: Annotated[
        StrictStr | None,
        Field(
            max_length=500,
            description="RFC 5545 RRULE, for recurring=rrule; DTSTART is at (absent: the first "
            "whole minute from when the job is saved)",
        ),
    ] = None
    exclude: ExcludeIn | None = None
    onExcluded: Literal["skip", "next-business-day"] | None = Field(
        None, description="An excluded occurrence is skipped (default) or moved"
    )
    dst: DstIn | None = None


# Labels: what jobs are grouped and found by (EventBridge's groups and tags). A key names
# no ':' (a filter is key:value), a value holds no control characters.
LABEL_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_./-]{0,62}")
LABEL_VALUE = re.compile(r"[^\x00-\x1f\x7f]{1,100}")
MAX_LABELS = 20
LABEL_FILTER = f"^{LABEL_KEY.pattern}(:{LABEL_VALUE.pattern})?$"
LabelValue = Annotated[StrictStr, Field(json_schema_extra={"pattern": f"^{LABEL_VALUE.pattern}$"})]
Labels = Annotated[
    dict[str, LabelValue],
    Field(
        max_length=MAX_LABELS,
        json_schema_extra={"propertyNames": {"pattern": f"^{LABEL_KEY.pattern}$"}},
    ),
]


def checked_labels(labels: dict[str, str]) -> dict[str, str]:
    for key, value in labels.items():
        if not LABEL_KEY.fullmatch(key):
            raise ValueError(f"{key[:40]!r} is not a label key (1-63 letters, digits, _ . / -)")
        if not LABEL_VALUE.fullmatch(value):
            raise ValueError(f"{key}: a value is 1-100 characters, none of them control ones")
    return labels


class JobIn(TimingFields):
    payload: StrictStr
    name: Annotated[StrictStr | None, Field(max_length=200)] = None
    labels: Labels = Field(default_factory=dict)
    target: Target | None = None
    retry: RetryIn | None = None
    misfire: Literal["coalesce", "skip", "all"] = "coalesce"
    maxCatchUp: Annotated[
        StrictInt | None,
        Field(ge=1, le=10_000, description='misfire "all": missed occurrences fired at most'),
    ] = None
    deadLetter: Target | None = Field(
        None,
        description="Where a message about each dead run goes (a target, as `target`): JSON "
        "{payload, runId, jobId, attempts, lastError, lastStatus, scheduledFor, firedAt}, "
        "to a Celery task as its one argument; absent: DEFAULT_DEAD_LETTER, if set",
    )
    onComplete: Literal["keep", "delete"] = Field(
        "keep",
        description="delete: once completed and its runs finished, the job is deleted "
        "(kept: pruned after COMPLETED_JOB_RETENTION_DAYS)",
    )
    template: StrictBool = Field(
        False,
        description="Fill the payload's placeholders at each delivery: {{scheduledFor}}, "
        "{{firedAt}}, {{runId}}, {{jobId}}, {{name}}, {{attempt}}. In a JSON payload a value "
        "goes in as JSON string content (escaped), so the payload stays valid JSON; an unknown "
        "placeholder is refused. false: the payload goes out byte for byte",
    )
    window: Annotated[
        StrictInt | None,
        Field(
            ge=1,
            le=86400,
            description="Flexible window, seconds: each occurrence fires at a point within "
            "[nominal, nominal + window) taken from the job (the same for each occurrence)",
        ),
    ] = None
    # "completed" is accepted so get-modify-put works; the rules decide whether it still is.
    status: Literal["active", "paused", "completed"] = "active"

    @field_validator("labels")
    @classmethod
    def known_labels(cls, labels: dict[str, str]) -> dict[str, str]:
        return checked_labels(labels)


class JobOut(BaseModel):
    jobId: str
    payload: str
    minute: int | None
    recurring: Recurring
    name: str | None
    at: str | None
    timezone: str
    cron: str | None
    interval: int | None
    startAt: str | None
    endAt: str | None
    maxRuns: int | None
    rrule: str | None = None
    exclude: dict[str, Any] | None = None
    onExcluded: str = "skip"
    dst: dict[str, str] = Field(default_factory=lambda: {"gap": "shift", "repeat": "first"})
    target: dict[str, Any]
    retry: dict[str, Any]
    misfire: str
    maxCatchUp: int | None
    deadLetter: dict[str, Any] | None = Field(None, description="Where dead runs are told of")
    onComplete: Literal["keep", "delete"]
    template: bool
    window: int | None
    labels: dict[str, str]
    status: Literal["active", "paused", "completed"]
    pauseNote: str | None = Field(None, description="Why it is paused (while paused)")
    pausedUntil: str | None = Field(None, description="When the pause ends by itself")
    description: str = Field(description="The rule in words")
    nextRunAt: str | None
    lastRunAt: str | None
    runCount: int
    skippedCount: int = Field(description="Occurrences skipped instead of fired")
    createdAt: str
    updatedAt: str


# Fields a GET returns that a PUT may send back unchanged: accepted and ignored.
READ_ONLY_JOB_FIELDS = frozenset(JobOut.model_fields) - frozenset(JobIn.model_fields)


class JobBatchIn(Strict):
    # Each item is checked as a JobIn on its own, so its errors can name its index.
    jobs: Annotated[
        list[dict[str, Any]],
        Field(min_length=1, json_schema_extra={"items": {"$ref": "#/components/schemas/JobIn"}}),
    ]


class JobBatchOut(BaseModel):
    jobs: list[JobOut]


class PauseIn(Strict):
    """Optional: a pause without a body is as the original API's."""

    note: Annotated[StrictStr | None, Field(max_length=500, description="Why it is paused")] = None
    until: StrictStr | None = Field(None, description="RFC 3339: it resumes by itself then")


class JobSelectionIn(Strict):
    """The jobs to act on: by id, or every job carrying all these labels (one of the two;
    at most MAX_BATCH_JOBS jobs either way)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_exactly_one("jobIds", "labels"))

    jobIds: Annotated[
        list[UUID] | None, Field(min_length=1, description="At most MAX_BATCH_JOBS")
    ] = None
    labels: Annotated[Labels | None, Field(min_length=1)] = None

    not_null = field_validator("jobIds", "labels", mode="before")(_given)

    @field_validator("labels")
    @classmethod
    def known_labels(cls, labels: dict[str, str] | None) -> dict[str, str] | None:
        return None if labels is None else checked_labels(labels)


class JobBulkOut(BaseModel):
    changed: int = Field(description="How many jobs the action changed")
    changedIds: list[str]
    unchangedIds: list[str] = Field(description="Jobs already as asked (paused, active...)")
    notFound: list[str] = Field(description="Ids of no job (deleted meanwhile, or never were)")


class RunOut(BaseModel):
    runId: str
    jobId: str
    scheduledFor: str
    firedAt: str
    status: Literal["pending", "delivering", "retrying", "delivered", "dead"]
    attempts: int
    nextAttemptAt: str | None
    deliveredAt: str | None
    dueAt: str = Field(
        description="When the service could first fire it: scheduledFor, or when the job "
        "was created, changed or resumed if that came later"
    )
    lagMs: float = Field(description="firedAt - dueAt, milliseconds: how late the service was")
    lastError: str | None
    responseStatus: int | None
    responseMs: float | None
    responseBody: str | None
    deadLetter: bool = Field(
        False, description="A dead letter: the message about the job's dead run at scheduledFor"
    )
    deadLetterRunId: str | None = Field(
        None, description="A dead run's dead letter: the run delivering the message about it"
    )


class RunList(BaseModel):
    runs: list[RunOut]


class PreviewOut(BaseModel):
    description: str
    timezone: str
    times: list[dict[str, Any]] = Field(
        description="Each item: utc and local instants; `skipped` if it does not fire, "
        "`notes` (DST shift, exclusion, window), `explain` (with explain=true)"
    )


class ReceiveIn(Strict):
    max: Annotated[StrictInt, Field(ge=1, le=100)] = 10
    visibilityTimeout: Annotated[StrictFloat, Field(ge=0, le=43200)] = 30.0
    wait: Annotated[StrictFloat, Field(ge=0, le=20)] = 0.0


class MessageOut(BaseModel):
    id: str
    receipt: str
    payload: str
    jobId: str
    runId: str
    scheduledFor: str
    receiveCount: int


class ReceiveOut(BaseModel):
    messages: list[MessageOut]


class AckIn(Strict):
    receipts: Annotated[list[StrictStr], Field(min_length=1, max_length=1000)]


class AckOut(BaseModel):
    deleted: int


class ExtendIn(Strict):
    """A consumer still working on messages keeps them hidden (SQS's ChangeMessageVisibility)."""

    receipts: Annotated[list[StrictStr], Field(min_length=1, max_length=1000)]
    visibilityTimeout: Annotated[
        StrictFloat, Field(ge=0, le=43200, description="Hidden for this long from now, s")
    ] = 30.0


class ExtendOut(BaseModel):
    extended: int = Field(description="Messages still held by these receipts, now hidden longer")


class QueueStats(BaseModel):
    name: str
    depth: int = Field(description="Messages visible now")
    inFlight: int = Field(description="Messages received, not yet acknowledged")
    oldestAt: str | None


class Health(BaseModel):
    status: str
    checks: dict[str, str] = Field(default_factory=dict)


class PageQuery(Strict):
    limit: Annotated[int, Field(ge=1, le=1000)] = 100
    cursor: Annotated[str | None, Field(max_length=500)] = None


class JobListQuery(PageQuery):
    status: Literal["active", "paused", "completed"] | None = None
    recurring: Recurring | None = None
    target: Literal[TARGET_TYPES] | None = None  # type: ignore[valid-type]
    q: Annotated[str | None, Field(max_length=200, description="Search name and payload")] = None
    label: list[Annotated[str, Field(pattern=LABEL_FILTER)]] = Field(
        default_factory=list,
        description="key:value, or key for any value; several: jobs with all of them",
    )
    sort: Literal["created", "-created", "nextRun", "name"] = Field(
        "created",
        description="created: oldest first; -created: newest first; nextRun: soonest first, "
        "jobs with no next run last; name: A to Z, unnamed jobs last",
    )


class RunListQuery(PageQuery):
    status: Literal["pending", "delivering", "retrying", "delivered", "dead"] | None = None
    since: str | None = Field(None, description="RFC 3339: runs fired at or after")
    until: str | None = Field(None, description="RFC 3339: runs fired before")


class PreviewQuery(Strict):
    """The timing fields of a job, as query parameters, plus where to start and how many."""

    recurring: Recurring = "none"
    minute: int | None = None
    at: str | None = None
    timezone: str | None = "UTC"
    cron: Annotated[str | None, Field(max_length=200)] = None
    interval: int | None = None
    startAt: str | None = None
    endAt: str | None = None
    maxRuns: Annotated[int | None, Field(ge=1, le=1_000_000_000)] = None
    rrule: Annotated[str | None, Field(max_length=500)] = None
    after: str | None = Field(None, description="RFC 3339 instant; default now")
    count: Annotated[int, Field(ge=1, le=100)] = 5
    explain: bool = Field(False, description="Say each note in words")


class PreviewIn(JobIn):
    """A job's JSON as POST /schedules takes it (its fields checked alike; the payload may
    be left out), to preview its timing (exclude, dst and window too)."""

    payload: StrictStr | None = None  # type: ignore[assignment]  # not needed to preview
    after: StrictStr | None = Field(None, description="RFC 3339 instant; default now")
    count: Annotated[StrictInt, Field(ge=1, le=100)] = 5
    explain: StrictBool = False


class BackfillIn(Strict):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    start: StrictStr = Field(alias="from", description="RFC 3339: the range's first instant")
    to: StrictStr = Field(description="RFC 3339: its last instant, not in the future")
    dryRun: StrictBool = Field(False, description="Only count the runs it would make")


class BackfillOut(BaseModel):
    occurrences: int = Field(description="Occurrences of the rule in the range")
    existing: int = Field(description="Of those, how many had a run already")
    written: int = Field(description="Runs made (0 for a dry run)")


class JobPreviewQuery(Strict):
    count: Annotated[int, Field(ge=1, le=100)] = 5
    explain: bool = False


class AuditQuery(PageQuery):
    jobId: str | None = Field(None, json_schema_extra={"format": "uuid"})


class AuditOut(BaseModel):
    id: int
    at: str
    actor: str = Field(description="key:<name>, ui:<user>, anonymous or system")
    action: str
    jobId: str | None
    runId: str | None
    detail: str | None


def invalid_from(exc: ValidationError, prefix: str = "") -> Invalid:
    """A model's validation errors as the domain's, each named by its dotted field."""
    errors = []
    for error in exc.errors(include_url=False):
        loc = [str(part) for part in error["loc"] if not str(part).startswith("function-")]
        field = ".".join([prefix, *loc] if prefix else loc) or "body"
        message = "unknown field" if error["type"] == "extra_forbidden" else error["msg"]
        errors.append(FieldError(field, message))
    return Invalid(errors)
