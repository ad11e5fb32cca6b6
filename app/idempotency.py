"""Idempotent creation: the answer to a create sent with a key, kept so a retry gets it.

The IETF Idempotency-Key draft and EventBridge's ClientToken: a retry with the same key and
the same request, within KEY_LIFETIME, gets the first answer and creates nothing; the same
key with another request is refused. The answer is written in the same transaction as the
jobs it reports, so both are there or neither is; when two requests with one key race, the
unique (actor, key) index lets one commit and the other finds its answer (`Raced`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError

from app.database import db
from app.errors import DomainError, Invalid
from app.models import IdempotencyKey

KEY_LIFETIME = timedelta(hours=24)
KEY_FIELD = "Idempotency-Key"


@dataclass(frozen=True)
class Claim:
    actor: str  # "key:<name>", "anonymous": one caller's keys never answer another's
    key: str
    fingerprint: str  # the request's digest (fingerprint_of)


@dataclass(frozen=True)
class Answer:
    status: int
    body: str
    location: str | None


class Raced(DomainError):
    """Another request with the same key committed first; recall() has its answer."""


def fingerprint_of(*parts: str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode("utf-8", "surrogatepass"))
        digest.update(b"\0")
    return digest.hexdigest()


def recall(claim: Claim, now: datetime) -> Answer | None:
    """The answer kept for this key, None if there is none (or it is older than a day);
    Invalid naming the key when it was used for another request."""
    row = db.session.execute(
        select(IdempotencyKey).where(
            IdempotencyKey.actor == claim.actor,
            IdempotencyKey.key == claim.key,
            IdempotencyKey.created_at > now - KEY_LIFETIME,
        )
    ).scalar_one_or_none()
    if row is None:
        return None
    if row.fingerprint != claim.fingerprint:
        raise Invalid.field(KEY_FIELD, "this key was used for another request in the last 24 hours")
    return Answer(row.status, row.answer, row.location)


def remember(claim: Claim, answer: Answer, now: datetime) -> None:
    """Keep the answer, in the caller's write transaction (the jobs it reports are in it
    too). Raced, the transaction rolled back, when another request kept one first."""
    session = db.session
    key_row = (IdempotencyKey.actor == claim.actor) & (IdempotencyKey.key == claim.key)
    session.execute(
        delete(IdempotencyKey).where(key_row, IdempotencyKey.created_at <= now - KEY_LIFETIME)
    )
    try:
        session.execute(
            insert(IdempotencyKey).values(
                actor=claim.actor,
                key=claim.key,
                fingerprint=claim.fingerprint,
                status=answer.status,
                answer=answer.body,
                location=answer.location,
                created_at=now,
            )
        )
    except IntegrityError as exc:
        session.rollback()
        raise Raced(claim.key) from exc
