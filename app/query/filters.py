"""The filter language and list options, parsed against a catalog table into a typed request.

Two surfaces, one result:
- JSON:  {"col": v} | {"col": null} | {"col": {"op": v, ...}} | {"or": [F, ...]} | {"and": [F, ...]}
- query: ?col=v | ?col=op.v (?age=gte.18, ?id=in.1,2,3), order=a.asc,b.desc, fields=a,b, limit, offset

Every column is looked up in the table (unknown -> 400 unknown_column) and every value converted for
its column (does not fit -> 422 invalid_value) before any SQL exists. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from app.core.echo import shown
from app.core.errors import InvalidFilter, UnknownColumn
from app.db.catalog import Column, Table
from app.db.relations import Relation, find, parse_name
from app.query import search
from app.query.nodes import Condition, Exists, Group, Match, Node
from app.query.operators import LIST_OPERATORS, OPERATORS
from app.rows.values import to_compare

MAX_DEPTH = 8
MAX_LIST = 1000  # values in one in/nin list
# The query string's list options (lists.py), never filters: filter such a column with POST /query.
RESERVED_PARAMS = ("limit", "offset", "order", "fields", "cursor", "count")
SEARCH_PARAMS = ("q", "q.index")  # a full-text search over the table's FULLTEXT index, unless a column is so named


# A table's relations (the catalog's): given to the parsers of reads, where `customer.country`
# filters by a related row's column. Without it (writes) a dotted name is only ever a column's.
Links = Callable[[Table], Sequence[Relation]]


def column_of(table: Table, name: Any) -> Column:
    column = table.column(name) if isinstance(name, str) else None
    if column is None:
        raise UnknownColumn(f"table '{table.name}' has no column '{shown(name)}'", {"column": shown(name)})
    return column


MAX_PATH = 5  # relations a filter's path may follow (customer.orders.lines.sku: 3)


def condition(table: Table, name: str, op: str, value: Any, *, text: bool, links: Links | None = None) -> Node:
    """A condition on a column of `table` or, with `links`, on a related row: `customer.country`
    (the row has a related row whose column matches), `orders` with is_null (has no such rows, or
    has some). A column's own name wins over a relation's path."""
    if links is not None and isinstance(name, str) and table.column(name) is None:
        related = _related(table, name, op, value, text, links)
        if related is not None:
            return related
    column = column_of(table, name)
    if op in FULLTEXT_OPS:
        return match(table, (column,), value, boolean=op == "bfts")
    return condition_on(column, op, value, text, lambda v: _scalar(column, op, v, text))


FULLTEXT_OPS = ("fts", "bfts")
MAX_WORDS = 1000  # characters of a full-text search


def match(table: Table, columns: tuple[Column, ...] | None, words: Any, *, boolean: bool = False,
          index: str | None = None) -> Match:
    """A full-text search over a FULLTEXT index: the one whose columns are `columns`, or the one
    named `index`, or (neither given) the table's only one. Never a scan: without such an index, 400
    naming the indexes there are."""
    if not isinstance(words, str) or len(words) > MAX_WORDS:
        raise InvalidFilter(f"a full-text search takes words: a text of at most {MAX_WORDS} characters")
    words = search.boolean(words) if boolean else search.natural(words)
    if not words.strip("()+-~<> "):
        raise InvalidFilter("a full-text search takes words: this one has none"
                            + (" (q.index names the index ?q= searches: give ?q=words too)" if index and columns is None
                               else ""))
    indexes = dict(table.fulltext)
    there = {name: [c.name for c in cs] for name, cs in indexes.items()}
    if index is not None:
        found = indexes.get(index)
    elif columns is not None:
        found = next((cs for cs in indexes.values() if set(cs) == set(columns)), None)
    else:
        found = next(iter(indexes.values())) if len(indexes) == 1 else None
    if found is None:
        wanted = (f"no FULLTEXT index named '{shown(index, 64)}'" if index is not None
                  else f"no FULLTEXT index on '{columns[0].name}' alone" if columns is not None
                  else "several FULLTEXT indexes: say which with q.index=" if there
                  else "no FULLTEXT index")
        listed = "; ".join(f"{n} ({', '.join(cs)})" for n, cs in there.items())
        raise InvalidFilter(
            f"'{table.name}' has {wanted}: "
            + (f"its FULLTEXT indexes are {listed}" if there else "a search would read every row"),
            {"fulltext": there},
        )
    return Match(found, words, boolean)


def _related(table: Table, name: str, op: str, value: Any, text: bool, links: Links) -> Exists | None:
    head, dot, rest = name.partition(".")
    relations = links(table)
    if not any(parse_name(head)[0] in r.names for r in relations):
        return None  # not a relation's name: the caller's 400 is about a column
    if name.count(".") > MAX_PATH:  # each step is a nested EXISTS: MariaDB stops at 64 levels
        raise InvalidFilter(f"a filter follows at most {MAX_PATH} relations ('{shown(name, 60)}')",
                            {"column": shown(name, 60)})
    relation = find(table, relations, head)
    if dot:
        return Exists(relation, condition(relation.target, rest, op, value, text=text, links=links))
    if op == "eq" and value is None and not text:  # {"orders": null}, as {"col": null} is IS NULL
        return Exists(relation, None, negated=True)
    if op != "is_null":
        raise InvalidFilter(
            f"'{shown(name, 60)}' is a relation: filter by its columns ('{shown(name, 60)}.column') or test it "
            "with is_null (true: no related row)",
            {"relation": shown(name, 60)},
        )
    return Exists(relation, None, negated=_flag(name, value, text))


def merged(items: Sequence[Node]) -> list[Node]:
    """ANDed conditions on one relation as one: `orders.total=gt.100&orders.status=eq.open` asks for
    a row with an order that is both (not one order of each)."""
    out: list[Node] = []
    by_relation: dict[tuple[str, str, str], int] = {}
    for item in items:
        if isinstance(item, Exists) and item.where is not None and not item.negated:
            ident = (item.relation.key.name, item.relation.source.name, item.relation.target.name)
            at = by_relation.get(ident)
            if at is not None:
                before = out[at]
                assert isinstance(before, Exists) and before.where is not None
                inner = merged([*_anded(before.where), *_anded(item.where)])
                out[at] = Exists(item.relation, inner[0] if len(inner) == 1 else Group("and", tuple(inner)))
                continue
            by_relation[ident] = len(out)
        out.append(item)
    return out


def _anded(node: Node) -> tuple[Node, ...]:
    return node.items if isinstance(node, Group) and node.op == "and" else (node,)


def condition_on(target: Any, op: str, value: Any, text: bool, scalar: Callable[[Any], Any]) -> Condition:
    """A condition on `target` (a column, or anything with a `name` and a `quoted` SQL expression:
    an aggregate's result); `scalar` converts one value for it."""
    name = target.name
    if op in FULLTEXT_OPS:
        raise InvalidFilter(f"'{op}' searches a table's column with a FULLTEXT index, not '{name}'")
    if op not in OPERATORS:
        raise InvalidFilter(f"unknown operator '{shown(op, 40)}' for '{name}'", {"operator": shown(op, 40)})
    if op == "is_null":
        return Condition(target, op, _flag(name, value, text))
    if op in LIST_OPERATORS:
        items = value.split(",") if text and isinstance(value, str) else value
        if not isinstance(items, list | tuple):
            raise InvalidFilter(f"'{op}' on '{name}' takes a list of values")
        if op == "between" and len(items) != 2:
            raise InvalidFilter(f"'between' on '{name}' takes exactly two values")
        if len(items) > MAX_LIST:
            raise InvalidFilter(f"'{op}' on '{name}' takes at most {MAX_LIST} values", {"values": len(items)})
        return Condition(target, op, tuple(scalar(v) for v in items))
    if value is None and op in ("eq", "ne"):
        return Condition(target, "is_null", op == "eq")
    return Condition(target, op, scalar(value))


def _flag(name: str, value: Any, text: bool) -> bool:
    flag = value if isinstance(value, bool) else str(value).lower() if text else value
    if flag not in (True, False, "true", "false"):
        raise InvalidFilter(f"is_null on '{shown(name, 60)}' takes true or false")
    return flag in (True, "true")


def _scalar(column: Column, op: str, value: Any, text: bool) -> Any:
    if value is None or isinstance(value, (dict, list)):
        raise InvalidFilter(f"'{op}' on '{column.name}' takes a single non-null value")
    if op == "like":
        if not isinstance(value, (str, int, float)):
            raise InvalidFilter(f"'like' on '{column.name}' takes a pattern string")
        return str(value)
    return to_compare(column, value, text=text)


def parse_filter(table: Table, spec: Any, links: Links | None = None) -> Node | None:
    """JSON filter -> Node (None for an empty filter)."""
    return parse_tree(spec, lambda name, op, value: condition(table, name, op, value, text=False, links=links))


def parse_tree(
    spec: Any, leaf: Callable[[str, str, Any], Node], what: str = "a filter", depth: int = 0
) -> Node | None:
    """The JSON filter language's shape: {name: value}, {name: {op: value, ...}}, {"or": [...]},
    {"and": [...]}; `leaf` makes each condition (a column's here, a result column's for `having`)."""
    if depth > MAX_DEPTH:
        raise InvalidFilter(f"{what} nested deeper than {MAX_DEPTH} levels")
    if spec is None:
        return None
    if not isinstance(spec, dict):
        raise InvalidFilter(f"{what} is a JSON object: {{\"column\": value, ...}}")
    items: list[Node] = []
    for key, value in spec.items():
        if key in ("and", "or"):
            if not isinstance(value, list):
                raise InvalidFilter(f"'{key}' takes a list of filters")
            parts = [p for p in (parse_tree(v, leaf, what, depth + 1) for v in value) if p is not None]
            if parts:
                items.append(parts[0] if len(parts) == 1 else Group(key, tuple(parts)))
            elif key == "or":
                raise InvalidFilter("'or' needs at least one non-empty filter")
        elif isinstance(value, dict):
            if not value:
                raise InvalidFilter(f"no operator given for '{shown(key, 60)}'")
            items.extend(leaf(key, op, v) for op, v in value.items())
        else:
            items.append(leaf(key, "eq", value))
    items = merged(items)
    if not items:
        return None
    return items[0] if len(items) == 1 else Group("and", tuple(items))


def parse_query_params(
    table: Table, params: Iterable[tuple[str, str]], links: Links | None = None
) -> Node | None:
    """?col=value / ?col=op.value pairs (the list options' names skipped) -> Node, ANDed; `?q=words`
    (`&q.index=name` where the table has several) searches the table's FULLTEXT index."""
    params = list(params)
    items: list[Node] = []
    search = {n: v for n, v in params if n in SEARCH_PARAMS and table.column(n) is None}
    if len(search) < sum(1 for n, _ in params if n in search):
        raise InvalidFilter("q and q.index are given once (a search's words go in one q)")
    if search:
        items.append(match(table, None, search.get("q"), index=search.get("q.index")))
    for name, raw in params:
        if name in RESERVED_PARAMS or name in search:
            continue
        op, _, rest = raw.partition(".")
        if op in OPERATORS and _:
            items.append(condition(table, name, op, rest, text=True, links=links))
        else:
            items.append(condition(table, name, "eq", raw, text=True, links=links))
    items = merged(items)
    if not items:
        return None
    return items[0] if len(items) == 1 else Group("and", tuple(items))


def key_values(table: Table, key: str) -> tuple[Any, ...]:
    """`/api/t/42` or, for a composite key, `/api/t/7,3` (in key column order) -> converted values."""
    if not table.primary_key:
        raise InvalidFilter(f"table '{table.name}' has no primary key; use /api/{table.name}/query")
    parts = key.split(",") if len(table.primary_key) > 1 else [key]
    if len(parts) != len(table.primary_key):
        names = ",".join(c.name for c in table.primary_key)
        raise InvalidFilter(f"the key of '{table.name}' has {len(table.primary_key)} parts: {names}")
    return tuple(to_compare(c, v, text=True) for c, v in zip(table.primary_key, parts))


def equals(columns: tuple[Column, ...], values: tuple[Any, ...]) -> Node:
    items = tuple(Condition(c, "eq", v) for c, v in zip(columns, values))
    return items[0] if len(items) == 1 else Group("and", items)


def key_condition(table: Table, key: str) -> Node:
    return equals(table.primary_key, key_values(table, key))
