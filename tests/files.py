"""Real files of every import format, made in the tests: XLSX by openpyxl, ODS by odfpy, XLS by xlwt."""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from typing import Any

import openpyxl
import orjson
import xlwt
from odf.opendocument import OpenDocumentSpreadsheet
from odf.table import Table, TableCell, TableRow
from odf.text import P


def xlsx(rows: list[list[Any]], sheet: str = "Sheet1", extra_sheets: dict[str, list[list[Any]]] | None = None) -> bytes:
    book = openpyxl.Workbook()
    first = book.active
    first.title = sheet
    for row in rows:
        first.append(row)
    for name, more in (extra_sheets or {}).items():
        other = book.create_sheet(name)
        for row in more:
            other.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def xls(rows: list[list[Any]], sheet: str = "Sheet1") -> bytes:
    book = xlwt.Workbook()
    page = book.add_sheet(sheet)
    dates = xlwt.easyxf(num_format_str="yyyy-mm-dd hh:mm:ss")
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            if isinstance(value, dt.datetime):
                page.write(r, c, value, dates)
            elif value is not None:
                page.write(r, c, value)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def ods(rows: list[list[Any]], sheet: str = "Sheet1") -> bytes:
    document = OpenDocumentSpreadsheet()
    table = Table(name=sheet)
    for row in rows:
        line = TableRow()
        for value in row:
            if value is None:
                cell = TableCell()
            elif isinstance(value, bool):
                cell = TableCell(valuetype="boolean", booleanvalue=str(value).lower())
                cell.addElement(P(text=str(value).upper()))
            elif isinstance(value, (int, float)):
                cell = TableCell(valuetype="float", value=value)
                cell.addElement(P(text=str(value)))
            else:
                cell = TableCell(valuetype="string")
                cell.addElement(P(text=str(value)))
            line.addElement(cell)
        table.addElement(line)
    document.spreadsheet.addElement(table)
    out = io.BytesIO()
    document.write(out)
    return out.getvalue()


def jsonl(objects: list[Any]) -> bytes:
    return b"".join(orjson.dumps(o) + b"\n" for o in objects)


def json_array(objects: list[Any]) -> bytes:
    return orjson.dumps(objects)


def zip_bomb(expanded_bytes: int) -> bytes:
    """An XLSX-shaped zip whose one part expands to `expanded_bytes` (it compresses to almost nothing)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        with archive.open("xl/worksheets/sheet1.xml", "w") as part:
            block = b" " * (1024 * 1024)
            for _ in range(expanded_bytes // len(block)):
                part.write(block)
    return out.getvalue()


def declared_cells(rows: int, columns: str) -> bytes:
    """An XLSX whose sheet declares a huge size in its <dimension> (and holds nothing)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr(
            "xl/worksheets/sheet1.xml",
            f'<?xml version="1.0"?><worksheet><dimension ref="A1:{columns}{rows}"/><sheetData/></worksheet>',
        )
    return out.getvalue()


def parquet(objects: list[dict]) -> bytes:
    """Objects as a Parquet file, as pyarrow writes it (types inferred from the values)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(objects), out)
    return out.getvalue()
