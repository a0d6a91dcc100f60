"""`count=estimated`: a table's row count from the server's statistics, or a filter's from its plan,
without reading the rows (pure: the statements, and reading what they answer)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from app.core import jsontext
from app.db.catalog import Table
from app.query.nodes import Node
from app.query.sql import Statement, count


def table_rows(table: Table) -> Statement:
    """InnoDB's own estimate of a whole table's rows (exact for MyISAM and Aria; NULL for a view)."""
    return (
        "SELECT TABLE_ROWS FROM INFORMATION_SCHEMA.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s",
        (table.name,),
    )


def plan(table: Table, where: Node) -> Statement:
    """The optimizer's plan of the filtered count, as JSON (MariaDB 10.1+, MySQL 5.6+)."""
    statement, params = count(table, where)
    return f"EXPLAIN FORMAT=JSON {statement}", params


def planned_rows(text: str | bytes, table: Table) -> int | None:
    """The rows the plan expects `table` to give: rows examined times the share the condition keeps
    (MariaDB: `rows`, `filtered` a number; MySQL: `rows_examined_per_scan`, `filtered` a string).
    None when the plan does not say (a plan of another shape: count them instead)."""
    try:
        document = jsontext.parse(text)
    except ValueError:
        return None
    for entry in _tables(document):
        if entry.get("table_name") != table.name:
            continue
        rows, filtered = entry.get("rows", entry.get("rows_examined_per_scan")), entry.get("filtered", 100)
        if not isinstance(rows, (int, float, str)) or not isinstance(filtered, (int, float, str)):
            return None
        try:
            return max(0, round(float(rows) * float(filtered) / 100))
        except ValueError:
            return None
    return None


def _tables(node: Any) -> Iterator[dict]:
    """Every `"table": {...}` in a plan, outermost first."""
    if isinstance(node, dict):
        table = node.get("table")
        if isinstance(table, dict):
            yield table
        for value in node.values():
            yield from _tables(value)
    elif isinstance(node, list):
        for value in node:
            yield from _tables(value)
