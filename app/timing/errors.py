"""The one error the timing rules raise: bad input, naming the API field at fault."""

from __future__ import annotations


class TimingError(ValueError):
    """Bad timing input. `field` is the camelCase API field, `message` a sentence for people."""

    field: str
    message: str

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
