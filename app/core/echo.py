"""What an error may echo of a caller's input: short, and always writable as JSON. Pure."""

from __future__ import annotations

import math
from typing import Any


def shown(value: Any, limit: int = 80) -> Any:
    """Numbers JSON can carry stay numbers; anything else becomes text of at most `limit` characters
    with lone surrogates replaced (a name or value can be megabytes, or not encodable)."""
    if value is None or isinstance(value, bool) or (isinstance(value, int) and -(2**63) <= value < 2**63):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    text = str(value) if not isinstance(value, int) or abs(value) < 10**4000 else "a very long integer"
    text = text if len(text) <= limit else text[:limit] + "..."
    return text.encode("utf-8", "replace").decode("utf-8")
