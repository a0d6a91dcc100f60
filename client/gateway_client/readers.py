"""A file of rows, read as a stream: its header, then (line, row) pairs numbered as the gateway
numbers them (CSV/TSV and JSON Lines: lines; spreadsheets: sheet rows). Rows keep what the format
says: text cells for CSV and TSV, typed values for spreadsheets and JSON Lines."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

Kind = Literal["csv", "tsv", "jsonl", "xlsx"]
KINDS: dict[str, Kind] = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".xlsx": "xlsx", ".xls": "xlsx", ".ods": "xlsx"}


class FileProblem(Exception):
    """The file cannot be read as its format says (the run stops before anything is sent)."""


def kind_of(path: Path) -> Kind:
    kind = KINDS.get(path.suffix.lower())
    if kind is None:
        raise FileProblem(f"{path.name}: not a file the gateway takes (.csv, .tsv, .jsonl, .ndjson, .xlsx, .xls, .ods)")
    return kind


def file_hash(path: Path) -> str:
    """The content's SHA-256: the same file gives the same idempotency keys, run after run."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class Rows:
    kind: Kind
    header: list[str]
    rows: Iterator[tuple[int, Any]]  # (line, cells: list for csv/tsv and sheets, dict for jsonl)


def read(path: Path, sheet: str | None = None) -> Rows:
    kind = kind_of(path)
    if kind in ("csv", "tsv"):
        return _delimited(path, "\t" if kind == "tsv" else ",", kind)
    if kind == "jsonl":
        return _jsonl(path)
    return _sheet(path, sheet)


def _delimited(path: Path, delimiter: str, kind: Kind) -> Rows:
    f = path.open(newline="", encoding="utf-8-sig")
    reader = csv.reader(f, delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        f.close()
        raise FileProblem(f"{path.name} is empty: the first line names the columns") from None
    except (csv.Error, UnicodeDecodeError) as exc:
        f.close()
        raise FileProblem(f"{path.name}: {exc}") from None

    def rows() -> Iterator[tuple[int, list[str]]]:
        with f:
            line = reader.line_num + 1
            try:
                for record in reader:
                    if record:  # the gateway skips blank lines too
                        yield line, record
                    line = reader.line_num + 1
            except (csv.Error, UnicodeDecodeError) as exc:
                raise FileProblem(f"{path.name}, line {line}: {exc}") from None

    return Rows(kind, header, rows())


def _jsonl(path: Path) -> Rows:
    f = path.open(encoding="utf-8-sig")
    first: dict | None = None
    first_line = 0
    for number, text in enumerate(f, start=1):
        if text.strip():
            try:
                first = json.loads(text)
            except json.JSONDecodeError as exc:
                f.close()
                raise FileProblem(f"{path.name}, line {number}: {exc}") from None
            first_line = number
            break
    if not isinstance(first, dict):
        f.close()
        raise FileProblem(f"{path.name}: the first line must be a JSON object (it names the columns)")

    def rows() -> Iterator[tuple[int, Any]]:
        with f:
            yield first_line, first
            for number, text in enumerate(f, start=first_line + 1):
                if text.strip():
                    try:
                        yield number, json.loads(text)
                    except json.JSONDecodeError as exc:
                        yield number, _Unreadable(str(exc))

    return Rows("jsonl", list(first), rows())


class _Unreadable:
    """A line that is not JSON: sent as it is (the gateway reports it), kept for the failed file."""

    def __init__(self, reason: str):
        self.reason = reason


def _sheet(path: Path, sheet: str | None) -> Rows:
    from python_calamine import CalamineWorkbook

    try:
        book = CalamineWorkbook.from_path(str(path))
        name = sheet or book.sheet_names[0]
        data = book.get_sheet_by_name(name).to_python(skip_empty_area=False)
    except Exception as exc:  # calamine's errors: not a workbook, no such sheet
        raise FileProblem(f"{path.name}: {exc}") from None
    if not data:
        raise FileProblem(f"{path.name}: sheet '{name}' is empty")
    header = [str(c) for c in data[0]]

    def rows() -> Iterator[tuple[int, dict]]:
        for number, cells in enumerate(data[1:], start=2):
            if any(c not in ("", None) for c in cells):
                yield number, {h: _cell(c) for h, c in zip(header, cells)}

    return Rows("xlsx", header, rows())


def _cell(value: Any) -> Any:
    """Sheet cells as JSON values (an empty cell is null; dates ISO 8601; whole floats integers)."""
    if value == "":
        return None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, (dt.date, dt.time, dt.datetime)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return str(value)
    return value


def encode_batch(kind: Kind, header: list[str], rows: list[tuple[int, Any]]) -> tuple[str, bytes, list[int]]:
    """A batch as the file the gateway imports: (extension, bytes, the gateway's position of each
    row in it). CSV and TSV go as CSV (their text as it was); sheets and JSON Lines as JSON Lines
    (values keep their types). A CSV cell may hold newlines: positions count physical lines."""
    positions: list[int] = []
    if kind in ("csv", "tsv"):
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(header)
        line = out.getvalue().count("\n") + 1
        for _, cells in rows:
            before = out.tell()
            writer.writerow(cells)
            positions.append(line)
            out.seek(before)
            line += out.read().count("\n")
        return "csv", out.getvalue().encode(), positions
    lines = []
    for number, (_, row) in enumerate(rows, start=1):
        lines.append(b"not json\n" if isinstance(row, _Unreadable) else json.dumps(row, ensure_ascii=False).encode() + b"\n")
        positions.append(number)
    return "jsonl", b"".join(lines), positions
