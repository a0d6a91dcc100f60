"""The binlog, read as committed transactions of row changes.

One replication connection (mysql-replication, blocking, in a thread of its own: the library is
synchronous) from a transaction's start. Each transaction is handed on whole, when its commit is
read, in commit order: its position, GTID, commit time, row changes of the served database, and the
tables a statement in it defined anew (CREATE, ALTER, DROP, RENAME: the catalog looks again).

The server must log rows with their full images and column metadata (binlog_format=ROW,
binlog_row_image=FULL, binlog_row_metadata=FULL): the metadata names each event's columns as they
were when it was written (an event before an ALTER keeps its old columns) and tells binary columns
from text ones, which nothing else in an event does.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from pymysqlreplication import BinLogStreamReader
from pymysqlreplication.event import HeartbeatLogEvent, MariadbGtidEvent, QueryEvent, RotateEvent, XidEvent
from pymysqlreplication.row_event import DeleteRowsEvent, UpdateRowsEvent, WriteRowsEvent

from app.feed.positions import Position

log = logging.getLogger("gateway.feed")
Op = Literal["insert", "update", "delete"]
STANDALONE = 1  # a GTID event's flag: the transaction is one statement (DDL), with no COMMIT of its own
_VERB = re.compile(r"^\s*(?:/\*.*?\*/\s*)*(CREATE|ALTER|DROP|RENAME|TRUNCATE)\b", re.IGNORECASE | re.DOTALL)
_KIND = re.compile(r"\b(TABLES?|VIEW|INDEX)\b(?:\s+IF\s+(?:NOT\s+)?EXISTS)?", re.IGNORECASE)
_ON = re.compile(r"\bON\s+", re.IGNORECASE)
_NAME = re.compile(r"\s*(?:`((?:[^`]|``)+)`|([\w$]+))(?:\s*\.\s*(?:`((?:[^`]|``)+)`|([\w$]+)))?")


@dataclass(frozen=True, slots=True)
class Change:
    table: str
    op: Op
    before: dict[str, Any] | None  # the row before (update, delete): column -> value as the library decodes it
    after: dict[str, Any] | None  # the row after (insert, update)


@dataclass(slots=True)
class Transaction:
    position: Position  # where it starts: a reader started here reads it whole
    gtid: str | None
    committed_at: int  # seconds since the epoch (the binlog's precision)
    changes: list[Change] = field(default_factory=list)
    defined: set[str] = field(default_factory=set)  # tables a statement created, altered or dropped ("*": unknown)
    end: Position | None = None  # where its last event ends: a server whose binlog ends here has nothing newer

    def at(self, index: int) -> Position:
        """The position of its change number `index`."""
        return Position(self.position.seq, self.position.offset, index, self.position.file)

    @property
    def last(self) -> Position:
        """Its last change's position: a reader resuming after it starts at the next transaction."""
        return self.at(max(len(self.changes) - 1, 0))


@dataclass(frozen=True)
class Source:
    """How to reach the server (the connection keywords PyMySQL takes) and which database to read."""

    connect: dict[str, Any]
    schema: str


def read(source: Source, start: Position, emit: Callable[[Transaction], None], stop: threading.Event, *,
         server_id: int, heartbeat_s: float = 1.0) -> None:
    """Read from `start` (a transaction's first event) until `stop` is set, handing each committed
    transaction to `emit` (which may block: the server holds the rest). Raises what the connection
    raises (the caller decides whether to start again)."""
    stream = BinLogStreamReader(
        connection_settings=dict(source.connect), server_id=server_id, blocking=True, resume_stream=True,
        # is_mariadb=False: the library's MariaDB mode ignores log_file and log_pos (it asks for the
        # oldest file); the plain dump from a file and offset is MariaDB's too, and the library sets
        # @mariadb_slave_capability=4 either way, so MariaDB's own GTID events still come
        log_file=start.file, log_pos=start.offset, is_mariadb=False, slave_heartbeat=heartbeat_s,
        only_events=[MariadbGtidEvent, QueryEvent, XidEvent, WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent,
                     HeartbeatLogEvent, RotateEvent],
        enable_logging=False,
    )
    current: Transaction | None = None
    standalone = False
    try:
        for event in stream:
            if stop.is_set():
                return
            if isinstance(event, MariadbGtidEvent):
                offset = event.packet.log_pos - event.packet.event_size  # the whole event: header and checksum too
                current = Transaction(Position.start(stream.log_file, offset), event.gtid, event.timestamp)
                standalone = bool(event.flags & STANDALONE)
            elif current is None:
                continue  # the end of a transaction begun before `start`, or a heartbeat
            elif isinstance(event, (WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent)):
                if event.schema == source.schema:
                    current.changes.extend(_changes(event))
            elif isinstance(event, XidEvent):
                current.end = Position.start(stream.log_file, stream.log_pos)
                emit(current)
                current = None
            elif isinstance(event, QueryEvent):
                query = event.query if isinstance(event.query, str) else bytes(event.query).decode("utf-8", "replace")
                verb = query.strip().upper()
                if verb == "COMMIT":
                    current.end = Position.start(stream.log_file, stream.log_pos)
                    emit(current)
                    current = None
                elif verb not in ("BEGIN", "ROLLBACK"):
                    schema = event.schema.decode() if isinstance(event.schema, bytes) else event.schema
                    current.defined |= defined_tables(query, schema, source.schema)
                    if standalone:
                        current.end = Position.start(stream.log_file, stream.log_pos)
                        emit(current)
                        current = None
    finally:
        stream.close()


def _changes(event: Any) -> list[Change]:
    table = event.table
    if isinstance(event, WriteRowsEvent):
        return [Change(table, "insert", None, row["values"]) for row in event.rows]
    if isinstance(event, DeleteRowsEvent):
        return [Change(table, "delete", row["values"], None) for row in event.rows]
    return [Change(table, "update", row["before_values"], row["after_values"]) for row in event.rows]


def defined_tables(query: str, default_schema: str, schema: str) -> set[str]:
    """The tables (and views) of `schema` a DDL statement defines anew, or {"*"} when it is DDL whose
    tables cannot be told (the catalog then looks at all of them); empty for any other statement."""
    verb = _VERB.match(query)
    if verb is None:
        return set()
    kind = _KIND.search(query, verb.end())
    if kind is None:
        return {"*"}
    rest = query[kind.end():]
    if kind[1].upper() == "INDEX":  # CREATE/DROP INDEX name ON table
        on = _ON.search(rest)
        names = [_name(rest[on.end():])] if on else [None]
    elif verb[1].upper() in ("DROP", "RENAME"):  # DROP TABLE a, b; RENAME TABLE a TO b, c TO d
        names = [_name(part) for part in re.split(r",|\bTO\b", rest, flags=re.IGNORECASE)]
    else:
        names = [_name(rest)]
    if any(n is None for n in names):
        return {"*"}
    return {table for db, table in (n for n in names if n is not None) if (db or default_schema) == schema}


def _name(text: str) -> tuple[str | None, str] | None:
    """The (schema, table) a text starts with (schema None when unqualified)."""
    found = _NAME.match(text)
    if found is None:
        return None
    first = (found[1] or "").replace("``", "`") or found[2]
    second = (found[3] or "").replace("``", "`") or found[4]
    return (first, second) if second else (None, first)
