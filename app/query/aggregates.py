"""Aggregates over the filter language, parsed against a catalog table (pure, no I/O).

    GET  /api/{table}/aggregate?group_by=department,city&count=*&sum=salary&avg=salary
         &min=hired_at&max=hired_at&having=count.gt.10&order=count.desc&limit=20 (+ /query filters)
    POST /api/{table}/aggregate {"input": FILTER, "group_by": [...], "aggregates": {"sum": ["salary"]},
         "having": {"count": {"gt": 10}}, "order_by": "count.desc", "limit": 20}

Functions: count (`*`: rows; a column: its non-NULL values), count_distinct, sum, avg, min, max.
Each result column is named predictably: `count`, `count_<col>`, `count_distinct_<col>`,
`sum_<col>`, `avg_<col>`, `min_<col>`, `max_<col>`; group columns keep their names. `having` and
`order` name result columns. Identifiers come only from the catalog; values are parameters.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Callable

from app.core.echo import shown
from app.core.errors import InvalidAggregate, InvalidFilter
from app.db.catalog import Column, Table, quote
from app.query.filters import RESERVED_PARAMS, column_of, condition_on, parse_tree
from app.query.lists import parse_int
from app.query.nodes import Condition, Group, Node
from app.query.operators import OPERATORS
from app.rows.values import json_out, output_fixers, to_compare

FUNCTIONS = ("count", "count_distinct", "sum", "avg", "min", "max")
NUMERIC_KINDS = ("int", "decimal", "float", "bool")
AGGREGATE_PARAMS = ("group_by", "having", *FUNCTIONS)
PARAMS = (*RESERVED_PARAMS, *AGGREGATE_PARAMS)


@dataclass(frozen=True, slots=True)
class ResultColumn:
    """One result column: a group column or an aggregate. `quoted` is its SQL expression, so a
    Condition or an order term over it renders like one over a column (sql.py)."""

    name: str
    quoted: str  # the expression: `dept` or SUM(`salary`)
    function: str | None = None  # None: a group column
    column: Column | None = None  # None: COUNT(*)

    @property
    def alias(self) -> str:
        return quote(self.name)


@dataclass(frozen=True, slots=True)
class AggregateQuery:
    where: Node | None
    group_by: tuple[ResultColumn, ...]
    aggregates: tuple[ResultColumn, ...]
    having: Node | None
    order: tuple[tuple[ResultColumn, bool], ...]
    limit: int | None
    offset: int

    @property
    def results(self) -> tuple[ResultColumn, ...]:
        return self.group_by + self.aggregates


def aggregate_of(function: str, column: Column | None) -> ResultColumn:
    if function not in FUNCTIONS:
        raise InvalidAggregate(
            f"unknown function '{shown(function, 40)}': use {', '.join(FUNCTIONS)}", {"function": shown(function, 40)}
        )
    if column is None:
        if function != "count":
            raise InvalidAggregate(f"'{function}' takes a column, not '*'")
        return ResultColumn("count", "COUNT(*)", "count")
    if function in ("sum", "avg") and column.kind not in NUMERIC_KINDS:
        raise InvalidAggregate(
            f"'{function}' needs a numeric column, and '{column.name}' is {column.data_type}",
            {"function": function, "column": column.name},
        )
    sql = {"count_distinct": "COUNT(DISTINCT {})"}.get(function, function.upper() + "({})").format(column.quoted)
    if column.kind == "bit" and function in ("min", "max"):
        sql += " + 0"  # MIN of a BIT column comes back as the digits' text: as a number, like GET shows it
    return ResultColumn(f"{function}_{column.name}", sql, function, column)


def _names(spec: Any, what: str) -> list[str]:
    """`a,b` or ["a", "b"] -> names."""
    if isinstance(spec, str):
        return [n.strip() for n in spec.split(",") if n.strip()]
    if isinstance(spec, list) and all(isinstance(n, str) for n in spec):
        return [n.strip() for n in spec]
    raise InvalidAggregate(f"{what} takes column names: 'a,b' or [\"a\", \"b\"]")


def _aggregates(table: Table, functions: Iterable[tuple[str, Any]]) -> tuple[ResultColumn, ...]:
    found: dict[str, ResultColumn] = {}
    for function, spec in functions:
        for name in _names(spec, function):
            result = aggregate_of(function, None if name == "*" else column_of(table, name))
            found.setdefault(result.name, result)
    return tuple(found.values()) or (aggregate_of("count", None),)


def _scalar(result: ResultColumn, op: str, value: Any, text: bool) -> Any:
    """A value compared with a result column: typed like the column for group columns, min and
    max; a number for counts, sums and averages."""
    if value is None or isinstance(value, (dict, list)):
        raise InvalidFilter(f"'{op}' on '{result.name}' takes a single non-null value")
    if result.function in (None, "min", "max"):
        assert result.column is not None
        return str(value) if op == "like" else to_compare(result.column, value, text=text)
    if op == "like":
        raise InvalidFilter(f"'like' does not apply to '{result.name}', a number")
    try:
        number = None if isinstance(value, bool) else Decimal(value if isinstance(value, str) else str(value))
    except (InvalidOperation, ValueError):
        number = None
    if number is None or not number.is_finite():
        raise InvalidFilter(f"'{op}' on '{result.name}' takes a number", {"value": shown(value, 40)})
    return number


def _condition(result: ResultColumn, op: str, value: Any, text: bool) -> Condition:
    return condition_on(result, op, value, text, lambda v: _scalar(result, op, v, text))


class Results(dict):
    """The result columns by name; `having` and `order` may also name an aggregate that is not
    selected (`having=count.gt.1` with only `sum=salary`), as SQL allows."""

    def __init__(self, table: Table, results: Iterable[ResultColumn]):
        super().__init__((r.name, r) for r in results)
        self.table = table

    def find(self, name: str) -> ResultColumn | None:
        if name in self:
            return self[name]
        if name == "count":
            return aggregate_of("count", None)
        for function in ("count_distinct", "count", "sum", "avg", "min", "max"):
            column = self.table.column(name[len(function) + 1 :]) if name.startswith(function + "_") else None
            if column is not None:
                return aggregate_of(function, column)
        return None


def _result_named(results: Results, name: Any) -> ResultColumn:
    if isinstance(name, str) and (found := results.find(name)) is not None:
        return found
    raise InvalidAggregate(
        f"'{shown(name, 60)}' is not a result column here: use one of {', '.join(results)}",
        {"name": shown(name, 60), "results": list(results)},
    )


def _having_params(results: Results, terms: list[str]) -> Node | None:
    """`count.gt.10`, `sum_salary.gte.100000`, `department.eq.Sales` (a name may hold dots: the
    longest that names a result is taken)."""
    items: list[Node] = []
    for term in terms:
        cuts = [i for i, char in enumerate(term) if char == "."]
        found = next(((term[:i], r) for i in reversed(cuts) if (r := results.find(term[:i])) is not None), None)
        if found is None:
            raise InvalidAggregate(
                f"having '{shown(term, 60)}' must start with a result column or an aggregate: {', '.join(results)}",
                {"having": shown(term, 60)},
            )
        name, result = found
        op, dot, value = term[len(name) + 1 :].partition(".")
        if not dot or op not in OPERATORS:
            op, value = "eq", term[len(name) + 1 :]
        items.append(_condition(result, op, value, text=True))
    if not items:
        return None
    return items[0] if len(items) == 1 else Group("and", tuple(items))


def _having_json(results: Results, spec: Any) -> Node | None:
    def leaf(name: str, op: str, value: Any) -> Condition:
        return _condition(_result_named(results, name), op, value, text=False)

    return parse_tree(spec, leaf, "having")


def _order(results: Results, group_by: tuple[ResultColumn, ...], spec: Any) -> tuple[tuple[ResultColumn, bool], ...]:
    """`count.desc,department` or a list; by default the group columns, so pages are stable."""
    if spec is None or spec == "" or spec == []:
        return tuple((g, False) for g in group_by)
    terms = spec.split(",") if isinstance(spec, str) else spec
    if not isinstance(terms, list):
        raise InvalidFilter("order is 'name.asc,name2.desc' or a list of such terms")
    order = []
    for term in terms:
        if not isinstance(term, str):
            raise InvalidFilter("order terms are strings like 'count.desc'")
        term = term.strip()
        name = term.removeprefix("-")
        if (found := results.find(name)) is not None:
            order.append((found, term.startswith("-")))
            continue
        prefix, _, direction = name.rpartition(".")
        if direction.lower() not in ("asc", "desc") or term.startswith("-"):
            _result_named(results, name)
        order.append((_result_named(results, prefix), direction.lower() == "desc"))
    return tuple(order)


def aggregate_query(
    table: Table,
    where: Node | None,
    *,
    group_by: Any = None,
    functions: Iterable[tuple[str, Any]] = (),
    having: Callable[[Results], Node | None] = lambda results: None,
    order: Any = None,
    limit: Any = None,
    offset: Any = None,
    default_limit: int | None,
    max_limit: int | None,
) -> AggregateQuery:
    groups = tuple(
        ResultColumn(c.name, c.quoted, None, c)
        for c in (column_of(table, n) for n in _names(group_by or [], "group_by"))
    )
    if len({g.name for g in groups}) != len(groups):
        raise InvalidAggregate("a column is named twice in group_by")
    aggregates = _aggregates(table, functions)
    results = Results(table, groups + aggregates)
    if len(results) != len(groups) + len(aggregates):
        raise InvalidAggregate("two result columns would have one name: a group column is named like an aggregate")
    return AggregateQuery(
        where=where,
        group_by=groups,
        aggregates=aggregates,
        having=having(results),
        order=_order(results, groups, order),
        limit=parse_int("limit", limit, default_limit if groups else None, 1, max_limit),
        offset=parse_int("offset", offset, 0, 0, None) or 0,
    )


def from_params(table: Table, params: list[tuple[str, str]], where: Node | None, **limits: Any) -> AggregateQuery:
    """GET: the query string's aggregate parameters (filters are parsed by the caller)."""
    values: dict[str, list[str]] = {}
    for name, value in params:
        values.setdefault(name, []).append(value)
    single = {name: vs[-1] for name, vs in values.items() if name in ("group_by", "order", "limit", "offset")}
    return aggregate_query(
        table,
        where,
        group_by=",".join(values.get("group_by", [])) or None,
        functions=[(name, value) for name, value in params if name in FUNCTIONS],
        having=lambda results: _having_params(results, values.get("having", [])),
        order=single.get("order"),
        limit=single.get("limit"),
        offset=single.get("offset"),
        **limits,
    )


def from_body(table: Table, where: Node | None, body: Mapping[str, Any], **limits: Any) -> AggregateQuery:
    """POST: {"group_by", "aggregates": {"sum": ["salary"], ...}, "having", "order_by", "limit", "offset"}."""
    spec = body.get("aggregates")
    if spec is not None and not isinstance(spec, dict):
        raise InvalidAggregate('aggregates is an object: {"count": ["*"], "sum": ["salary"]}')
    return aggregate_query(
        table,
        where,
        group_by=body.get("group_by"),
        functions=list((spec or {}).items()),
        having=lambda results: _having_json(results, body.get("having")),
        order=body.get("order_by"),
        limit=body.get("limit"),
        offset=body.get("offset"),
        **limits,
    )


def fixers(query: AggregateQuery) -> list[tuple[str, Callable[[Any], Any]]]:
    """Results typed like rows: a sum of integers is an integer (MariaDB answers DECIMAL), decimals
    and averages stay exact (the envelope writes them as strings), JSON and BIT as GET shows them."""
    out = output_fixers(tuple(g.column for g in query.group_by if g.column is not None))  # named as the columns
    for result in query.aggregates:
        column = result.column
        if column is None:
            continue
        if result.function in ("min", "max") and column.kind == "json":  # (BIT min/max are numbers: `+ 0`)
            out.append((result.name, json_out))
        elif result.function == "sum" and column.kind in ("int", "bool"):
            out.append((result.name, _integral))
    return out


def _integral(value: Any) -> Any:
    number = int(value)
    return number if -(2**63) <= number < 2**64 else str(number)  # JSON readers lose past 64 bits
