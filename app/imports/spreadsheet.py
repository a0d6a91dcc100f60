"""Spreadsheet records (XLSX, XLS, ODS), read with python-calamine from a spooled copy of the upload.

A spreadsheet cannot be read as it arrives (its parts are found through the zip directory at the
end), so the upload is written to a temporary file first, never held whole in memory, and removed
when the import ends. Before anything is expanded, the zip directory says how large the parts are:
past `max_uncompressed_bytes`, or a sheet whose declared size is past `max_cells`, is a 413 (zip
bombs are refused unread). The sheet is then read by calamine (Rust) in a worker thread.

The first row is the header; positions are sheet rows as a spreadsheet program numbers them.
Cells keep their types: a number is a number (whole numbers as integers), a date is a date, an
empty cell is None (NULL; '' in a NOT NULL text column).
"""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
import zipfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import python_calamine

from app.core.echo import shown
from app.core.errors import InvalidSpreadsheet, PayloadTooLarge
from app.imports.records import Block, RecordError, Source

ZIP_MAGIC = b"PK\x03\x04"
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # XLS, and password-protected XLSX
BLOCK_ROWS = 1000
_DIMENSION = re.compile(rb'<dimension ref="[A-Z]+\d+:([A-Z]+)(\d+)"')
EXACT_FLOAT = 2**53


@dataclass(frozen=True)
class Limits:
    max_uncompressed_bytes: int
    max_cells: int  # below the header row


async def spool(chunks: AsyncIterator[bytes], directory: str | None = None) -> str:
    """The upload written to a temporary file (its path); the caller removes it."""
    handle, path = tempfile.mkstemp(prefix="gateway-upload-", dir=directory)
    try:
        with os.fdopen(handle, "wb") as file:
            async for chunk in chunks:
                file.write(chunk)
    except BaseException:
        os.unlink(path)
        raise
    return path


def check_size(path: str, kind: str, limits: Limits) -> None:
    """Refuse a spreadsheet whose expanded size is past the limits, from its zip directory alone."""
    with open(path, "rb") as file:
        head = file.read(8)
    if kind in ("xlsx", "ods"):
        if head.startswith(OLE_MAGIC):
            raise InvalidSpreadsheet(
                f"the {kind.upper()} file is an OLE container, not a zip: password-protected (encrypted; save it "
                "without a password), or an .xls file under another name"
            )
        if not head.startswith(ZIP_MAGIC):
            raise InvalidSpreadsheet(f"the file is not an {kind.upper()} spreadsheet (no zip archive inside)")
        try:
            with zipfile.ZipFile(path) as archive:
                entries = archive.infolist()
                expanded = sum(entry.file_size for entry in entries)
                if expanded > limits.max_uncompressed_bytes:
                    raise PayloadTooLarge(
                        f"the spreadsheet expands to {expanded} bytes, over the limit of "
                        f"{limits.max_uncompressed_bytes}",
                        {"expanded_bytes": expanded, "max_uncompressed_bytes": limits.max_uncompressed_bytes},
                    )
                for entry in entries:  # XLSX sheets declare their size up front
                    if entry.filename.startswith("xl/worksheets/") and entry.filename.endswith(".xml"):
                        with archive.open(entry) as part:
                            _check_dimension(part.read(4096), limits)
        except PayloadTooLarge:
            raise
        except Exception as exc:  # zipfile's many ways to say "broken": BadZipFile, zlib.error, encrypted parts, ...
            raise InvalidSpreadsheet(f"the {kind.upper()} file is corrupt: {str(exc)[:300]}") from None
    elif not head.startswith(OLE_MAGIC):
        raise InvalidSpreadsheet("the file is not an XLS spreadsheet")


def _check_dimension(head: bytes, limits: Limits) -> None:
    found = _DIMENSION.search(head)
    if found is None:
        return
    letters, rows = found.group(1).decode(), int(found.group(2))
    columns = 0
    for letter in letters:
        columns = columns * 26 + ord(letter) - 64
    cells = (rows - 1) * columns  # the header row is not counted
    if cells > limits.max_cells:
        raise PayloadTooLarge(
            f"a sheet declares {rows} rows x {columns} columns, over the limit of {limits.max_cells} cells below "
            "the header",
            {"cells": cells, "max_cells": limits.max_cells},
        )


def _column_name(index: int) -> str:
    name = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        name = chr(65 + rest) + name
    return name


def _cell(value: Any) -> Any:
    if value == "":
        return None
    if type(value) is float and value.is_integer() and -EXACT_FLOAT < value < EXACT_FLOAT:
        return int(value)  # every number is a float in a spreadsheet: 7.0 is the integer 7
    return value


def _read(path: str, sheet: str | None, limits: Limits) -> tuple[str, int, Iterator[list[Any]], Any]:
    """Open the workbook and the sheet (in a worker thread: calamine reads the whole sheet)."""
    try:
        workbook = python_calamine.CalamineWorkbook.from_path(path)
    except python_calamine.PasswordError:
        raise InvalidSpreadsheet("the spreadsheet is password-protected: save it without a password") from None
    except Exception as exc:  # calamine's errors: corrupt parts, not a workbook at all
        raise InvalidSpreadsheet(f"the spreadsheet cannot be read: {str(exc)[:300]}") from None
    except BaseException as exc:  # a panic in calamine's Rust (pyo3's PanicException is a BaseException)
        if type(exc).__name__ != "PanicException":
            raise
        raise InvalidSpreadsheet("the spreadsheet cannot be read: its reader gave up on it") from None
    names = workbook.sheet_names
    name = sheet if sheet is not None else (names[0] if names else None)
    if name is None or name not in names:
        workbook.close()
        raise InvalidSpreadsheet(
            f"no sheet named {shown(sheet)!r}: the workbook has {', '.join(map(repr, names)) or 'no sheets'}",
            {"sheets": names},
        )
    try:
        data = workbook.get_sheet_by_name(name)
    except BaseException as exc:  # calamine's errors, or a panic in its Rust (a BaseException)
        workbook.close()
        if not isinstance(exc, Exception) and type(exc).__name__ != "PanicException":
            raise
        raise InvalidSpreadsheet(f"sheet {name!r} cannot be read: {str(exc)[:300]}") from None
    cells = max(data.height - 1, 0) * data.width
    if cells > limits.max_cells:
        workbook.close()
        raise PayloadTooLarge(
            f"sheet {name!r} has {data.height} rows x {data.width} columns, over the limit of {limits.max_cells} "
            "cells below the header",
            {"cells": cells, "max_cells": limits.max_cells},
        )
    first_row = (data.start or (0, 0))[0] + 1  # the sheet row of the range's first row
    return name, first_row, data.iter_rows(), workbook


async def open_spreadsheet(
    chunks: AsyncIterator[bytes], kind: str, sheet: str | None, limits: Limits, spool_dir: str | None = None
) -> Source:
    path = await spool(chunks, spool_dir)
    workbook = None
    try:
        await asyncio.to_thread(check_size, path, kind, limits)
        name, first_row, rows, workbook = await asyncio.to_thread(_read, path, sheet, limits)
        header_row = next(rows, None)
        if header_row is None or all(cell == "" for cell in header_row):
            raise InvalidSpreadsheet(f"sheet {name!r} is empty: its first row must be the header", {"sheet": name})
        header = [_header_cell(cell) for cell in header_row]
        while header and header[-1] == "":  # cells right of the table that hold nothing
            header.pop()
        blank = [_column_name(i) for i, cell in enumerate(header) if cell == ""]
        if blank:
            raise InvalidSpreadsheet(
                f"sheet {name!r}: header cell(s) {', '.join(f'{c}{first_row}' for c in blank)} are blank: every "
                "column needs a name",
                {"sheet": name, "row": first_row, "blank_columns": blank},
            )
    except BaseException:
        if workbook is not None:
            workbook.close()
        os.unlink(path)
        raise
    width = len(header)

    async def blocks() -> AsyncIterator[Block]:
        position = first_row
        records: list = []
        for cells in rows:
            position += 1
            values = [_cell(v) for v in cells[:width]]
            beyond = [i for i in range(width, len(cells)) if cells[i] != ""]
            if beyond:
                where = f"{_column_name(beyond[0])}{position}"
                records.append(
                    RecordError(
                        position, f"cell {where} holds a value but its column has no header", InvalidSpreadsheet.code
                    )
                )
            elif any(v is not None for v in values):  # empty rows are not records
                records.append((position, values + [None] * (width - len(values))))
            if len(records) >= BLOCK_ROWS:
                yield Block("", records, False)
                records = []
                await asyncio.sleep(0)  # calamine hands rows out fast: let other requests in
        if records:
            yield Block("", records, False)

    async def close() -> None:
        workbook.close()
        os.unlink(path)

    return Source(header, blocks(), "sheet", "row", close, first_row, {"format": kind, "sheet": name})


def _header_cell(cell: Any) -> str:
    cell = _cell(cell)
    return "" if cell is None else str(cell).strip()
