"""The database driver, and the only module that knows it: aiomysql or asyncmy behind one small
adapter (the gateway's own calls are the same for both), their errors translated into
`DatabaseError(code, message)`, LOAD DATA LOCAL served from memory, and asyncmy given the receive
back pressure aiomysql has.

asyncmy (Cython) is the default driver; aiomysql (same API, pure Python) can be chosen with
GATEWAY_DB_DRIVER.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import uuid
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from app.core.errors import DatabaseError

T = TypeVar("T")
LOST_CONNECTION = 2013


# LOAD DATA LOCAL INFILE from memory. The driver's LoadLocalFile (which opens whatever file the
# server names) is replaced by one that serves only batches registered here, under one-use random
# names: the server can never read a file of this machine, even if it asks.
_LOCAL_DATA: dict[str, bytes] = {}
_LOCAL_CHUNK = 1024 * 1024


class InMemoryLocalFile:
    def __init__(self, filename: str | bytes, connection: Any):
        self.filename = filename.decode("utf-8", "replace") if isinstance(filename, bytes) else filename
        self.connection = connection

    async def send_data(self) -> None:
        conn = self.connection
        data = _LOCAL_DATA.pop(self.filename, None)
        try:
            if data is None:
                raise DatabaseError(2000, "LOAD DATA LOCAL refused: only the gateway's own batches are sent")
            for start in range(0, len(data), _LOCAL_CHUNK):
                conn.write_packet(data[start : start + _LOCAL_CHUNK])
                await _drain(conn)
        finally:
            conn.write_packet(b"")  # the end of the data, whatever happened
            await _drain(conn)


@contextmanager
def local_file(data: bytes) -> Iterator[str]:
    """The one-use name under which a LOAD DATA LOCAL statement may read `data`, while inside."""
    name = f"gateway-batch-{uuid.uuid4().hex}"
    _LOCAL_DATA[name] = data
    try:
        yield name
    finally:
        _LOCAL_DATA.pop(name, None)


async def _drain(conn: Any) -> None:
    writer = getattr(conn, "_writer", None) or getattr(conn, "_proto", None)
    if writer is not None and hasattr(writer, "drain"):
        await writer.drain()


class KeepingCancellation:
    """asyncio as asyncmy's connect sees it, with a wait_for that never swallows a cancellation.

    asyncmy bounds its connect by asyncio.wait_for (it insists on a timeout). On Python 3.11 a
    wait_for whose awaitable finishes as the attempt's timeout cancels it returns the result and
    drops the cancellation: the attempt then ran on past its deadline, through the whole handshake,
    and answered 200 a second late (seen under CPU load with a slow network). This is 3.12's wait_for."""

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)

    @staticmethod
    async def wait_for(awaitable: Awaitable[T], timeout: float | None) -> T:
        async with asyncio.timeout(timeout):
            return await awaitable


class Driver:
    """The few places aiomysql and asyncmy differ."""

    def __init__(self, name: str):
        self.name = name
        self.module = importlib.import_module(name)
        errors = importlib.import_module("pymysql.err" if name == "aiomysql" else "asyncmy.errors")
        self.error = errors.MySQLError
        self.interface_error = errors.InterfaceError
        self.db_kw = "db" if name == "aiomysql" else "database"
        # The attempt timeout bounds the connect. A driver connect timeout goes through
        # asyncio.wait_for, which on Python 3.11 can swallow the attempt's cancellation: aiomysql
        # can do without one; asyncmy insists on one, and gets a wait_for that keeps it (below).
        self.connect_timeout = None if name == "aiomysql" else 60
        cursors: Any = importlib.import_module("aiomysql.cursors" if name == "aiomysql" else "asyncmy.cursors")

        class QuietCursor(cursors.Cursor):
            """Leaves warnings to us: no automatic SHOW WARNINGS round trip, no Python warnings."""

            async def _show_warnings(self, conn: Any) -> None:
                return None

        self.cursor = QuietCursor if name == "aiomysql" else cursors.Cursor
        if name == "asyncmy":
            # asyncmy's own cursor (a subclass would lose its Cython fast path) logs each warning of
            # a statement ("Duplicate entry ..." for every skipped row of an import): the gateway
            # reads and reports warnings itself.
            logging.getLogger("asyncmy").setLevel(logging.ERROR)
        self.stream_cursor = cursors.SSCursor
        connection: Any = importlib.import_module(f"{name}.connection")
        connection.LoadLocalFile = InMemoryLocalFile
        if name == "asyncmy":
            bound_receive_buffer(connection._MySQLProtocol)
            connection.asyncio = KeepingCancellation()

    def translate(self, exc: BaseException) -> DatabaseError:
        if isinstance(exc, self.interface_error) or isinstance(exc, OSError):
            return DatabaseError(LOST_CONNECTION, f"connection lost: {exc}")
        code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else 0
        message = str(exc.args[1]) if len(exc.args) > 1 else str(exc)
        return DatabaseError(code or LOST_CONNECTION, message)

    def is_error(self, exc: BaseException) -> bool:
        # TimeoutError is an OSError in Python 3.11, but it is ours (asyncio.timeout), not the driver's.
        return isinstance(exc, self.error) or (isinstance(exc, OSError) and not isinstance(exc, TimeoutError))

    @contextmanager
    def translated(self) -> Iterator[None]:
        """The driver's exceptions raised inside, as DatabaseError (everything else as it is)."""
        try:
            yield
        except Exception as exc:
            if self.is_error(exc):
                raise self.translate(exc) from exc
            raise


# What one connection may hold of a result it has not read yet, before it stops reading the socket.
RECEIVE_HIGH_WATER = 4 * 1024 * 1024
READ_LIMIT, PAUSED_READ = 1024 * 1024, 64 * 1024


def bound_receive_buffer(protocol: Any) -> None:
    """Give asyncmy's receive side the back pressure asyncio's streams (aiomysql's) have.

    asyncmy's protocol reads its socket whenever data arrives and grows its buffer to hold it, so a
    server-side cursor read more slowly than the server sends (an XLSX export writing its workbook, a
    client downloading over a slow link) gathered the rest of the result set in the gateway: a
    400,000-row export grew it by 550 MB. Reading now pauses once more than RECEIVE_HIGH_WATER bytes
    wait unread (the kernel's socket buffer then fills and TCP holds the server back), and resumes
    when the reader asks for more than is buffered. A reader waiting for data is never paused on."""
    if getattr(protocol, "_gateway_bounded", False):
        return
    get_buffer, updated, wait_for_data = protocol.get_buffer, protocol.buffer_updated, protocol.wait_for_data

    def capped(self: Any, sizehint: int) -> Any:
        # A read takes at most READ_LIMIT (PAUSED_READ once paused): after a pause the kernel may
        # hold many MB for the socket, which one read into a large free buffer would take whole, and
        # uvloop (libuv) goes on reading up to 32 times before a pause takes effect.
        view = get_buffer(self, sizehint)
        return view[: PAUSED_READ if getattr(self, "_gateway_paused", False) else READ_LIMIT]

    def buffer_updated(self: Any, nbytes: int) -> None:
        waiting = self._read_waiter is not None
        updated(self, nbytes)
        if not waiting and self.length - self.pos > RECEIVE_HIGH_WATER and self.transport is not None:
            self.transport.pause_reading()
            self._gateway_paused = True

    async def wait_for_more(self: Any, need: int) -> None:
        if getattr(self, "_gateway_paused", False):
            self._gateway_paused = False
            if self.transport is not None:
                self.transport.resume_reading()
        await wait_for_data(self, need)

    protocol.get_buffer, protocol.buffer_updated, protocol.wait_for_data = capped, buffer_updated, wait_for_more
    protocol._gateway_bounded = True
