"""A row change as a subscriber receives it, and whether its filter (and row policy) lets it see
the change. Pure: binlog values in, the JSON values GET shows out.

A subscriber sees the changes to the set of rows its filter selects: an update of a row that enters
the set is an insert for it, one that leaves the set a delete (with the row as it was), one within
it an update; a row the caller's policy does not give it is never shown, before or after.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from app.core.errors import InvalidFilter
from app.db.catalog import Column, Table
from app.feed.positions import Position
from app.feed.reader import Change, Transaction
from app.query.nodes import Condition, Exists, Group, Match, Node
from app.rows.values import json_out

Value = Callable[[Any], Any]


def feed_filter(node: Node | None) -> Node | None:
    """A filter a feed can apply to a row in hand: conditions on the table's own columns, in groups."""
    if isinstance(node, (Exists, Match)):
        raise InvalidFilter(
            "a change feed filters on the table's own columns: not through relations, not by full-text search",
            {"filter": "relation" if isinstance(node, Exists) else "full-text"},
        )
    if isinstance(node, Group):
        for item in node.items:
            feed_filter(item)
    return node


def _bits(value: Any) -> Any:
    return int(value, 2) if isinstance(value, str) else value


def _float32(value: Any) -> Any:
    # A FLOAT as the server prints it (the binlog holds its 4 bytes: 1.1 would read 1.100000023841858).
    return float(f"{value:.6g}") if isinstance(value, float) else value


def _members(column: Column) -> Value:
    order = {m: i for i, m in enumerate(column.members)}

    def joined(value: Any) -> Any:  # a SET as the server writes it: its members in their defined order
        if not isinstance(value, (set, frozenset)):
            return value
        return ",".join(sorted(value, key=lambda m: order.get(m, len(order))))
    return joined


def converters(table: Table) -> dict[str, Value]:
    """Per column, what turns a binlog value into the one the database driver gives a SELECT."""
    found: dict[str, Value] = {}
    for column in table.columns:
        if column.kind == "bit":
            found[column.name] = _bits
        elif column.kind == "set":
            found[column.name] = _members(column)
        elif column.kind == "json":
            found[column.name] = json_out
        elif column.kind == "float" and column.column_type.startswith("float"):
            found[column.name] = _float32
    return found


def row_of(values: dict[str, Any] | None, convert: dict[str, Value]) -> dict[str, Any] | None:
    if values is None:
        return None
    return {name: (convert[name](v) if v is not None and name in convert else v) for name, v in values.items()}


Seen = tuple[str, dict | None, dict | None]


def seen_as(change: Change, where: Node | None, row: Callable[[dict | None], dict | None],
            owned: Node | None = None) -> Seen | None:
    """(op, before, after) as the subscriber sees the change through `where` and, under a row policy,
    `owned` (compared exactly: a value the column's collation takes for the claim but that is not
    it is never shown, rather than shown to a tenant it does not belong to); None: not at all."""
    before, after = row(change.before), row(change.after)
    was = before is not None and (owned is None or matches(owned, before, exact=True)) and (
        where is None or matches(where, before))
    now = after is not None and (owned is None or matches(owned, after, exact=True)) and (
        where is None or matches(where, after))
    if was and now:
        return "update", before, after
    if now:
        return "insert", None, after
    if was:
        return "delete", before, None
    return None


def event(table: Table, tx: Transaction, position: Position, op: str, before: dict | None, after: dict | None) -> dict:
    shown = after if after is not None else before
    key = {c.name: shown.get(c.name) for c in table.primary_key} if shown is not None and table.primary_key else None
    return {
        "op": op, "table": table.name, "key": key, "before": before, "after": after, "gtid": tx.gtid,
        "committed_at": committed(tx.committed_at), "position": str(position),
    }


@functools.lru_cache(maxsize=64)
def committed(seconds: int) -> str:
    """A commit time as ISO 8601 UTC (the changes of one second share it)."""
    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc).isoformat().replace("+00:00", "Z")


# --- a filter, evaluated on a row in hand --------------------------------------------------------


def matches(node: Node, row: dict[str, Any], *, exact: bool = False) -> bool:
    if isinstance(node, Group):
        if node.op == "and":
            return all(matches(item, row, exact=exact) for item in node.items)
        return any(matches(item, row, exact=exact) for item in node.items)
    if isinstance(node, Condition):
        if exact:
            value = row.get(node.column.name)
            return value is not None and node.op == "eq" and str(value) == str(node.value)
        return _holds(node, row.get(node.column.name))
    raise InvalidFilter("a change feed filters on the table's own columns", {})


def _holds(condition: Condition, value: Any) -> bool:
    op, wanted = condition.op, condition.value
    if op == "is_null":
        return (value is None) == bool(wanted)
    if wanted is None and op in ("eq", "ne"):  # eq null: IS NULL, ne null: IS NOT NULL
        return (value is None) == (op == "eq")
    if value is None:
        return False  # SQL: a comparison with NULL is never true
    value = _comparable(value)
    try:
        if op in ("in", "nin"):
            inside = any(_equal(value, _comparable(w)) for w in wanted)
            return inside if op == "in" else not inside
        if op == "between":
            low, high = (_comparable(w) for w in wanted)
            return _order(low, value) <= 0 and _order(value, high) <= 0
        if op == "like":
            return _like(str(wanted)).fullmatch(str(value)) is not None
        wanted = _comparable(wanted)
        if op == "eq":
            return _equal(value, wanted)
        if op == "ne":
            return not _equal(value, wanted)
        order = _order(value, wanted)
        return {"gt": order > 0, "gte": order >= 0, "lt": order < 0, "lte": order <= 0}[op]
    except (TypeError, KeyError, ValueError):
        return False


def _comparable(value: Any) -> Any:
    """Strings compare as the default collations do (case-insensitively); numbers as numbers."""
    if isinstance(value, str):
        return value.casefold()
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float):
        return Decimal(repr(value))
    return value


def _equal(a: Any, b: Any) -> bool:
    return _order(a, b) == 0


def _order(a: Any, b: Any) -> int:
    if isinstance(a, (int, Decimal)) and isinstance(b, str):
        b = Decimal(b)
    elif isinstance(b, (int, Decimal)) and isinstance(a, str):
        a = Decimal(a)
    return (a > b) - (a < b)


def _like(pattern: str) -> re.Pattern[str]:
    parts, escaped = [], False
    for char in pattern.casefold():
        if escaped:
            parts.append(re.escape(char))
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "%":
            parts.append(".*")
        elif char == "_":
            parts.append(".")
        else:
            parts.append(re.escape(char))
    return re.compile("".join(parts), re.DOTALL)
