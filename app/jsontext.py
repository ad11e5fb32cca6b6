"""JSON text read from outside (request bodies, payloads) without letting its shape hurt:
nesting too deep for the parser or for the code that walks the result afterwards is
refused as invalid JSON, never a RecursionError."""

from __future__ import annotations

import json
from typing import Any

MAX_DEPTH = 64  # nesting levels a request body may have (objects and arrays)


class TooDeep(ValueError):
    def __init__(self, limit: int | None) -> None:
        super().__init__(f"nested more than {limit} levels deep" if limit else "nested too deeply")


def loads(text: str | bytes, max_depth: int | None = MAX_DEPTH) -> Any:
    """json.loads, refusing nesting beyond `max_depth` (None: only what the parser can
    take) with TooDeep, a ValueError like any other invalid JSON."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise TooDeep(max_depth) from None
    if max_depth is not None and depth(value) > max_depth:
        raise TooDeep(max_depth)
    return value


def depth(value: Any) -> int:
    """Nesting levels of objects and arrays (a scalar: 0), counted without recursion."""
    if not isinstance(value, dict | list):
        return 0
    deepest, stack = 1, [(value, 1)]
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        children = item.values() if isinstance(item, dict) else item
        stack.extend((c, level + 1) for c in children if isinstance(c, dict | list))
    return deepest
