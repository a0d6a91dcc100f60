"""One connection as the services see it: statements, and what each one answered."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from app.db.driver import Driver, local_file

_UNBOUNDED = contextlib.nullcontext()


class StatementResult:
    """Column names and rows of one statement (plus what a write reports)."""

    __slots__ = ("names", "rows", "affected", "last_id", "warnings")

    def __init__(
        self, names: list[str], rows: Sequence[tuple], affected: int, last_id: int | None, warnings: int = 0
    ):
        self.names, self.rows, self.affected, self.last_id = names, rows, affected, last_id
        self.warnings = warnings


class Session:
    """One attempt's connection: execute statements, nothing else."""

    def __init__(self, conn: Any, cursor: Any, driver: Driver, timeout: float | None = None):
        self._conn, self._cursor, self._driver = conn, cursor, driver
        self._timeout = timeout  # per statement, for sessions that live outside the retry wrapper

    def close(self) -> None:
        """Close the connection now (its pool forgets it when it is given back)."""
        self._conn.close()

    @property
    def thread_id(self) -> int:
        """The connection's thread on the server (what KILL names)."""
        return int(self._conn.thread_id())

    def _bounded(self) -> Any:
        """This session's own timeout; inside the wrapper (none of its own) the attempt's bounds it."""
        return asyncio.timeout(self._timeout) if self._timeout is not None else _UNBOUNDED

    async def commit(self) -> None:
        await self._end(self._conn.commit)

    async def rollback(self) -> None:
        await self._end(self._conn.rollback)

    async def _end(self, end: Callable[[], Awaitable[None]]) -> None:
        """COMMIT or ROLLBACK through the driver's own call, not as a statement: asyncmy updates
        the connection's transaction flag only from a non-zero server status, so after a `COMMIT`
        statement it still saw a transaction open and its pool closed the connection on release
        (each write then paid a new connection: asyncmy's POST ran at half aiomysql's)."""
        with self._driver.translated():
            async with self._bounded():
                await end()

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> StatementResult:
        cursor = self._cursor
        with self._driver.translated():
            async with self._bounded():
                affected = await cursor.execute(sql, tuple(params))
                rows = await cursor.fetchall() if cursor.description else ()
        names = [d[0] for d in cursor.description] if cursor.description else []
        result = getattr(cursor, "_result", None)
        warnings = getattr(result, "warning_count", 0) or 0
        return StatementResult(names, rows or (), affected or 0, cursor.lastrowid, warnings)

    async def execute_all(self, sql: str, params: Sequence[Any] = ()) -> list[StatementResult]:
        """A statement that may answer several result sets (CALL): each one, in order (a CALL ends
        with a result of its own, which holds no rows and is left out)."""
        cursor, results = self._cursor, []
        with self._driver.translated():
            async with self._bounded():
                affected = await cursor.execute(sql, tuple(params))
                while True:
                    if cursor.description:
                        rows = await cursor.fetchall()
                        results.append(StatementResult([d[0] for d in cursor.description], rows or (), 0, None))
                    if not await cursor.nextset():
                        break
        if not results:
            results.append(StatementResult([], (), affected or 0, cursor.lastrowid))
        return results

    async def load_data(self, sql: str, params: Sequence[Any], data: bytes) -> StatementResult:
        """Run a `LOAD DATA LOCAL INFILE %s ...` statement that reads `data` (the first parameter
        names it, with a one-use random name)."""
        with local_file(data) as name:
            return await self.execute(sql, (name, *params))

    async def warnings(self) -> list[tuple[int, str]]:
        """(code, message) of the last statement's warnings."""
        result = await self.execute("SHOW WARNINGS")
        return [(int(row[1]), str(row[2])) for row in result.rows]
