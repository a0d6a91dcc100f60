"""Pure SQL builders: (catalog Table, parsed request) -> (sql, params). No I/O.

Identifiers come only from catalog objects (`Column.quoted`, `Table.quoted`); every value is a `%s`
parameter. The only literal SQL words besides those are the fixed keywords written here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from app.core.catalog import Column, Table
from app.core.filters import Condition, Group, ListQuery, Node

Statement = tuple[str, tuple[Any, ...]]

_COMPARISONS = {"eq": "=", "ne": "<>", "gt": ">", "gte": ">=", "lt": "<", "lte": "<=", "like": "LIKE"}


def where_sql(node: Node) -> Statement:
    if isinstance(node, Group):
        parts = [where_sql(item) for item in node.items]
        joiner = " AND " if node.op == "and" else " OR "
        return "(" + joiner.join(p[0] for p in parts) + ")", tuple(v for p in parts for v in p[1])
    column, op, value = node.column.quoted, node.op, node.value
    if op == "is_null":
        return f"{column} IS {'' if value else 'NOT '}NULL", ()
    if op in ("in", "nin"):
        if not value:  # x IN () is not SQL: an empty list matches nothing (in) or everything (nin)
            return ("1=0" if op == "in" else "1=1"), ()
        marks = ",".join(["%s"] * len(value))
        return f"{column} {'IN' if op == 'in' else 'NOT IN'} ({marks})", tuple(value)
    if op == "between":
        return f"{column} BETWEEN %s AND %s", tuple(value)
    return f"{column} {_COMPARISONS[op]} %s", (value,)


def _where(node: Node | None) -> Statement:
    if node is None:
        return "", ()
    sql, params = where_sql(node)
    return " WHERE " + sql, params


def column_list(columns: Sequence[Column]) -> str:
    return ", ".join(c.quoted for c in columns)


def select(table: Table, query: ListQuery, *, extra_row: bool = False) -> Statement:
    """SELECT for a list page; `extra_row` asks for limit+1 rows to learn whether a next page exists."""
    where, params = _where(query.where)
    sql = f"SELECT {column_list(query.fields)} FROM {table.quoted}{where}"
    if query.order:
        sql += " ORDER BY " + ", ".join(f"{c.quoted} {'DESC' if d else 'ASC'}" for c, d in query.order)
    if query.limit is not None:
        sql += " LIMIT %s"
        params += (query.limit + 1 if extra_row else query.limit,)
    if query.offset:
        if query.limit is None:
            sql += " LIMIT 18446744073709551615"  # MySQL has no OFFSET without LIMIT
        sql += " OFFSET %s"
        params += (query.offset,)
    return sql, params


def select_where(table: Table, where: Node, columns: Sequence[Column] | None = None) -> Statement:
    clause, params = _where(where)
    return f"SELECT {column_list(columns or table.columns)} FROM {table.quoted}{clause}", params


Mode = Literal["insert", "ignore", "upsert"]


def insert(
    table: Table,
    columns: Sequence[Column],
    rows: Sequence[Sequence[Any]],
    *,
    mode: Mode = "insert",
    returning: bool = False,
    defaults: Sequence[Sequence[bool]] | None = None,
) -> Statement:
    """Multi-row INSERT. `defaults[i][j]` writes DEFAULT for that cell (a bulk row that omits a column)."""
    params: list[Any] = []
    tuples = []
    for i, row in enumerate(rows):
        cells = []
        for j, value in enumerate(row):
            if defaults is not None and defaults[i][j]:
                cells.append("DEFAULT")
            else:
                cells.append("%s")
                params.append(value)
        tuples.append("(" + ",".join(cells) + ")")
    verb = "INSERT IGNORE INTO" if mode == "ignore" else "INSERT INTO"
    # With no columns, `INSERT INTO t () VALUES (),()` gives every column its default.
    sql = f"{verb} {table.quoted} ({column_list(columns)}) VALUES " + ",".join(tuples)
    if mode == "upsert":
        keys = {c.name for c in table.primary_key}
        updates = [c for c in columns if c.name not in keys] or list(columns[:1])
        sql += " ON DUPLICATE KEY UPDATE " + ", ".join(f"{c.quoted}=VALUES({c.quoted})" for c in updates)
    if returning:
        sql += f" RETURNING {column_list(table.columns)}"
    return sql, tuple(params)


def update(table: Table, values: Mapping[Column, Any], where: Node) -> Statement:
    assignments = ", ".join(f"{c.quoted} = %s" for c in values)
    clause, params = _where(where)
    return f"UPDATE {table.quoted} SET {assignments}{clause}", tuple(values.values()) + params


def delete(table: Table, where: Node) -> Statement:
    clause, params = _where(where)
    return f"DELETE FROM {table.quoted}{clause}", params
