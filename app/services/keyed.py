"""The rows of a write as keys and columns (pure): a PATCH list's keys and changes grouped by the
columns they set, an upsert's keys, the keys of rows written and not read back, the runs of rows
that give the same columns."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.core.errors import GatewayError, InvalidBody, InvalidFilter
from app.db.catalog import Column, Table
from app.db.session import StatementResult
from app.query.filters import column_of
from app.query.sql import Mode
from app.rows.values import OMITTED, to_db


def has_omitted_cells(values: list[list[Any]]) -> bool:
    return any(OMITTED in row for row in values)


def prepare_values(table: Table, values: Mapping[str, Any]) -> dict[Column, Any]:
    if not isinstance(values, Mapping) or not values:
        raise InvalidBody("'input' must name at least one column to set")
    return {column: to_db(column, value) for column, value in ((column_of(table, n), v) for n, v in values.items())}


def written_keys(
    table: Table, columns: list[Column], values: list[list[Any]], result: StatementResult, duplicates: Mode
) -> list[dict]:
    """The keys of rows written and not read back: given in every row, or (a plain insert) the
    AUTO_INCREMENT ids the server gave them, consecutive from `last_id`; [] when not known."""
    pk = table.primary_key
    if pk and all(c in columns for c in pk):
        at = [columns.index(c) for c in pk]
        keys = [{c.name: row[i] for c, i in zip(pk, at)} for row in values]
        return [] if any(v is None or v is OMITTED for key in keys for v in key.values()) else keys
    if duplicates == "insert" and len(pk) == 1 and pk[0].auto_increment and result.last_id:
        return [{pk[0].name: result.last_id + i} for i in range(len(values))]
    return []


Changes = tuple[list[tuple], list[tuple], dict[tuple[Column, ...], list[int]]]


def keyed_changes(table: Table, rows: list[Any]) -> Changes:
    """A PATCH list: each row's primary key, its new values, and the rows' indexes grouped by the
    columns they set (in the order first seen), so each group is one UPDATE."""
    pk = table.primary_key
    if not pk:
        raise InvalidFilter(f"table '{table.name}' has no primary key: update by a filter with PUT /api/{table.name}")
    keys: list[tuple] = []
    values: list[tuple] = []
    groups: dict[tuple[Column, ...], list[int]] = {}
    for index, row in enumerate(rows):
        try:
            if not isinstance(row, Mapping):
                raise InvalidBody("must be an object holding the primary key and the new values")
            given = prepare_values(table, row)
            if missing := [c.name for c in pk if c not in given]:
                raise InvalidBody(f"lacks its primary key ({', '.join(missing)})")
            changes = {c: v for c, v in given.items() if c not in pk}
            if not changes:
                raise InvalidBody("sets no column besides its key")
        except GatewayError as exc:
            raise type(exc)(f"row {index}: {exc.message}", {"row": index} | as_details(exc.details)) from None
        key = tuple(given[c] for c in pk)
        if key in keys:
            raise InvalidBody(f"row {index}: its key is also row {keys.index(key)}'s", {"row": index})
        keys.append(key)
        values.append(tuple(changes.values()))
        groups.setdefault(tuple(changes), []).append(index)
    return keys, values, groups


def as_details(details: Any) -> dict:
    return details if isinstance(details, dict) else {} if details is None else {"details": details}


def named_key(columns: tuple[Column, ...], key: tuple) -> dict:
    return {c.name: v for c, v in zip(columns, key)}


def one_row_per_key(table: Table, columns: list[Column], values: list[list[Any]]) -> None:
    """An upsert's rows name each key once: a second row with a key would update the first's within
    the statement, and the answer would hold a row that was never stored."""
    pk = table.primary_key
    if not pk or not all(c in columns for c in pk):
        return
    at = [columns.index(c) for c in pk]
    seen: dict[tuple, int] = {}
    for index, row in enumerate(values):
        key = tuple(row[i] for i in at)
        if OMITTED in key or None in key:
            continue
        if key in seen:
            raise InvalidBody(f"rows {seen[key]} and {index} have the same key: an upsert takes each key once",
                              {"rows": [seen[key], index]})
        seen[key] = index


def given_columns(columns: list[Column], values: list[list[Any]]) -> tuple[list[Column], list[list[Any]]]:
    """Rows that all leave the same columns out, without those columns."""
    kept = [j for j, v in enumerate(values[0]) if v is not OMITTED]
    return [columns[j] for j in kept], [[row[j] for j in kept] for row in values]
