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

Record = tuple[int, list[Any]]  # (position, cells)
Cells = Literal["text", "sheet", "json"]
Unit = Literal["line", "row", "index"]


class Omitted:
    """A JSON object's key left out: the column's DEFAULT, as in a POST body (never NULL)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "OMITTED"


OMITTED = Omitted()


class RecordError(Exception):
    """One record could not be read; the rest of the stream can go on."""

    def __init__(self, line: int, reason: str):
        super().__init__(reason)
        self.line, self.reason = line, reason


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
    widen: Callable[[list[str]], list[str]] | None = None
