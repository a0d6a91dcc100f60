"""Which source reads an upload: the format from `?format=` or the file's extension, checked
against the content's first bytes; the table from the file's name without its extension."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Literal

from app.core.errors import InvalidCsv, UnsupportedMediaType
from app.imports.csv_source import open_csv
from app.imports.json_source import open_json_array, open_jsonl
from app.imports.parquet_source import MAGIC as PARQUET_MAGIC
from app.imports.parquet_source import open_parquet
from app.imports.records import Source
from app.imports.spreadsheet import OLE_MAGIC, ZIP_MAGIC, Limits, open_spreadsheet

Format = Literal["csv", "tsv", "xlsx", "xls", "ods", "jsonl", "json", "parquet"]
EXTENSIONS: dict[str, Format] = {
    "csv": "csv",
    "tsv": "tsv",
    "xlsx": "xlsx",
    "xls": "xls",
    "ods": "ods",
    "jsonl": "jsonl",
    "ndjson": "jsonl",
    "json": "json",
    "parquet": "parquet",
}
SPREADSHEETS = ("xlsx", "xls", "ods")


def split_name(filename: str | None) -> tuple[str, Format | None]:
    """`exports/users.xlsx` -> (`users`, "xlsx"). An unknown extension is part of the name. The name
    is only looked up in the catalog, never quoted as is."""
    if not filename:
        raise InvalidCsv("the upload has no file name: name the table with ?table=")
    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    stem, dot, extension = base.rpartition(".")
    found = EXTENSIONS.get(extension.lower()) if dot else None
    return (stem, found) if found else (base, None)


async def _peeked(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    if first:
        yield first
    async for chunk in rest:
        yield chunk


async def open_upload(
    chunks: AsyncIterator[bytes],
    fmt: Format,
    *,
    sheet: str | None,
    max_record_bytes: int,
    limits: Limits,
    spool_dir: str | None = None,
    null: str | None = None,
) -> Source:
    """The source for an upload of format `fmt` (a spreadsheet named .csv is a 415, not garbage rows).
    `null`: the import's NULL marker (None: CSV's standard convention, which the CSV reader follows)."""
    if fmt in SPREADSHEETS:
        return await open_spreadsheet(chunks, fmt, sheet, limits, spool_dir)
    if sheet is not None:
        raise InvalidCsv(f"?sheet= is for spreadsheets, and this upload is {fmt.upper()}")
    first = b""
    async for first in chunks:
        if first:
            break
    if first.startswith(ZIP_MAGIC) or first.startswith(OLE_MAGIC):
        raise UnsupportedMediaType(
            f"the file is a spreadsheet or another archive, not {fmt.upper()}: name it .xlsx, .xls or .ods, or send "
            "?format="
        )
    if fmt != "parquet" and first.startswith(PARQUET_MAGIC):
        raise UnsupportedMediaType(f"the file is Parquet, not {fmt.upper()}: name it .parquet, or send ?format=parquet")
    stream = _peeked(first, chunks)
    if fmt == "parquet":
        return await open_parquet(stream, spool_dir)
    if fmt == "jsonl":
        return await open_jsonl(stream, max_record_bytes)
    if fmt == "json":
        return await open_json_array(stream)
    return await open_csv(stream, max_record_bytes, "\t" if fmt == "tsv" else ",", marks=null is None)


def upload_options(settings: Any, sheet: str | None, null: str | None) -> dict[str, Any]:
    """`open_upload`'s options from the gateway's settings (requests and jobs read files alike)."""
    return {
        "sheet": sheet,
        "null": null,
        "max_record_bytes": settings.csv_max_record_bytes,
        "limits": Limits(settings.spreadsheet_max_uncompressed_bytes, settings.spreadsheet_max_cells),
        "spool_dir": settings.spool_dir,
    }


def opener(chunks: AsyncIterator[bytes], fmt: Format, **options: Any) -> Callable[[], Awaitable[Source]]:
    return lambda: open_upload(chunks, fmt, **options)
