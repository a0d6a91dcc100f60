"""CSV records from a stream of bytes, parsed by the csv module, in bounded memory.

The stream arrives in arbitrary chunks, and a quoted field may hold newlines, so a chunk cannot be
cut at any newline. In RFC 4180 a newline ends a record exactly when the quotes before it (since the
record began) are even in number, because an escaped quote is written twice. `RecordReader` keeps
the text after the last such newline for the next chunk and hands the complete part to csv.reader.

Each record comes with the line number it starts on (the header is line 1), so errors can name it.

In the standard convention (`marks`: the import was given no `?null=`), an unquoted empty cell or
\\N is NULL and a quoted one is text: the few quoted cells that read like NULL are marked
(values.QUOTED_TEXT), and a blank line in a one-column file is a record whose cell is NULL.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import AsyncIterator, Callable, Iterator

from app.core.errors import InvalidCsv, UnsupportedMediaType
from app.imports.records import Block, Record, RecordError, Source
from app.rows.values import LIKE_NULL, QUOTED_MARK


class RecordReader:
    def __init__(self, max_record_bytes: int, delimiter: str = ",", *, marks: bool = False):
        self._delimiter = delimiter
        self._marks = marks
        self._width: int | None = None  # the header's, once read
        self._decoder = codecs.getincrementaldecoder("utf-8")("strict")
        self._pending = ""
        self._started = False
        self._next_line = 1
        self._max = max_record_bytes
        csv.field_size_limit(max(max_record_bytes, 131072))

    def feed(self, data: bytes) -> Block:
        """The records completed by this chunk."""
        text = self._decode(data, final=False)
        buffer = self._pending + text
        cut = _last_record_end(buffer)
        self._pending = buffer[cut:]
        if len(self._pending) > self._max:
            raise InvalidCsv(
                f"the record starting at line {self._next_line} is longer than {self._max} bytes "
                "(a quoted field that never ends?)",
                {"line": self._next_line},
            )
        return self._parse(buffer[:cut])

    def finish(self) -> Block:
        """The last records, at the end of the stream. A quoted field still open here swallowed
        every line after it (they would count as one bad record): the file is refused for what it is."""
        text = self._pending + self._decode(b"", final=True)
        self._pending = ""
        if text.count('"') % 2:
            raise InvalidCsv(
                f"the quoted field in the record starting at line {self._next_line} never ends: every "
                "line after it is inside it (a missing closing quote?)",
                {"line": self._next_line},
            )
        return self._parse(text)

    def _decode(self, data: bytes, *, final: bool) -> str:
        try:
            text = self._decoder.decode(data, final)
        except UnicodeDecodeError:
            raise UnsupportedMediaType(
                f"the file is not UTF-8 text (near line {self._next_line})", {"line": self._next_line}
            ) from None
        if "\x00" in text:
            raise UnsupportedMediaType("the file holds NUL bytes: binary, not CSV", {"line": self._next_line})
        if not self._started and text:
            self._started = True
            text = text.removeprefix("\ufeff")
        return text

    def _parse(self, text: str) -> Block:
        """The records of `text` (complete records only). A line without quotes is split at the
        delimiter, which is what csv.reader would make of it and several times faster; a record with
        quotes (which may span lines) goes through csv.reader. A bare CR ends a record in csv.reader's
        reading, so text holding one is read by csv.reader throughout."""
        base = self._next_line
        if text.count("\r") != text.count("\r\n"):
            read, all_clean, line_count = _csv_records(text, base, self._delimiter, self._marks, self._blank_is_record)
            self._note_width(read)
            self._next_line = base + line_count
            return Block(text, read, all_clean)
        records: list[Record | RecordError] = []
        clean = True
        marks = self._marks
        lines = text.split("\n")
        if lines[-1] == "":
            lines.pop()  # the text ends with a newline
        delimiter = self._delimiter
        count = len(lines)
        source = _Lines(lines)  # csv.reader takes lines from it (a quoted field may take several)
        reader = csv.reader(source, strict=True, delimiter=delimiter)
        i = 0
        while i < count:
            line = lines[i]
            if '"' not in line:
                if line.endswith("\r"):
                    line = line[:-1]
                if line:
                    records.append((base + i, line.split(delimiter)))
                else:
                    clean = False  # blank lines are not records
                    if self._blank_is_record(records):
                        records.append((base + i, [""]))
                i += 1
                continue
            source.next = i
            try:
                fields = next(reader)
            except csv.Error as exc:
                records.append(RecordError(base + i, f"malformed CSV: {exc}", InvalidCsv.code))
                clean = False
            else:
                if marks and _mark(fields, "\n".join(lines[i : source.next]), delimiter):
                    clean = False  # the text no longer says what the records say
                records.append((base + i, fields))
            i = source.next
        self._next_line = base + count
        self._note_width(records)
        return Block(text, records, clean)

    def _note_width(self, records: list[Record | RecordError]) -> None:
        """The header's width, from the first records ever read (the first is the header)."""
        if self._width is None and records and not isinstance(records[0], RecordError):
            self._width = len(records[0][1])

    def _blank_is_record(self, records: list[Record | RecordError]) -> bool:
        """Is a blank line a record (its one cell NULL)? In a one-column file, in the standard
        convention: there it is how NULL is written (by PostgreSQL, and by the export). `records`:
        the block's so far (a blank line may come before the first block ends)."""
        self._note_width(records)
        return self._marks and self._width == 1


class _Lines:
    """The lines of a block for csv.reader, from `next` on, with their newlines back on."""

    __slots__ = ("lines", "next")

    def __init__(self, lines: list[str]):
        self.lines, self.next = lines, 0

    def __iter__(self) -> "_Lines":
        return self

    def __next__(self) -> str:
        if self.next >= len(self.lines):
            raise StopIteration
        self.next += 1
        return self.lines[self.next - 1] + "\n"


def _csv_records(
    text: str, base: int, delimiter: str, marks: bool, blank: Callable[[list[Record | RecordError]], bool]
) -> tuple[list[Record | RecordError], bool, int]:
    """Records parsed by csv.reader (strict): (records, clean, lines read)."""
    records: list[Record | RecordError] = []
    clean = True
    lines = _Taken(io.StringIO(text, newline=""))
    reader = csv.reader(lines, strict=True, delimiter=delimiter)
    while True:
        start = base + reader.line_num
        lines.taken.clear()
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            records.append(RecordError(start, f"malformed CSV: {exc}", InvalidCsv.code))
            clean = False
            continue
        if fields:
            if marks and _mark(fields, "".join(lines.taken), delimiter):
                clean = False
            records.append((start, fields))
        else:
            clean = False  # blank lines are not records
            if blank(records):
                records.append((start, [""]))
    return records, clean, reader.line_num


class _Taken:
    """Lines for csv.reader that remembers the ones it took (the text of the record being read)."""

    __slots__ = ("lines", "taken")

    def __init__(self, lines: Iterator[str]):
        self.lines = lines
        self.taken: list[str] = []

    def __iter__(self) -> "_Taken":
        return self

    def __next__(self) -> str:
        line = next(self.lines)
        self.taken.append(line)
        return line


def _mark(fields: list[str], raw: str, delimiter: str) -> bool:
    """Mark the cells of one record that read like NULL but were quoted (values.QUOTED_TEXT), given
    the record's text as uploaded (valid CSV: csv.reader took it). Whether any was marked."""
    if not any(f in LIKE_NULL for f in fields):
        return False
    marked = False
    for index in _quoted_like_null(raw.rstrip("\r\n"), delimiter):
        fields[index] = QUOTED_MARK + fields[index]
        marked = True
    return marked


def _quoted_like_null(raw: str, delimiter: str) -> Iterator[int]:
    """The positions of the fields written as `""` or `"\\N"` in a record's text."""
    index, at, end = 0, 0, len(raw)
    while True:
        if raw.startswith('"', at):
            close = at + 1
            while True:  # the closing quote is the first one not doubled
                close = raw.index('"', close)
                if raw.startswith('"', close + 1):
                    close += 2
                    continue
                break
            if raw[at + 1 : close] in LIKE_NULL:
                yield index
            at = close + 1
        else:
            at = raw.find(delimiter, at)
            if at < 0:
                return
        if at >= end:
            return
        at += len(delimiter)  # past the delimiter that ends this field
        index += 1


def _first_record_end(text: str) -> int:
    """The index just past the newline that ends the first record (the text's length if none does)."""
    start = 0
    quotes = 0
    while True:
        newline = text.find("\n", start)
        if newline < 0:
            return len(text)
        quotes += text.count('"', start, newline)
        if quotes % 2 == 0:
            return newline + 1
        start = newline + 1


def _last_record_end(text: str) -> int:
    """The index just past the last newline that ends a record (0 if none does yet)."""
    quotes_before = text.count('"')
    end = len(text)
    while True:
        newline = text.rfind("\n", 0, end)
        if newline < 0:
            return 0
        quotes_before -= text.count('"', newline, end)
        if quotes_before % 2 == 0:
            return newline + 1
        end = newline


async def open_csv(
    chunks: AsyncIterator[bytes], max_record_bytes: int, delimiter: str = ",", *, marks: bool = False
) -> Source:
    """The header and the records of a CSV (or, with a tab, TSV) upload, read as they arrive;
    `marks`: in the standard convention (see above)."""
    blocks = _blocks(chunks, RecordReader(max_record_bytes, delimiter, marks=marks))
    first = await anext(blocks, None)
    if first is None:
        raise InvalidCsv("the file is empty: a header row is required")
    header = first.records[0]
    if isinstance(header, RecordError):
        raise InvalidCsv(f"the header row is not valid CSV: {header.reason}", {"line": header.line})
    # The first block's text, but the header's lines: what its records say, so it can go to the
    # server as it is (a batch with a block that cannot, the first of every upload until this,
    # took the converters: a quarter of a 20,000-row upload's rows).
    rest = first.text[_first_record_end(first.text):]
    records = _chain(Block(rest, first.records[1:], first.clean), blocks)
    return Source(header[1], records, "text", "line", delimiter=delimiter)


async def _blocks(chunks: AsyncIterator[bytes], reader: RecordReader) -> AsyncIterator[Block]:
    """The stream's records a block at a time (an async generator step costs microseconds: too much
    to pay per record). Chunks are cut to 64 KiB so a block never outgrows a batch."""
    async for chunk in chunks:
        for start in range(0, len(chunk), 65536):
            block = reader.feed(chunk[start : start + 65536])
            if block.records:
                yield block
    block = reader.finish()
    if block.records:
        yield block


async def _chain(head: Block, rest: AsyncIterator[Block]) -> AsyncIterator[Block]:
    if head.records:
        yield head
    async for item in rest:
        yield item
