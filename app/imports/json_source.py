"""JSON records: JSON Lines (one object a line) and JSON arrays of objects, both read as they arrive.

Each object is a row, like a POST body, read by its own keys: keys are columns, values keep their
JSON types (null is NULL), and a key an object leaves out takes the column's DEFAULT (as in a POST
body). The first object is checked before anything is written, as a CSV header is (a key the table
lacks, or a required column it leaves out, is a 400); a later object naming a key the table lacks is
reported (its position, the keys) and the rest go on.
Positions: JSON Lines count lines from 1; an array counts its elements from 0.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import AsyncIterator
from itertools import repeat
from typing import Any

import ijson
import orjson

from app.core import jsontext
from app.core.echo import shown
from app.core.errors import InvalidJson, UnknownColumn, UnsupportedMediaType
from app.db.catalog import Table
from app.imports.records import Block, Record, RecordError, Source
from app.rows.problems import RowProblem
from app.rows.values import OMITTED


class _Rows:
    """Objects -> records: cells in header order, OMITTED for a key an object leaves out. The
    header is the first object's keys until `widen` adds every other column of the table."""

    def __init__(self, first: dict):
        self.header = list(first)
        self.known = set(first)
        self.table: Table | None = None

    def widen(self, table: Table) -> list[str]:
        """Read every object by its own keys: any of the table's columns, not only the first's."""
        self.table = table
        self.header = self.header + [c.name for c in table.columns if c.name not in self.known]
        self.known = set(self.header)
        return self.header

    def record(self, position: int, value: Any) -> Record | RecordError:
        if not isinstance(value, dict):
            return RecordError(
                position,
                f"expected a JSON object, got {type(value).__name__ if value is not None else 'null'}",
                InvalidJson.code,
            )
        if len(value) <= len(self.known) and self.known.issuperset(value):
            return (position, list(map(value.get, self.header, repeat(OMITTED))))
        key = next(key for key in value if key not in self.known)
        if self.table is None:  # not widened: the first object's keys are all there is
            return RecordError(
                position, f"key '{shown(key)}' is not among the first object's", UnknownColumn.code, shown(key)
            )
        unknown = RowProblem.unknown(self.table, key)
        return RecordError(position, unknown.reason, unknown.code, unknown.column)


async def _lines(chunks: AsyncIterator[bytes], max_record_bytes: int) -> AsyncIterator[list[tuple[int, bytes]]]:
    """Non-blank lines (number, bytes), a chunk's worth at a time."""
    pending = b""
    number = 0
    first = True
    async for chunk in chunks:
        if first:
            chunk, first = chunk.removeprefix(codecs.BOM_UTF8), False
        lines = (pending + chunk).split(b"\n")
        pending = lines.pop()
        if len(pending) > max_record_bytes:
            raise InvalidJson(
                f"line {number + len(lines) + 1} is longer than {max_record_bytes} bytes",
                {"line": number + len(lines) + 1},
            )
        out = []
        for line in lines:
            number += 1
            if line.strip():
                out.append((number, line))
        if out:
            yield out
    if pending.strip():
        yield [(number + 1, pending)]


def _parse_line(number: int, line: bytes) -> Any:
    try:
        return jsontext.parse(line)
    except json.JSONDecodeError as exc:
        return RecordError(number, f"not valid JSON: {exc}", InvalidJson.code)


def _parse_lines(group: list[tuple[int, bytes]]) -> list[Any]:
    """Each line's value: by orjson in one C-level pass when every line parses and none may hold
    an integer past 64 bits; else line by line, which names each bad line."""
    lines = [line for _, line in group]
    if not jsontext.may_hold_long_integers(b"\n".join(lines)):
        try:
            return list(map(orjson.loads, lines))
        except orjson.JSONDecodeError:
            pass
    return [_parse_line(number, line) for number, line in group]


async def open_jsonl(chunks: AsyncIterator[bytes], max_record_bytes: int) -> Source:
    batches = _lines(chunks, max_record_bytes)
    pending = await anext(batches, None)
    if not pending:
        raise InvalidJson("the file holds no JSON objects: the first one names the columns")
    number, line = pending[0]
    first = _parse_line(number, line)
    if isinstance(first, RecordError) or not isinstance(first, dict):
        reason = first.reason if isinstance(first, RecordError) else "it is not an object"
        raise InvalidJson(f"line {number} must be a JSON object naming the columns: {reason}", {"line": number})
    rows = _Rows(first)

    async def blocks() -> AsyncIterator[Block]:
        group: list[tuple[int, bytes]] | None = pending
        while group is not None:
            values = _parse_lines(group)
            records = [
                value if isinstance(value, RecordError) else rows.record(number, value)
                for (number, _), value in zip(group, values)
            ]
            yield Block("", records, False)
            group = await anext(batches, None)

    return Source(rows.header, blocks(), "json", "line", widen=rows.widen)


async def open_json_array(chunks: AsyncIterator[bytes]) -> Source:
    """A JSON array of objects, parsed incrementally (ijson): memory holds a block, not the file."""
    found = ijson.sendable_list()  # the elements the parser has finished
    parser = ijson.items_coro(found, "item", use_float=True)
    stream = _checked_array(chunks)
    index = 0

    def malformed(exc: Exception, how: str) -> InvalidJson:
        done = index + len(found)  # elements read whole
        where = f"after element {done - 1}" if done else "before its first element"
        reason = str(exc).split("\n", 1)[0]
        return InvalidJson(f"the JSON array is {how} {where}: {reason}", {"index": done})

    async def more() -> bool:
        async for chunk in stream:
            if not chunk:
                continue  # an empty send would tell the parser the file has ended
            try:
                parser.send(chunk)
            except ijson.JSONError as exc:
                raise malformed(exc, "malformed") from None
            if found:
                return True
        try:
            parser.close()
        except ijson.JSONError as exc:
            raise malformed(exc, "malformed or cut short") from None
        return bool(found)

    if not await more():
        raise InvalidJson("the JSON array is empty: its first object names the columns")
    if not isinstance(found[0], dict):
        raise InvalidJson("element 0 of the array must be an object naming the columns", {"index": 0})
    rows = _Rows(found[0])

    async def blocks() -> AsyncIterator[Block]:
        nonlocal index
        while True:
            records = [rows.record(index + i, value) for i, value in enumerate(found)]
            index += len(found)
            found.clear()
            if records:
                yield Block("", records, False)
            if not await more():
                return

    return Source(rows.header, blocks(), "json", "index", widen=rows.widen)


# Strings (whole, escapes included), brackets, or a quote whose string has not ended yet.
_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]|"')
MAX_DEPTH = 1000  # as orjson, which reads request bodies and JSON Lines


class _Depth:
    """How deep the brackets nest, across chunks (strings skipped whole, in C). ijson builds nested
    values recursively: 100,000 levels in a 200 KB file killed the process."""

    def __init__(self) -> None:
        self.depth = 0
        self.carry = b""  # an unfinished string at the end of the last chunk

    def check(self, chunk: bytes) -> None:
        data = self.carry + chunk
        self.carry = b""
        depth = self.depth
        for token in _TOKENS.finditer(data):
            text = token.group()
            if text == b'"':  # a string that goes on in the next chunk
                self.carry = data[token.start() :]
                break
            if text in (b"[", b"{"):
                depth += 1
                if depth > MAX_DEPTH:
                    raise InvalidJson(f"the JSON nests deeper than {MAX_DEPTH} levels")
            elif text in (b"]", b"}"):
                depth -= 1
        if len(self.carry) > 64 * 1024 * 1024:
            raise InvalidJson("a JSON string in the file is longer than 64 MiB")
        self.depth = depth


async def _checked_array(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The chunks, once the first one shows the file is a JSON array (and not JSON Lines or an
    object), each checked for nesting before the parser sees it."""
    depth = _Depth()
    first = True
    async for chunk in chunks:
        if first:
            chunk = chunk.removeprefix(codecs.BOM_UTF8)
            stripped = chunk.lstrip()
            if not stripped:
                continue
            if b"\x00" in stripped[:64]:
                raise UnsupportedMediaType("the file holds NUL bytes: binary, not JSON")
            if not stripped.startswith(b"["):
                raise InvalidJson(
                    "a .json upload must be an array of objects ([{...}, ...]); one object a line is .jsonl",
                    {"starts_with": shown(stripped[:20].decode("utf-8", "replace"))},
                )
            first = False
        depth.check(chunk)
        yield chunk
