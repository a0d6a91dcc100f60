"""What every record source hands the engine (pure).

A record is its position and its cells in header order. Cells are CSV text, spreadsheet cells (text,
numbers, dates, None for empty) or JSON values, as `Source.cells` says; the plan picks converters
for them. A position counts what the format counts (`Source.unit`): CSV and JSON Lines lines, sheet
rows as a spreadsheet program numbers them, JSON array indexes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from app.db.catalog import Table
from app.rows.plan import Cells, Record
from app.rows.problems import RowProblem

__all__ = ["Block", "Cells", "Record", "RecordError", "Source", "Unit"]
Unit = Literal["line", "row", "index"]


class RecordError(Exception):
    """One record could not be read (the format's code: invalid_csv, invalid_json, ...), or names a
    column the table lacks; the rest of the stream can go on."""

    def __init__(self, line: int, reason: str, code: str, column: str | None = None):
        super().__init__(reason)
        self.line, self.problem = line, RowProblem(code, reason, column)

    @property
    def reason(self) -> str:
        return self.problem.reason


class Block:
    """The records read in one step, with their text as uploaded when the format has one (CSV).

    `clean`: every line of `text` belongs to a well-formed record (no parse errors, no blank lines),
    so the text says exactly what `records` say.
    """

    __slots__ = ("text", "records", "clean")

    def __init__(self, text: str, records: list[Record | RecordError], clean: bool):
        self.text, self.records, self.clean = text, records, clean


async def _nothing() -> None:
    return None


@dataclass
class Source:
    header: list[str]
    blocks: AsyncIterator[Block]  # the records after the header
    cells: Cells
    unit: Unit
    close: Callable[[], Awaitable[None]] = _nothing  # releases what the source holds (a spooled file)
    header_position: int = 1
    extra: dict[str, Any] | None = None  # what the report should say about the source (the sheet)
    delimiter: str = ","  # CSV text's field separator (a tab for TSV)
    # JSON: after the header (the first object's keys) is checked, read every record by its own keys
    # among these (the table's columns); returns the header records then follow.
    widen: Callable[[Table], list[str]] | None = None
