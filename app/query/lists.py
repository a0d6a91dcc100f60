"""A list request's options, parsed against a catalog table (pure): fields, order, limit, offset,
the keyset cursor and the exact count. The filter itself is filters.py's."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from app.core.echo import shown
from app.core.errors import InvalidFilter
from app.db.catalog import Column, Table
from app.query import cursors
from app.query.embeds import Embed, Item, parse_items
from app.query.filters import RESERVED_PARAMS, Links, column_of
from app.query.nodes import Group, Match, Node

__all__ = ["RESERVED_PARAMS", "ListQuery", "list_query", "parse_fields", "parse_order", "parse_int"]
MAX_ROWS = 2**63 - 1  # the largest limit or offset (MariaDB takes up to 2^64-1; past it is a syntax error)


@dataclass(frozen=True, slots=True)
class ListQuery:
    where: Node | None
    fields: tuple[Column, ...]
    order: tuple[tuple[Column, bool], ...]  # (column, descending)
    limit: int | None
    offset: int
    keyset: tuple[tuple[Column, bool], ...] | None = None  # the order made total (cursors.py)
    after: Node | None = None  # the rows after the cursor's
    extra: tuple[Column, ...] = ()  # keyset columns read only to make the next cursor
    count: Literal["exact", "estimated"] | None = None  # meta.total, counted or estimated
    rank: Match | None = None  # a search with no `order`: by relevance, best first (pages by offset)
    items: tuple[Item, ...] = ()  # what each row holds, in order: `fields` and embedded relations

    @property
    def selected(self) -> tuple[Item, ...]:
        return (self.items or self.fields) + self.extra

    @property
    def embeds(self) -> tuple[Embed, ...]:
        return tuple(i for i in self.items if isinstance(i, Embed))


def parse_fields(table: Table, fields: str | list[str] | None) -> tuple[Column, ...]:
    if fields is None or fields == "" or fields == []:
        return table.columns
    names = fields.split(",") if isinstance(fields, str) else fields
    if not isinstance(names, list):
        raise InvalidFilter("fields is a list of column names")
    return tuple(column_of(table, n.strip() if isinstance(n, str) else n) for n in names)


def parse_order(table: Table, order: str | list[str] | None) -> tuple[tuple[Column, bool], ...]:
    """`a.asc,b.desc` or ["a.asc", "-b"]; defaults to the primary key so pages are stable."""
    if order is None or order == "" or order == []:
        return tuple((c, False) for c in table.primary_key)
    terms = order.split(",") if isinstance(order, str) else order
    if not isinstance(terms, list):
        raise InvalidFilter("order is 'col.asc,col2.desc' or a list of such terms")
    return tuple(_order_term(table, term) for term in terms)


def _order_term(table: Table, term: Any) -> tuple[Column, bool]:
    """`col`, `-col`, `col.asc` or `col.desc`; a column whose own name has a dot is taken whole."""
    if not isinstance(term, str):
        raise InvalidFilter("order terms are strings like 'col.desc'")
    term = term.strip()
    name = term.removeprefix("-")
    if table.column(name) is not None or "." not in name:
        return column_of(table, name), term.startswith("-")
    prefix, _, direction = name.rpartition(".")
    if table.column(prefix) is None and "." in prefix and table.column(prefix.partition(".")[0]) is not None:
        # `placed.desc.nullslast`: PostgREST's null ordering, which MySQL spells otherwise.
        raise InvalidFilter(
            f"order term '{shown(term, 60)}': a column, then asc or desc ('placed.desc'); nullsfirst and "
            "nullslast are not offered (NULLs come first ascending, last descending)",
            {"order": shown(term, 60)},
        )
    column = column_of(table, prefix)
    if direction.lower() not in ("asc", "desc") or term.startswith("-"):
        raise InvalidFilter(
            f"order direction '{shown(direction, 40)}' for column '{column.name}': use asc or desc",
            {"column": column.name, "direction": shown(direction, 40)},
        )
    return column, direction.lower() == "desc"


def parse_int(name: str, value: Any, default: int | None, low: int, high: int | None) -> int | None:
    if value is None or value == "":
        return default
    high = MAX_ROWS if high is None else high
    try:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        raise InvalidFilter(f"{name} must be an integer", {name: shown(value, 40)}) from None
    if not low <= number <= high:
        raise InvalidFilter(f"{name} must be between {low} and {high}", {name: shown(value, 40)})
    return number


def _search(where: Node | None) -> Match | None:
    """The full-text search a filter makes at its top (alone, or ANDed): what ranks the rows."""
    if isinstance(where, Match):
        return where
    if isinstance(where, Group) and where.op == "and":
        return next((item for item in where.items if isinstance(item, Match)), None)
    return None


def list_query(
    table: Table,
    where: Node | None,
    *,
    fields: Any = None,
    order: Any = None,
    limit: Any = None,
    offset: Any = None,
    cursor: Any = None,
    count: Any = None,
    default_limit: int | None,
    max_limit: int | None,
    links: Links | None = None,
    embed_limit: int = 1000,
) -> ListQuery:
    """`links`: the catalog's relations, for reads that may embed (`embed_limit`: an embedded
    array's rows at most)."""
    items = parse_items(table, fields, links, embed_limit)
    fields_ = tuple(i for i in items if isinstance(i, Column))
    order_ = parse_order(table, order)  # the primary key when none is given
    offset_ = parse_int("offset", offset, 0, 0, None) or 0
    # A search with no order given: relevance first, then the key (the same rows in the same order).
    rank = _search(where) if order is None or order == "" or order == [] else None
    keys = cursors.keyset(table, order_) if rank is None else None
    after = None
    if cursor is not None and cursor != "":
        if not isinstance(cursor, str):
            raise InvalidFilter("cursor is the text of a meta.next_cursor")
        if rank is not None:
            raise InvalidFilter("a search ranked by relevance pages by offset (or give an order to page by cursor)")
        if keys is None:
            raise InvalidFilter(f"table '{table.name}' has no primary key: its pages go by offset")
        if offset_:
            raise InvalidFilter("give a cursor or an offset, not both")
        after = cursors.after(keys, cursors.decode(keys, cursor))
    if count not in (None, "", "exact", "estimated"):
        raise InvalidFilter(
            "count takes 'exact' (a second query, COUNT(*)) or 'estimated' (the server's statistics or plan)",
            {"count": shown(count, 40)},
        )
    named = set(fields_)
    embeds = any(isinstance(i, Embed) for i in items)
    return ListQuery(
        where=where,
        fields=fields_,
        order=order_,
        limit=parse_int("limit", limit, default_limit, 1, max_limit),
        offset=offset_,
        keyset=keys,
        after=after,
        extra=tuple(c for c, _ in keys or () if c not in named),
        count=count or None,
        rank=rank,
        items=items if embeds else (),
    )
