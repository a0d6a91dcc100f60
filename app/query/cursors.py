"""Keyset pagination (pure): a page after a cursor costs what the first page costs.

A list's order, with the primary key's columns added as tie-breakers, is its keyset. The cursor is
opaque to the caller (base64url of JSON): the keyset's names and directions, and the last row's
values for them, as GET shows them. The next page is `WHERE <filters> AND (after the last row)`:

    (a > :a) OR (a = :a AND b > :b) OR (a = :a AND b = :b AND id > :id)

with directions and NULLs as MariaDB sorts them (NULL first ascending, last descending). A
cursor made for another order, or not made by us, is 400 `invalid_cursor`; it holds nothing
secret, and its values are converted and bound as parameters like any filter's.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from typing import Any

import orjson

from app.core.errors import GatewayError, InvalidCursor
from app.db.catalog import Column, Table
from app.query.nodes import Condition, Group, Node
from app.rows.values import bit_out, json_default, to_compare

Keyset = tuple[tuple[Column, bool], ...]  # (column, descending)
VERSION = 1


def keyset(table: Table, order: Keyset) -> Keyset | None:
    """The order made total by the primary key, in the direction of the order's last term (all one
    direction, an index on the order's columns serves the page by reading it forward or backward;
    mixed, the server sorts every row after the cursor: measured, a 504 on 2M rows). None for a
    table without a primary key (no cursor then)."""
    if not table.primary_key:
        return None
    named = {column.name for column, _ in order}
    descending = order[-1][1] if order else False
    return order + tuple((c, descending) for c in table.primary_key if c.name not in named)


def encode(keys: Keyset, values: Sequence[Any]) -> str:
    """The cursor after a row whose keyset columns hold `values` (driver values)."""
    # A BIT arrives as bytes: kept as the number the API shows (and to_compare reads), not base64.
    values = [bit_out(v) if c.kind == "bit" and v is not None else v for (c, _), v in zip(keys, values)]
    body = {"v": VERSION, "k": [[c.name, desc] for c, desc in keys], "p": values}
    return base64.urlsafe_b64encode(orjson.dumps(body, default=json_default)).decode().rstrip("=")


def decode(keys: Keyset, token: str) -> list[Any]:
    """The last row's values, converted for comparison (400 for anything else)."""
    try:
        body = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        raise InvalidCursor("the cursor is not one this gateway made: pass meta.next_cursor as it is") from None
    if not isinstance(body, dict) or body.get("v") != VERSION or not isinstance(body.get("p"), list):
        raise InvalidCursor("the cursor is not one this gateway made: pass meta.next_cursor as it is")
    if body.get("k") != [[c.name, desc] for c, desc in keys] or len(body["p"]) != len(keys):
        raise InvalidCursor("the cursor was made for another order: send the same order (and fields) as the first page")
    try:
        # A JSON column's value is its text as stored (what the row held), compared as text: made
        # into JSON again it could be spelt otherwise (`[1,2]` for `[1, 2]`) and miss the row.
        return [to_compare(c, v, text=True) for (c, _), v in zip(keys, body["p"])]
    except GatewayError:
        raise InvalidCursor("the cursor's values do not fit their columns") from None


class _Indexed:
    """An ENUM or SET column compared as it sorts: by its number (`col + 0`), not its text."""

    def __init__(self, column: Column):
        self.name, self.quoted = column.name, f"({column.quoted} + 0)"


def _sortable(column: Column, value: Any) -> tuple[Any, Any]:
    """(what to compare, the value to compare with) for one keyset column."""
    if column.kind == "enum" and value is not None:
        return _Indexed(column), column.members.index(value) + 1
    if column.kind == "set" and value is not None:
        chosen = value if isinstance(value, (set, frozenset)) else {m for m in str(value).split(",") if m}
        return _Indexed(column), sum(1 << i for i, member in enumerate(column.members) if member in chosen)
    return column, value


def after(keys: Keyset, values: Sequence[Any]) -> Node:
    """The rows that sort after the row holding `values`."""
    options: list[Node] = []
    pairs = [_sortable(column, value) for (column, _), value in zip(keys, values)]
    for i, (_, desc) in enumerate(keys):
        column, value = pairs[i]
        nullable = keys[i][0].nullable
        if value is None:
            step: Node | None = None if desc else Condition(column, "is_null", False)  # NULLs: first asc, last desc
        elif desc:
            below = Condition(column, "lt", value)
            step = Group("or", (below, Condition(column, "is_null", True))) if nullable else below
        else:
            step = Condition(column, "gt", value)
        if step is not None:
            same = tuple(Condition(c, "is_null", True) if v is None else Condition(c, "eq", v) for c, v in pairs[:i])
            options.append(Group("and", (*same, step)) if same else step)
    if not options:
        return Condition(keys[0][0], "in", ())  # nothing sorts after: matches no row
    return options[0] if len(options) == 1 else Group("or", tuple(options))
