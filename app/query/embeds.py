"""`fields` with embedded relations, parsed against the catalog (pure).

    fields=id,total,customer(name,email)                    the customer: an object, or null
    fields=id,orders(id,total;order=total.desc;limit=5)     the orders: an array
    fields=*,billing:customers!billing_id(name)             named by the key, under another name
    fields=id,orders(id,lines(sku,qty);status=eq.open)      nested; `status=eq.open` shapes the array

Inside the parentheses: the fields (`*` or nothing: every column), then `;`-separated options:
`order=`, `limit=`, `offset=`, and filters (`col=op.value`) on the embedded rows, which only shape
what is embedded (a filter on the rows themselves is `?orders.status=eq.open`, filters.py). The JSON
body of /query takes the same strings in its `fields` list, or an object per relation:
`{"orders": {"fields": ["id"], "where": {"status": "open"}, "order": "total.desc", "limit": 5}}`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Union

from app.core.echo import shown
from app.core.errors import InvalidFilter, UnknownColumn
from app.db.catalog import Column, Table
from app.db.relations import Relation, find
from app.query.cursors import keyset
from app.query.filters import Links, column_of, parse_filter, parse_query_params
from app.query.nodes import Condition, Exists, Group, Match, Node

MAX_EMBEDS = 20  # relations embedded by one request, at every level together
MAX_DEPTH = 5  # levels of embedding: orders(lines(product(...)))
OPTIONS = ("order", "limit", "offset")
NOT_INSIDE = ("cursor", "count", "fields", "select")  # a page's options, not an embedding's
MAX_NAME = 64  # an embedding's name is a column name in the SQL (MariaDB: at most 64 characters)


@dataclass(frozen=True, slots=True)
class Embed:
    """A relation's rows inside each row, under `name`: an object (or null) or, for `relation.many`,
    an array of at most `cap` rows (`limit`, else the gateway's max_limit and one more, which tells
    that there were too many)."""

    name: str
    relation: Relation
    items: tuple["Item", ...]  # what each embedded row holds, in order
    where: Node | None  # which related rows are embedded
    order: tuple[tuple[Column, bool], ...]
    limit: int | None  # as asked
    offset: int
    cap: int | None

    @property
    def columns(self) -> tuple[Column, ...]:
        return tuple(i for i in self.items if isinstance(i, Column))

    @property
    def embeds(self) -> tuple["Embed", ...]:
        return tuple(i for i in self.items if isinstance(i, Embed))


Item = Union[Column, "Embed"]


@dataclass
class _Budget:
    left: int = MAX_EMBEDS

    def spend(self) -> None:
        self.left -= 1
        if self.left < 0:
            raise InvalidFilter(f"fields embeds at most {MAX_EMBEDS} relations")


def parse_items(table: Table, fields: Any, links: Links | None, max_limit: int) -> tuple[Item, ...]:
    """`fields` (text or a JSON list) -> the columns and embeds each row holds, in order (every
    column for none). Without `links` (a read that does not embed) only columns are taken."""
    return _items(table, fields, links, max_limit, _Budget(), 0)


def _items(
    table: Table, fields: Any, links: Links | None, max_limit: int, budget: _Budget, depth: int
) -> tuple[Item, ...]:
    if fields is None or fields == "" or fields == []:
        return table.columns
    if isinstance(fields, str):
        terms: list[Any] = _split(fields, ",") if "(" in fields else fields.split(",")
    elif isinstance(fields, list):
        terms = fields
    else:
        raise InvalidFilter("fields is a list of column names (and relations to embed)")
    items: list[Item] = []
    for term in terms:
        if isinstance(term, Mapping):
            if not term:
                raise InvalidFilter("an object in fields names a relation to embed: {\"orders\": {...}}")
            for key, given in term.items():
                items.append(_embed(table, str(key), _from_json(str(key), given), links, max_limit, budget, depth))
            continue
        name = term.strip() if isinstance(term, str) else term
        if not isinstance(name, str) or table.column(name) is not None:
            items.append(column_of(table, name))  # a column's own name wins, whatever it holds
        elif name == "*":
            items.extend(table.columns)
        elif name.endswith(")") and "(" in name:
            head, _, inner = name[:-1].partition("(")
            items.append(_embed(table, head, _inner(inner), links, max_limit, budget, depth))
        else:
            items.append(column_of(table, name))
    _check_names(table, items)
    return tuple(items)


def _check_names(table: Table, items: Sequence[Item]) -> None:
    seen: set[str] = set()
    for item in items:
        if item.name in seen and any(isinstance(i, Embed) and i.name == item.name for i in items):
            raise InvalidFilter(
                f"fields of '{table.name}' name '{item.name}' twice: give the embedded rows another name "
                f"('other:{item.name}(...)')",
                {"name": item.name},
            )
        seen.add(item.name)


@dataclass
class _Spec:
    """What an embedding asks, from the text form or the JSON one."""

    fields: Any = None
    where: Any = None  # the JSON filter language's object
    filters: list[tuple[str, str]] | None = None  # or the query string's `col=op.value` pairs
    order: Any = None
    limit: Any = None
    offset: Any = None


def _inner(text: str) -> _Spec:
    """`id,total;order=total.desc;limit=5;status=eq.open` -> its _Spec."""
    fields, *options = _split(text, ";")
    spec = _Spec(fields=fields.strip(), filters=[])
    for option in options:
        name, equal, value = option.partition("=")
        name = name.strip()
        if not equal:
            raise InvalidFilter(
                f"'{shown(option, 60)}' inside an embedding is not name=value (order=, limit=, offset=, or a filter)"
            )
        if name in OPTIONS:
            if getattr(spec, name) is not None:
                raise InvalidFilter(f"'{name}' is given twice inside an embedding", {"option": name})
            setattr(spec, name, value)
        elif name in NOT_INSIDE:
            raise InvalidFilter(
                f"'{name}' does not go inside an embedding: it takes order=, limit=, offset= and filters",
                {"option": name},
            )
        else:
            spec.filters.append((name, value))  # type: ignore[union-attr]
    return spec


def _from_json(head: str, given: Any) -> _Spec:
    if not isinstance(given, Mapping):
        raise InvalidFilter(
            f"'{shown(head, 60)}' takes an object: "
            '{"fields": [...], "where": {...}, "order": "col.desc", "limit": n, "offset": n}'
        )
    unknown = sorted(str(k) for k in given if k not in ("fields", "where", *OPTIONS))
    if unknown:
        raise InvalidFilter(
            f"'{shown(head, 60)}' takes fields, where, order, limit and offset, not {shown(', '.join(unknown), 80)}"
        )
    return _Spec(**{k: given[k] for k in given})


def _embed(
    table: Table, head: str, spec: _Spec, links: Links | None, max_limit: int, budget: _Budget, depth: int
) -> Embed:
    if links is None:
        raise UnknownColumn(f"table '{table.name}' has no column '{shown(head)}'", {"column": shown(head)})
    if depth >= MAX_DEPTH:
        raise InvalidFilter(f"fields embeds at most {MAX_DEPTH} levels deep")
    budget.spend()
    alias, colon, target = head.strip().partition(":")
    if not colon:
        alias, target = "", alias
    name = alias.strip() if colon else target.partition("!")[0].strip()
    if not name:
        raise InvalidFilter(f"'{shown(head, 60)}' gives the embedded rows an empty name")
    if len(name) > MAX_NAME or not name.isprintable():
        raise InvalidFilter(
            f"'{shown(name, 60)}' is not a name for embedded rows: at most {MAX_NAME} printable characters",
            {"name": shown(name, 60)},
        )
    relation = find(table, links(table), target.strip())
    # Imported here: lists.py imports this module for the top level's fields.
    from app.query.lists import parse_int, parse_order

    target_table = relation.target
    items = _items(target_table, spec.fields, links, max_limit, budget, depth + 1)
    if spec.filters is not None:
        where = parse_query_params(target_table, spec.filters, links)
    else:
        where = parse_filter(target_table, spec.where, links)
    shaped = sorted(o for o in OPTIONS if getattr(spec, o) not in (None, ""))
    if not relation.many and shaped:
        raise InvalidFilter(
            f"'{name}' is one row of '{target_table.name}' (or none): it takes no {', '.join(shaped)}",
            {"relation": name},
        )
    limit = parse_int("limit", spec.limit, None, 1, max_limit)
    offset = parse_int("offset", spec.offset, 0, 0, None) or 0
    return Embed(
        name=name,
        relation=relation,
        items=items,
        where=where,
        order=_total(target_table, parse_order(target_table, spec.order)),
        limit=limit,
        offset=offset,
        cap=(limit if limit is not None else max_limit + 1) if relation.many else None,
    )


def _total(table: Table, order: tuple[tuple[Column, bool], ...]) -> tuple[tuple[Column, bool], ...]:
    """The order made total by the primary key, as a page's is (ties come in the same order as in a
    list of the table's rows)."""
    return keyset(table, order) or order


def _split(text: str, separator: str) -> list[str]:
    """`text` cut at `separator` outside parentheses."""
    parts, depth, start = [], 0, 0
    for at, char in enumerate(text):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                break
        elif char == separator and depth == 0:
            parts.append(text[start:at])
            start = at + 1
    if depth != 0:
        raise InvalidFilter(f"fields has unbalanced parentheses: '{shown(text, 80)}'")
    parts.append(text[start:])
    return parts


def columns_of(items: Sequence[Item]) -> tuple[Column, ...]:
    return tuple(i for i in items if isinstance(i, Column))


def tables_read(query: Any) -> set[str]:
    """The other tables a read reaches through relations: embedded (`query.items`) or filtered by
    (Exists in `query.where`, or in an embedding's own filter). `query`: a ListQuery, or a filter."""
    found: set[str] = set()
    if isinstance(query, (Condition, Group, Exists, Match)):
        _walk_node(query, found)
        return found
    if getattr(query, "where", None) is not None:
        _walk_node(query.where, found)
    for item in getattr(query, "items", ()):
        if isinstance(item, Embed):
            found.add(item.relation.target.name)
            found |= tables_read(item)
    return found


def _walk_node(node: Node, found: set[str]) -> None:
    if isinstance(node, Group):
        for item in node.items:
            _walk_node(item, found)
    elif isinstance(node, Exists):
        found.add(node.relation.target.name)
        if node.where is not None:
            _walk_node(node.where, found)
