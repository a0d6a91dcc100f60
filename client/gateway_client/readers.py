"""A file of rows, read as a stream: its header, then (line, row) pairs numbered as the gateway
numbers them (CSV/TSV and JSON Lines: lines; spreadsheets: sheet rows). Rows keep what the format
says: text cells for CSV and TSV, typed values for spreadsheets and JSON Lines."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import itertools
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path
from typing import Any, Literal

Kind = Literal["csv", "tsv", "jsonl", "xlsx"]
KINDS: dict[str, Kind] = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".xlsx": "xlsx",
    ".xls": "xlsx",
    ".ods": "xlsx",
}


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


Row = tuple[int, Any]  # (line, the record's bytes for csv/tsv (its final newline gone), a dict for sheets and jsonl)


@dataclass
class Rows:
    kind: Kind
    header: list[str]
    blocks: Iterator[list[Row]]  # the rows in file order, a list at a time (batches cut lists, not rows)
    header_text: bytes = b""  # csv/tsv: the header line as in the file

    @property
    def rows(self) -> Iterator[Row]:
        return itertools.chain.from_iterable(self.blocks)


def read(path: Path, sheet: str | None = None) -> Rows:
    kind = kind_of(path)
    if kind in ("csv", "tsv"):
        return _delimited(path, "\t" if kind == "tsv" else ",", kind)
    if kind == "jsonl":
        return _jsonl(path)
    return _sheet(path, sheet)


def _delimited(path: Path, delimiter: str, kind: Kind) -> Rows:
    """CSV and TSV records as the bytes they are in the file (batches send them unchanged: no
    parsing and writing back, which cost as much CPU as the gateway's whole import). A record ends
    at a line end outside quotes: where the line's quotes so far are even."""
    f = path.open("rb")
    first = f.readline()
    header_line = 1
    if first.startswith(b"\xef\xbb\xbf"):
        first = first[3:]
    text = first
    while text.count(b'"') % 2:  # a header with a quoted newline
        more = f.readline()
        if not more:
            break
        text += more
        header_line += 1
    try:
        header = next(csv.reader([text.decode("utf-8")], delimiter=delimiter)) if text.strip() else []
    except (UnicodeDecodeError, csv.Error) as exc:
        f.close()
        raise FileProblem(f"{path.name}: the header is not UTF-8 CSV: {exc}") from None
    if not header:
        f.close()
        raise FileProblem(f"{path.name} is empty: the first line names the columns")

    def blocks() -> Iterator[list[Row]]:
        with f:
            line = header_line + 1
            carry = b""
            while True:
                data = f.read(CHUNK)
                block = carry + data
                if not data:  # the end: what is left is the last record (a quote that never closes included)
                    if block.strip(b"\r\n"):
                        yield _records(block.removesuffix(b"\n"), line)
                    return
                end = _last_record_end(block)
                if end == 0:
                    carry = block
                    continue
                yield _records(block[: end - 1], line)  # without the last record's final newline
                line += block.count(b"\n", 0, end)
                carry = block[end:]

    return Rows(kind, header, blocks(), text if text.endswith(b"\n") else text + b"\n")


CHUNK = 1 << 20


def _last_record_end(block: bytes) -> int:
    """Just past the last newline that ends a record: where the quotes before it are even (0: none)."""
    quotes = block.count(b'"')
    end = len(block)
    while True:
        newline = block.rfind(b"\n", 0, end)
        if newline < 0:
            return 0
        quotes -= block.count(b'"', newline, end)
        if quotes % 2 == 0:
            return newline + 1
        end = newline


def _records(text: bytes, first: int) -> list[Row]:
    """Complete records' text (its last newline gone), its first line numbered `first` ->
    (line, record without its final newline), blank lines left out as the gateway leaves them. By
    bytes and list operations: a Python step only where a record spans lines (between two lines
    with an odd number of quotes)."""
    lines = text.split(b"\n")
    numbered = list(zip(range(first, first + len(lines)), lines))
    odd = _odd_lines(text)
    if odd:
        out: list[Row] = []
        at = 0
        for k in range(0, len(odd), 2):
            start = odd[k]
            stop = odd[k + 1] if k + 1 < len(odd) else len(lines) - 1  # unclosed: the rest (the gateway names it)
            out += numbered[at:start]
            out.append((first + start, b"\n".join(lines[start : stop + 1])))
            at = stop + 1
        out += numbered[at:]
        numbered = out
    if b"" in lines or b"\r" in lines:
        numbered = [(n, record) for n, record in numbered if record and record != b"\r"]
    return numbered


_NOT_QUOTES = bytes(b for b in range(256) if b not in b'"\n')
_ODD_QUOTES = re.compile(rb'^(?:"")*"$', re.MULTILINE)  # a line of `text` kept to its quotes


def _odd_lines(text: bytes) -> list[int]:
    """The indexes of the lines of `text` with an odd number of quotes, found in C: the text cut to
    its quotes and newlines, and a pattern for a line of an odd number of them."""
    quotes = text.translate(None, _NOT_QUOTES)
    odd, line, at = [], 0, 0
    for match in _ODD_QUOTES.finditer(quotes):
        line += quotes.count(b"\n", at, match.start())
        at = match.start()
        odd.append(line)
    return odd


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
                        yield number, Unreadable(str(exc))

    return Rows("jsonl", list(first), _grouped(rows()))


def _grouped(rows: Iterator[Row], size: int = 1000) -> Iterator[list[Row]]:
    while group := list(itertools.islice(rows, size)):
        yield group


class Unreadable:
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

    return Rows("xlsx", header, _grouped(rows()))


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


def encode_batch(rows: Rows, batch: list[Row]) -> tuple[str, bytes]:
    """A batch as the file the gateway imports: (format, bytes). CSV and TSV go as they are in the
    file, under the header; sheets and JSON Lines as JSON Lines (values keep their types)."""
    if rows.kind in ("csv", "tsv"):
        return rows.kind, rows.header_text + b"\n".join(map(itemgetter(1), batch)) + b"\n"
    lines = [
        b"not json" if isinstance(row, Unreadable) else json.dumps(row, ensure_ascii=False).encode() for _, row in batch
    ]
    return "jsonl", b"\n".join(lines) + b"\n"


def positions(rows: Rows, batch: list[Row]) -> list[int]:
    """Where the gateway reads each row of `encode_batch`'s file, as its reports name rows: the
    line a record starts on (a record may span lines), or the JSON line. Needed only to map the
    gateway's refusals back to rows."""
    if rows.kind not in ("csv", "tsv"):
        return list(range(1, len(batch) + 1))
    line = rows.header_text.count(b"\n") + 1
    out = []
    for _, record in batch:
        out.append(line)
        line += record.count(b"\n") + 1
    return out
