"""The one exception the client raises: an RFC 9457 problem, or no answer at all."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str


@dataclass
class ProblemError(Exception):
    """What the service answered instead of success (its problem details), or why it did
    not answer (`status` None: the connection failed, every retry included)."""

    status: int | None
    title: str
    detail: str | None = None
    errors: list[FieldError] = field(default_factory=list)
    type: str = "about:blank"
    body: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(str(self))

    def __str__(self) -> str:
        head = f"{self.status} {self.title}" if self.status is not None else self.title
        lines = [f"{head}: {self.detail}" if self.detail else head]
        # The detail often repeats the only field error; say each field once.
        lines += [f"  {e.field}: {e.message}" for e in self.errors if e.message not in lines[0]]
        return "\n".join(lines)

    @classmethod
    def from_answer(cls, status: int, reason: str, body: Any) -> ProblemError:
        if not isinstance(body, dict):  # not a problem document (a proxy's page, say)
            return cls(status, reason or "HTTP error")
        errors = [
            FieldError(str(e.get("field", "")), str(e.get("message", "")))
            for e in body.get("errors") or []
            if isinstance(e, dict)
        ]
        return cls(
            status,
            str(body.get("title") or reason or "HTTP error"),
            body.get("detail"),
            errors,
            str(body.get("type") or "about:blank"),
            body,
        )

    def field_errors(self) -> dict[str, str]:
        """Field name -> message."""
        return {e.field: e.message for e in self.errors}
