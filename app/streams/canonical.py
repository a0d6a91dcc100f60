"""Columns of JSON values that LOAD DATA reads exactly as the converters would (pure).

A stream's group of rows with one plan is looked at a column at a time, by C-level builtins
(types, min, max, the CSV import's canonical text checks): when every column passes, the values go
to LOAD DATA as they are, with no converter called per cell (the converters cost about 1 us a
cell, most of a one-row message's price). What the checks pass means the same to the server as to
the converters; what the server still refuses (too long, out of range, no such date) it warns
about, and the applier then converts the group the exact way, which names each problem.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from app.db.catalog import Column
from app.rows.values import canonical_check

Check = Callable[[Sequence[Any]], bool]
NONE = type(None)


def column_check(column: Column) -> Check | None:
    """A check over one column's JSON values (None: this kind always takes the converters)."""
    kind = column.kind
    text = canonical_check(column)  # strings in CSV's canonical forms (JSON strings read as CSV text)
    if text is None and kind not in ("int", "float", "decimal", "bool"):
        return None
    nullable = column.nullable or column.auto_increment
    low, high = column.int_range or (0, -1)
    if kind == "bool":
        low, high = 0, 1
    whole = 10 ** (column.whole_digits or 0)

    def numbers(cells: Sequence[Any], types: set[type]) -> bool:
        if kind in ("int", "bool"):
            return types == {int} and low <= min(cells) and max(cells) <= high
        if kind == "float":
            return types <= {int, float}
        if kind == "decimal":  # whole numbers only: a float's digits are the converter's to judge
            return types == {int} and -whole < min(cells) and max(cells) < whole
        return False

    def check(cells: Sequence[Any]) -> bool:
        types = set(map(type, cells))
        if NONE in types:
            if not nullable:
                return False
            types.discard(NONE)
            cells = [c for c in cells if c is not None]
            if not cells:
                return True
        if types == {str}:
            # The CSV check reads "" and \\N as NULL; in JSON they are strings (the converters' call).
            return text is not None and (kind == "string" or ("" not in cells and "\\N" not in cells)) and text(cells)
        return numbers(cells, types)

    return check
