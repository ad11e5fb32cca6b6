"""What the domain refuses, in its own words; app.problems gives each kind its HTTP answer.

The store (app.jobs, app.runs, app.queue, app.cursors) and the request shaping
(app.jobinput) raise these and never speak HTTP; the API answers them as problem details
and the UI shows them on its pages and form fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Self


@dataclass(frozen=True)
class FieldError:
    field: str  # dotted, as the API names it: "target.url", "jobs.3.cron"
    message: str


class DomainError(Exception):
    pass


class Invalid(DomainError):
    """Values a job (or a message) cannot hold; nothing was written."""

    def __init__(self, errors: list[FieldError], detail: str | None = None) -> None:
        self.errors = errors
        self.detail = detail or "; ".join(f"{e.field}: {e.message}" for e in errors)
        super().__init__(self.detail)

    @classmethod
    def field(cls, field: str, message: str) -> Self:
        return cls([FieldError(field, message)])

    def prefixed(self, prefix: str) -> list[FieldError]:
        return [FieldError(prefix + e.field, e.message) for e in self.errors]


class TooLarge(Invalid):
    """A value larger than a configured limit."""


class BadLookup(Invalid):
    """A filter or page cursor that names nothing the store can look up by."""


class NotFound(DomainError):
    def __init__(self, what: str) -> None:
        self.what = what
        super().__init__(f"{what} does not exist")


class Conflict(DomainError):
    """The thing exists, but its state does not allow this."""

    def __init__(self, title: str, detail: str) -> None:
        self.title = title
        self.detail = detail
        super().__init__(detail)
