"""How a batch reaches the gateway: HTTP uploads, the WebSocket, or a Kafka topic the gateway's
ingest process reads. Each sends one batch under its key and says what became of it:

    Confirmed   the batch is in (its counts), or published (Kafka: the ingest applies it later)
    Refused     the gateway refused rows of it and wrote none: {index in the batch: reason}
    Transient   worth sending again (no answer, 429/502/503/504, the database away)
    Stop        not worth it (credentials, a table that does not exist, a message too big)

Every key is the batch's idempotency key: the gateway applies a key once, whichever way it came
(HTTP: Idempotency-Key; WebSocket and Kafka: the message's id).
"""

from __future__ import annotations

import asyncio
import csv
import json
import re
from dataclasses import dataclass, field
from itertools import repeat
from operator import itemgetter
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import httpx
import orjson

from gateway_client import readers

RETRIED_STATUS = frozenset({429, 502, 503, 504})
Pending = list[tuple[int, Any]]  # (the row's line in the file, the row as the reader gives it)


class Stop(Exception):
    """The run cannot go on (said in one line); what is confirmed is saved."""


class Transient(Exception):
    """A send worth trying again: no answer, or 429/502/503/504."""

    def __init__(self, reason: str, retry_after: float | None = None):
        super().__init__(reason)
        self.retry_after = retry_after


@dataclass
class Confirmed:
    sent: int  # bytes
    inserted: int = 0
    updated: int = 0
    skipped: int = 0
    published: int = 0  # Kafka: rows handed to the broker


@dataclass
class Refused:
    sent: int
    reasons: dict[int, str] = field(default_factory=dict)  # index in the batch -> why


Answer = Confirmed | Refused


class Http:
    """One atomic `POST /api/batch/import` a batch, with an Idempotency-Key."""

    def __init__(
        self, url: str, table: str, mode: str, headers: dict[str, str], concurrency: int, timeout_s: float,
        null: str | None = None,
    ):
        self.table, self.mode, self.null = table, mode, null
        timeout = httpx.Timeout(timeout_s, connect=10.0)
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        self.http = httpx.AsyncClient(base_url=url, headers=headers, timeout=timeout, limits=limits)

    async def close(self) -> None:
        await self.http.aclose()

    async def send(self, rows: readers.Rows, pending: Pending, key: str) -> Answer:
        extension, body = readers.encode_batch(rows, pending)
        params = {"table": self.table, "mode": self.mode, "atomic": "true", "format": extension}
        if self.null is not None:
            params["null"] = self.null
        try:
            response = await self.http.post(
                "/api/batch/import", params=params, headers={"Idempotency-Key": key},
                files={"file": (f"batch.{extension}", body, "application/octet-stream")},
            )
        except httpx.TransportError as exc:
            raise Transient(f"no answer ({type(exc).__name__})") from exc
        if response.status_code in RETRIED_STATUS:
            raise Transient(f"{response.status_code}", _retry_after(response))
        try:
            answer = response.json()
        except ValueError:
            raise Stop(f"the gateway refused it: {response.status_code}: {response.text[:200]}") from None
        if response.status_code == 200:
            data = answer["data"]
            return Confirmed(len(body), data["rows_inserted"], data["rows_updated"], data["rows_skipped"])
        report = answer.get("details") if isinstance(answer, dict) else None
        if response.status_code == 422 and answer.get("error") == "import_rolled_back" and isinstance(report, dict):
            by_position = {e.get("line"): e for e in report.get("errors", []) if e.get("line") is not None}
            reasons = {
                index: _reason(by_position[position])
                for index, position in enumerate(readers.positions(rows, pending)) if position in by_position
            }
            if reasons:
                return Refused(len(body), reasons)
        raise Stop(f"the gateway refused it: {response.status_code} {answer.get('error')}: {answer.get('message')}")


class WebSocket:
    """Batches as messages {"id": key, "rows": [...]} on one connection to /api/{table}/ws, as many
    in flight as the run's concurrency; each answered once committed. A dropped connection fails
    the batches in flight as Transient: they are sent again on a new one (the ids keep them once)."""

    def __init__(self, url: str, table: str, mode: str, headers: dict[str, str], null: str | None = None):
        self.null = null
        parts = urlsplit(url)
        scheme = "wss" if parts.scheme == "https" else "ws"
        path = f"{parts.path.rstrip('/')}/api/{quote(table, safe='')}/ws"
        self.uri = urlunsplit((scheme, parts.netloc, path, f"mode={mode}", ""))
        self.headers = headers
        self._socket: Any = None
        self._reader: asyncio.Task | None = None
        self._waiting: dict[str, asyncio.Future] = {}
        self._opening = asyncio.Lock()

    async def close(self) -> None:
        if self._socket is not None:
            await self._socket.close()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)

    async def _connected(self) -> Any:
        import websockets

        async with self._opening:
            if self._socket is None:
                try:
                    self._socket = await websockets.connect(
                        self.uri, additional_headers=self.headers, max_size=None, compression=None, open_timeout=10
                    )
                except (OSError, TimeoutError, websockets.InvalidHandshake) as exc:
                    raise Transient(f"no connection ({type(exc).__name__})") from exc
                self._reader = asyncio.create_task(self._read(self._socket))
            return self._socket

    async def _read(self, socket: Any) -> None:
        """Answers to their batches; when the connection ends, what waits learns why."""
        import websockets

        problem: Exception = Transient("the connection closed")
        try:
            async for text in socket:
                answer = json.loads(text)
                future = self._waiting.pop(str(answer.get("id")), None)
                if future is not None and not future.done():
                    future.set_result(answer)
        except websockets.ConnectionClosed:
            pass
        code, reason = socket.close_code, socket.close_reason or ""
        if code == 1008:
            problem = Stop(f"the gateway closed the stream: {reason or 'credentials, scope or table refused'}")
        elif code == 1009:
            problem = Stop(f"a batch is over the gateway's message size ({reason}): lower --batch-rows")
        if self._socket is socket:
            self._socket = None
        waiting, self._waiting = self._waiting, {}
        for future in waiting.values():
            if not future.done():
                future.set_exception(problem)

    async def send(self, rows: readers.Rows, pending: Pending, key: str) -> Answer:
        import websockets

        objects, unsendable = json_rows(rows, pending, self.null)
        if unsendable:
            return Refused(0, unsendable)
        socket = await self._connected()
        body = message(key, objects)
        future = asyncio.get_running_loop().create_future()
        self._waiting[key] = future
        try:
            await socket.send(body)
        except websockets.ConnectionClosed:
            pass  # the reader fails the future with the reason
        answer = await future
        sent = len(body)
        status = answer.get("status")
        if status in ("applied", "duplicate"):  # a duplicate: applied by an earlier send of this key
            return Confirmed(sent, inserted=int(answer.get("rows_written") or 0))
        errors = answer.get("errors") or []
        if status == "rejected":
            reasons = {e["index"]: _reason(e) for e in errors if isinstance(e.get("index"), int)}
            if reasons:
                return Refused(sent, reasons)
            raise Stop(f"the gateway refused it: {'; '.join(str(e.get('reason')) for e in errors)[:300]}")
        raise Transient(f"{answer.get('code', status)}: {'; '.join(str(e.get('reason')) for e in errors)[:200]}")


class Kafka:
    """Batches published to a topic as {"id": key, "rows": [...]}: the gateway's ingest process
    applies each id once (a batch published twice, by a retry or a second run, goes in once).
    Rows the ingest refuses go to its dead letters: the broker gives the client no answer."""

    def __init__(self, bootstrap: str, topic: str, null: str | None = None):
        self.bootstrap, self.topic, self.null = bootstrap, topic, null
        self._producer: Any = None

    async def _started(self) -> Any:
        from aiokafka import AIOKafkaProducer
        from aiokafka.errors import KafkaError

        if self._producer is None:
            producer = AIOKafkaProducer(
                bootstrap_servers=self.bootstrap.split(","), acks="all", linger_ms=5, max_request_size=64 << 20,
                request_timeout_ms=30_000,
            )
            try:
                await producer.start()
            except KafkaError as exc:
                await producer.stop()
                raise Transient(f"no Kafka broker ({type(exc).__name__})") from exc
            self._producer = producer
        return self._producer

    async def close(self) -> None:
        if self._producer is not None:
            await self._producer.stop()

    async def send(self, rows: readers.Rows, pending: Pending, key: str) -> Answer:
        from aiokafka.errors import KafkaError

        objects, unsendable = json_rows(rows, pending, self.null)
        if unsendable:
            return Refused(0, unsendable)
        producer = await self._started()
        body = message(key, objects)
        try:
            await producer.send_and_wait(self.topic, body, key=key.encode())
        except KafkaError as exc:
            raise Transient(f"not published ({type(exc).__name__})") from exc
        return Confirmed(len(body), published=len(pending))


def message(key: str, objects: list[Any]) -> bytes:
    """A batch as the stream message {"id": key, "rows": [...]}, UTF-8 JSON (orjson: about 8x the
    json module; it refuses integers past 64 bits, which the json module writes)."""
    envelope = {"id": key, "rows": objects}
    try:
        return orjson.dumps(envelope)
    except orjson.JSONEncodeError:
        return json.dumps(envelope, ensure_ascii=False).encode()


def json_rows(rows: readers.Rows, batch: Pending, null: str | None = None) -> tuple[list[Any], dict[int, str]]:
    """A batch's rows as JSON objects, and the rows that cannot be one (index -> why: refused here,
    as the gateway refuses them over HTTP). CSV/TSV records are parsed by one csv reader over the
    batch, NULL as the CSV import reads it (`null`: that marker; None: an unquoted empty cell or
    \\N, see `_nulls`); sheets and JSON Lines rows go as they are (a
    line that is not JSON never gets here: the importer refuses it itself). C loops (map) where
    a row at a time would cost a Python step: this is most of `--mode ws`'s CPU."""
    if rows.kind not in ("csv", "tsv"):
        return [row for _, row in batch], {}
    delimiter = "\t" if rows.kind == "tsv" else ","
    records = list(map(itemgetter(1), batch))
    try:
        texts = list(map(bytes.decode, records))
    except UnicodeDecodeError:
        texts = [record.decode("utf-8", "replace") for record in records]
    parsed: list[list[str]] | None
    try:  # a record never reads as two rows (a newline outside quotes is an error), two may read as one
        parsed = list(csv.reader(texts, delimiter=delimiter))
    except csv.Error:
        parsed = None
    one_each = parsed is not None and len(parsed) == len(texts)
    cells: list[list[str] | str] = list(parsed) if one_each and parsed else [_cells(text, delimiter) for text in texts]
    width = len(rows.header)
    if not one_each or set(map(len, cells)) != {width}:  # a record that is not CSV, or has the wrong width
        unsendable = {
            index: row if isinstance(row, str) else f"expected {width} fields, got {len(row)}"
            for index, row in enumerate(cells) if isinstance(row, str) or len(row) != width
        }
        if unsendable:
            return [], unsendable
    objects: list[dict[str, str | None]] = list(map(dict, map(zip, repeat(rows.header), cells)))
    marker = "\\N" if null is None else null
    for index, row in enumerate(cells):
        if marker in row or (null is None and "" in row):
            if null is None:
                nulls = _nulls(texts[index], list(row), delimiter)
            else:
                nulls = {i for i, value in enumerate(row) if value == null}
            objects[index] = {name: (None if i in nulls else row[i]) for i, name in enumerate(rows.header)}
    return objects, {}


def _nulls(text: str, row: list[str], delimiter: str) -> set[int]:
    """CSV's standard convention: the cells of a record that are NULL, an empty cell or \\N written
    without quotes (quoted, `""` and `"\\N"` are text). `text` is the record as in the file."""
    candidates = {i for i, value in enumerate(row) if value in ("", "\\N")}
    if '"' not in text:
        return candidates
    fields = _FIELDS[delimiter].findall(text.rstrip("\r\n") + delimiter)
    return {i for i in candidates if i >= len(fields) or fields[i][:1] != '"'}


# A record's fields as written (each followed by the delimiter): quoted, or up to the next delimiter.
_FIELDS = {d: re.compile(f'("(?:[^"]|"")*"|[^{d}]*){d}') for d in (",", "\t")}


def _cells(text: str, delimiter: str) -> list[str] | str:
    """One record's cells, or why it is not a CSV record."""
    try:
        found = list(csv.reader([text], delimiter=delimiter))
    except csv.Error as exc:
        return f"not a CSV record: {exc}"
    return found[0] if len(found) == 1 else "not a CSV record: it reads as more than one row"


def _reason(error: dict) -> str:
    column = f"{error['column']}: " if error.get("column") else ""
    return column + str(error.get("reason", "refused"))


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return min(float(value), 60.0) if value is not None else None
    except ValueError:
        return None
