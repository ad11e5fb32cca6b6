"""Standard Webhooks signing (https://www.standardwebhooks.com/): the secrets jobs are given
and the signature each request carries. Apart from the webhook target so that the web side,
which makes secrets, never imports the target's HTTP client."""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets as secrets_module

from app.schemas import SECRET_PREFIX, secret_key


def generate_secret() -> str:
    """A new signing secret: whsec_ + base64 of 24 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets_module.token_bytes(24)).decode()


def sign(secret: str, msg_id: str, timestamp: int, body: str | bytes) -> str:
    """'v1,<base64 HMAC-SHA256 of "{msg_id}.{timestamp}.{body}">', keyed by the secret's bytes.
    Raises ValueError on a malformed secret."""
    key = _signing_key(secret)
    payload = body.encode() if isinstance(body, str) else body
    digest = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + payload, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


@functools.lru_cache(maxsize=1024)  # decoded for every run signed with it
def _signing_key(secret: str) -> bytes:
    return secret_key(secret)
