"""Aligned text tables for people (the command line's default output)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

MAX_CELL = 60  # longer cells are cut with an ellipsis: a row stays one line


def cell(value: Any) -> str:
    text = "-" if value is None or value == "" else str(value)
    text = " ".join(text.split())  # one line: payloads and errors may hold newlines
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[cell(v) for v in row] for row in rows]
    widths = [max([len(h)] + [len(row[i]) for row in cells]) for i, h in enumerate(headers)]
    lines = [headers, *cells]
    return "\n".join(
        "  ".join(text.ljust(width) for text, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def target_summary(target: dict[str, Any]) -> str:
    kind = target.get("type", "?")
    if kind == "queue":
        return f"queue:{target.get('name', 'default')}"
    if kind == "webhook":
        return f"webhook {target.get('url', '')}"
    if kind == "sqs":
        return f"sqs {target.get('queueUrl', '')}"
    return str(kind)
