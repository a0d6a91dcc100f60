"""The import plan: which cells of a record go into which columns, converted how (pure).

The header is checked against the catalog before anything is written (unknown, duplicate and missing
required columns are one 400 listing them); generated columns in it are read and skipped. Each
column gets one converter for the source's kind of cells, built once per import (values.py).
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, Literal

from app.core.errors import InvalidHeader, InvalidValue, MissingColumn
from app.db.catalog import Column, Table
from app.rows.problems import RowProblem
from app.rows.values import (
    OMITTED,
    QUOTED_TEXT,
    TEXT_KINDS,
    canonical_check,
    empty_is_null,
    text_converter,
    to_db,
    value_converter,
)

Record = tuple[int, list[Any]]  # (position, cells)
Cells = Literal["text", "sheet", "json"]  # what a record's cells are: CSV text, spreadsheet cells, JSON values
Row = tuple[int, Any]  # (position, converted values)
# What converting one row may raise: a value that does not fit, a required column left out.
ROW_ERRORS = (InvalidValue, MissingColumn)

TextCheck = Callable[[Sequence[str]], bool]  # does the server read a column of cells as we would?


class BareNull(int):
    """NULL in the canonical CSV for LOAD DATA: csv.writer leaves numbers unquoted (QUOTE_NONNUMERIC)
    and writes str(), so this comes out as the bare word NULL, which LOAD DATA reads as NULL (a
    quoted "NULL" stays a string)."""

    def __str__(self) -> str:
        return "NULL"

    __repr__ = __str__


BARE_NULL = BareNull(0)


@dataclass(frozen=True)
class ImportPlan:
    columns: tuple[Column, ...]  # written, in header order
    positions: tuple[int, ...]  # their cell positions in a record
    width: int  # cells per record
    converters: tuple[Callable[[Any], Any], ...] = ()
    load_data: bool = False  # values are ready for LOAD DATA (NULL as BARE_NULL, binary as base64)
    null: str = "\\N"  # the cell text that is NULL
    standard: bool = False  # CSV's standard convention (values.text_converter): no `?null=` given
    header_columns: tuple[Column | None, ...] = ()  # per cell: its column, None if generated
    # Per cell, a check that a batch's CSV text can go to LOAD DATA as uploaded (None: never).
    checks: tuple[TextCheck, ...] | None = None
    cells: Cells = "text"
    delimiter: str = ","
    defaulted: frozenset[Column] = frozenset()  # JSON: columns a record may leave to their DEFAULT

    def key_converter(self, column: Column) -> Callable[[Any], Any]:
        """One cell -> its database value, None for NULL (the duplicate probe compares keys)."""
        if self.cells == "text":
            if column.kind in ("int", "string"):  # the fast converters give what the database gives back
                return text_converter(column, self.null, standard=self.standard)
            null, standard, text_like = self.null, self.standard, column.kind in TEXT_KINDS
            empty_null = empty_is_null(column, standard)

            def text(cell: str) -> Any:
                if standard and cell in QUOTED_TEXT:
                    if not text_like:
                        return None
                    cell = QUOTED_TEXT[cell]
                elif cell == null or (not cell and empty_null):
                    return None
                return to_db(column, cell, text=True)

            return text
        convert = value_converter(
            column, self.null if self.cells == "sheet" else None, text_cells=self.cells == "sheet"
        )
        return lambda cell: None if cell is OMITTED else convert(cell)


def plan_import(
    table: Table,
    header: list[str],
    null: str | None = None,
    *,
    load_data: bool = False,
    cells: Cells = "text",
    delimiter: str = ",",
    required: bool = True,
) -> ImportPlan:
    """Check a header against the table (`required`: and that it names every required column).
    Generated columns are skipped: the server computes them. `null`: the cell text that is NULL;
    None, CSV's standard convention (unquoted, an empty cell or \\N; spreadsheets: \\N)."""
    names = [name.strip() for name in header]
    unknown = [n for n in names if table.column(n) is None]
    duplicate = sorted({n for n in names if names.count(n) > 1})
    present = set(names)
    missing = [c.name for c in table.columns if c.required and c.name not in present] if required else []
    if unknown or duplicate or missing:
        problems = [
            f"{label}: {', '.join(items)}"
            for label, items in (("unknown", unknown), ("duplicate", duplicate), ("missing required", missing))
            if items
        ]
        raise InvalidHeader(
            f"the header does not fit table '{table.name}': " + "; ".join(problems),
            {"unknown": unknown, "duplicate": duplicate, "missing": missing},
        )
    chosen = [(i, table.by_name[n]) for i, n in enumerate(names) if not table.by_name[n].generated]
    columns = tuple(c for _, c in chosen)
    null_value = BARE_NULL if load_data else None
    standard = null is None and cells == "text"
    null = "\\N" if null is None else null
    defaulted: frozenset[Column] = frozenset()
    if cells == "text":
        converters = [
            text_converter(c, null, standard=standard, null_value=null_value, binary_as_text=load_data) for c in columns
        ]
        checks = [canonical_check(table.by_name[n], null) for n in names]
    else:
        marker = null if cells == "sheet" else None  # in JSON a string is a string
        converters = [
            value_converter(c, marker, text_cells=cells == "sheet", null_value=null_value, binary_as_text=load_data)
            for c in columns
        ]
        if cells == "json":
            converters = [_defaults_kept(c, convert) for c, convert in zip(columns, converters)]
            defaulted = frozenset(c for c in columns if not c.required)
        checks = [None]
    return ImportPlan(
        columns,
        tuple(i for i, _ in chosen),
        len(names),
        tuple(converters),
        load_data,
        null,
        standard,
        tuple(None if table.by_name[n].generated else table.by_name[n] for n in names),
        _all_or_none(checks),
        cells,
        delimiter,
        defaulted,
    )


def _all_or_none(checks: Sequence[TextCheck | None]) -> tuple[TextCheck, ...] | None:
    """Every column's canonical check, or None when a column has none (the text is then converted)."""
    found = tuple(check for check in checks if check is not None)
    return found if len(found) == len(checks) else None


def _defaults_kept(column: Column, convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """A key a JSON object leaves out stays OMITTED (written as DEFAULT), unless the column needs a value."""

    def keep(value: Any) -> Any:
        if value is OMITTED:
            if column.required:
                raise MissingColumn(RowProblem.missing(column).reason, {"column": column.name})
            return value
        return convert(value)

    return keep


def has_omitted(rows: list[Row]) -> bool:
    """Do any of these rows leave a column to its DEFAULT (so only an INSERT can write them)?"""
    return any(OMITTED in values for _, values in rows)


def given_columns(columns: tuple[Column, ...], rows: list[Row]) -> tuple[tuple[Column, ...], list[Row]]:
    """The columns some row gives, and the rows' values for them: a column every row leaves to its
    DEFAULT is left out of the statement (so a JSON file that gives the same keys in every object
    loads as a CSV file does, whatever else the table has)."""
    if not rows or not has_omitted(rows):
        return columns, rows
    cells = list(zip(*(values for _, values in rows)))
    keep = [i for i, column in enumerate(cells) if column.count(OMITTED) != len(column)]
    if len(keep) == len(columns):
        return columns, rows
    if not keep:
        return (), [(position, []) for position, _ in rows]
    pick = itemgetter(*keep)
    values = map(pick, (v for _, v in rows)) if len(keep) > 1 else ((pick(v),) for _, v in rows)
    return tuple(columns[i] for i in keep), list(zip((position for position, _ in rows), map(list, values)))


def convert_record(plan: ImportPlan, fields: list[Any]) -> list[Any]:
    """One record's values for the plan's columns; InvalidValue names the column."""
    if len(fields) != plan.width:
        raise InvalidValue(f"expected {plan.width} fields, got {len(fields)}")
    return [convert(fields[position]) for position, convert in zip(plan.positions, plan.converters)]


def convert_batch(plan: ImportPlan, records: list[Record]) -> list[Row] | None:
    """A batch converted a column at a time (a C-level transpose, one map per column): much less
    per-value overhead than row by row. None if any record has a problem: the caller then converts
    row by row, which names the position and column of each problem."""
    fields = [f for _, f in records]
    if not fields:
        return []
    if any(len(f) != plan.width for f in fields):
        return None
    cells = list(zip(*fields))
    try:
        columns = [
            # A JSON column no object of the batch gives stays OMITTED (its DEFAULT) without a call a cell.
            cells[position]
            if column in plan.defaulted and cells[position].count(OMITTED) == len(fields)
            else list(map(convert, cells[position]))
            for column, position, convert in zip(plan.columns, plan.positions, plan.converters)
        ]
    except ROW_ERRORS:
        return None
    return list(zip([line for line, _ in records], zip(*columns)))


def for_insert(plan: ImportPlan, rows: list[Row]) -> list[Row]:
    """LOAD DATA-ready values back to INSERT parameters: NULL as None, binary as bytes."""
    binary = [i for i, c in enumerate(plan.columns) if c.kind == "binary"]

    def fix(values: Any) -> list[Any]:
        out: list[Any] = [None if v is BARE_NULL else v for v in values]
        for i in binary:
            if out[i] is not None:
                out[i] = base64.b64decode(out[i])
        return out

    return [(line, fix(values)) for line, values in rows]
