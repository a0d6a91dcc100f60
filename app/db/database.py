"""The database as the services use it: one statement, one transaction, one stream or one long
transaction, each run under the timeout/retry wrapper (retry.py), so nothing reaches the database
around it. Where an attempt runs, and what becomes of its connection, is connections.py's; what an
error means is errors.py's.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from app.core.config import Settings
from app.core.errors import DatabaseError, GatewayError, GatewayTimeout
from app.db.connections import Connections
from app.db.errors import commit_outcome, no_answer, statement_outcome
from app.db.nodes import Node
from app.db.retry import Attempt, Resilience
from app.db.session import Session, StatementResult

T = TypeVar("T")
__all__ = ["Database", "Session", "StatementResult"]


class Database:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.connections = Connections(settings)
        self.resilience = Resilience(settings.attempt_timeouts_ms, settings.retry_waits_ms, settings.commit_timeout_ms)
        # Multi-thousand-row writes (import batches) cannot be held to an OLTP deadline: same rules,
        # longer attempts.
        self.bulk_resilience = Resilience(
            settings.bulk_attempt_timeouts_ms, settings.retry_waits_ms, settings.commit_timeout_ms
        )
        # Reads that may take seconds (aggregates, exports, exact counts): the route chooses it.
        self.slow_resilience = Resilience(
            settings.slow_read_attempt_timeouts_ms, settings.retry_waits_ms, settings.commit_timeout_ms
        )
        self.stream_timeout = settings.stream_timeout_s
        self.statement_timeout = settings.statement_timeout_s
        self.retries: dict[str, int] = {}  # retried attempts, by what failed
        self.gave_up: dict[str, int] = {}  # calls that ended in a 5xx, by code
        for resilience in (self.resilience, self.bulk_resilience, self.slow_resilience):
            resilience.on_retry, resilience.on_give_up = self._count_retry, self._count_give_up

    # What the rest of the gateway reads of the connections (health, metrics, the catalog).
    @property
    def nodes(self) -> Any:
        return self.connections.nodes

    @property
    def address(self) -> Any:
        return self.connections.address

    @property
    def is_mariadb(self) -> bool:
        return self.connections.is_mariadb

    @property
    def supports_returning(self) -> bool:
        return self.connections.supports_returning

    @property
    def kills(self) -> int:
        return self.connections.kills

    def pool_stats(self) -> dict[str, int]:
        return self.connections.pool_stats()

    def pool_stats_by_pool(self) -> dict[str, dict[str, int]]:
        return self.connections.pool_stats_by_pool()

    async def open(self) -> None:
        await self.connections.open()

    async def close(self) -> None:
        await self.connections.close()

    def _count_retry(self, exc: BaseException) -> None:
        if isinstance(exc, TimeoutError):
            cause = "timeout"
        elif isinstance(exc, DatabaseError):
            # A deadlock answered to COMMIT is a Galera certification conflict (another node's
            # transaction won): counted apart from lock deadlocks inside a transaction.
            cause = "certification_conflict" if exc.code == 1213 and exc.at_commit else f"db_{exc.code}"
        else:
            cause = "pool"
        self.retries[cause] = self.retries.get(cause, 0) + 1

    def _count_give_up(self, code: str) -> None:
        self.gave_up[code] = self.gave_up.get(code, 0) + 1

    # --- one attempt ----------------------------------------------------------------------

    def bounded(self, sql: str, seconds: float) -> str:
        """A SELECT that the server itself stops shortly after `seconds` (the attempt's timeout), so
        a runaway read ends even if the KILL after a timeout is lost: `SET STATEMENT
        max_statement_time=... FOR` on MariaDB, the MAX_EXECUTION_TIME hint on MySQL. The server's
        limit is a little later than the gateway's own, which stays the one that normally acts."""
        if seconds <= 0 or sql[:6].upper() != "SELECT":
            return sql
        seconds = seconds * 1.1 + 0.05
        if self.is_mariadb:
            return f"SET STATEMENT max_statement_time={seconds:.3f} FOR {sql}"
        return f"SELECT /*+ MAX_EXECUTION_TIME({int(seconds * 1000)}) */{sql[6:]}"

    def bounded_write(self, sql: str, seconds: float) -> str:
        """A write the server stops by itself after `seconds` and rolls back (MariaDB's
        max_statement_time covers writes; MySQL's MAX_EXECUTION_TIME only SELECTs, so there the
        gateway's own timer and KILL QUERY bound it)."""
        return f"SET STATEMENT max_statement_time={seconds:.3f} FOR {sql}" if self.is_mariadb else sql

    async def _fetch_once(
        self, attempt: Attempt, sql: str, params: Sequence[Any], replica: bool = False
    ) -> StatementResult:
        statement = self.bounded(sql, attempt.seconds)

        async def on(pool: Any) -> StatementResult:
            async with self.connections.session(pool) as session:
                return await session.execute(statement, params)

        return await self.connections.read(on, replica)

    async def _transaction_once(self, attempt: Attempt, work: Callable[[Session], Awaitable[T]]) -> T:
        return await self.connections.on_node(lambda node: self._transaction_on(node, attempt, work))

    async def _transaction_on(self, node: Node, attempt: Attempt, work: Callable[[Session], Awaitable[T]]) -> T:
        # A write connection has autocommit off: its first statement opens the transaction (no
        # BEGIN round trip), and nothing is durable until the COMMIT below.
        async with self.connections.session(node.write_pool) as session:
            try:
                result = await work(session)
            except (DatabaseError, GatewayError) as exc:
                # Nothing was committed; on a broken connection the server rolls back on disconnect.
                if not (isinstance(exc, DatabaseError) and no_answer(exc.code)):
                    await session.rollback()
                raise
            attempt.begin_commit()
            try:
                await session.commit()
            except DatabaseError as exc:
                unknown = commit_outcome(exc)
                if unknown is not None:
                    raise unknown from exc
                # An error answer (a deadlock: on Galera, a certification conflict) means it was
                # rolled back: retryable as a whole.
                attempt.end_commit()
                exc.at_commit = True
                raise
            attempt.end_commit()
            return result

    async def _statement_once(self, attempt: Attempt, sql: str, params: Sequence[Any]) -> StatementResult:
        return await self.connections.on_node(lambda node: self._statement_on(node, attempt, sql, params))

    async def _statement_on(self, node: Node, attempt: Attempt, sql: str, params: Sequence[Any]) -> StatementResult:
        """One write statement on an autocommit connection: it commits itself, so its answer is the
        COMMIT's. The server is given what is left of the attempt (it stops the statement and rolls
        it back: 1969); if the server has not answered a little after that, the statement is killed
        (KILL QUERY) and its own answer read on its connection: 1317, rolled back, or OK, applied.
        Only silence leaves the outcome unknown."""
        connections = self.connections
        async with connections.session(node.pool) as session:
            loop = asyncio.get_running_loop()
            deadline = attempt.timeout.when() if attempt.timeout is not None else None
            left = max(0.01, deadline - loop.time()) if deadline is not None else attempt.seconds
            statement = self.bounded_write(sql, left)
            attempt.begin_commit()  # from here the statement may have applied: no blind retry
            running = asyncio.ensure_future(session.execute(statement, params))
            try:
                try:
                    async with asyncio.timeout(left * 1.1 + 0.05):  # the server's own limit acts first
                        return await asyncio.shield(running)
                except TimeoutError:
                    # Killed (or answered meanwhile) before the connection can serve anyone else.
                    killed = running.done() or await connections.kill(session.thread_id, node.address, query=True)
                    async with asyncio.timeout(connections.kill_timeout):
                        result = await running  # the statement's own answer: OK, or 1317 (rolled back)
                    if not killed:
                        session.close()  # a KILL QUERY still on its way must find no later statement here
                    return result
            except DatabaseError as exc:
                unknown = statement_outcome(exc)
                if unknown is not None:  # the connection went silent: the statement may have applied
                    raise unknown from exc
                attempt.end_commit()  # the server answered with an error: nothing was applied
                raise
            except TimeoutError as exc:
                running.cancel()
                raise commit_outcome(exc) or exc from exc
            finally:
                if not running.done():
                    running.cancel()

    # --- the public surface: every call goes through the wrapper -----------------------------

    async def fetch(
        self, sql: str, params: Sequence[Any] = (), *, replica: bool = False, slow: bool = False
    ) -> StatementResult:
        """One statement on a pooled connection (autocommit). `replica`: a read that may be served
        by a healthy replica (DATABASE_REPLICA_URLS), falling back to the primary. `slow`: a read
        allowed seconds (GATEWAY_SLOW_READ_ATTEMPT_TIMEOUTS_MS). A SELECT's attempt timeout is
        also given to the server (`bounded`)."""
        resilience = self.slow_resilience if slow else self.resilience
        return await resilience.run(lambda attempt: self._fetch_once(attempt, sql, params, replica))

    async def transaction(self, work: Callable[[Session], Awaitable[T]], *, bulk: bool = False) -> T:
        """Run `work` in one transaction per attempt: work, then COMMIT. A retry starts afresh.
        `bulk` uses the bulk schedule (longer attempts) for large batches."""
        resilience = self.bulk_resilience if bulk else self.resilience
        return await resilience.run(lambda attempt: self._transaction_once(attempt, work))

    async def write(self, sql: str, params: Sequence[Any] = (), *, bulk: bool = False) -> StatementResult:
        """One write statement, committed by itself (autocommit): one round trip, where a
        transaction takes two (the statement, then COMMIT). Its outcome is known whenever the server
        answers: an error answer, a statement the server stopped or that was killed, applied nothing
        and is retried as before; an OK is a success even after the gateway's timer fired; only a
        connection that went silent is 504 commit_outcome_unknown, as a silent COMMIT is."""
        resilience = self.bulk_resilience if bulk else self.resilience
        return await resilience.run(lambda attempt: self._statement_once(attempt, sql, params))

    async def call(
        self, statements: Sequence[tuple[str, Sequence[Any]]], *, retried: bool = False
    ) -> list[list[StatementResult]]:
        """Statements around a CALL (or a function), on one autocommit connection that is closed
        after: a routine may change its session (SET time_zone, sql_mode, variables), which must
        not reach the next request on a pooled connection. Run at most once unless `retried` (a
        function that only reads): a procedure may commit as it goes, so once they are sent nothing
        is retried; an error answered is the caller's, no answer in time (the statement is killed)
        or a lost connection is 504 commit_outcome_unknown. Each statement's result sets, in order."""
        return await self.resilience.run(
            lambda attempt: self.connections.on_node(lambda node: self._call_on(node, attempt, statements, retried))
        )

    async def _call_on(
        self, node: Node, attempt: Attempt, statements: Sequence[tuple[str, Sequence[Any]]], retried: bool
    ) -> list[list[StatementResult]]:
        connections = self.connections
        async with connections.session(node.pool) as session:
            if not retried:
                attempt.begin_commit()  # from here it may have run: no retry

            async def each() -> list[list[StatementResult]]:
                return [await session.execute_all(sql, params) for sql, params in statements]

            running = asyncio.ensure_future(each())
            try:
                return await asyncio.shield(running)
            except DatabaseError as exc:
                raise (None if retried else statement_outcome(exc)) or exc from exc
            except (TimeoutError, asyncio.CancelledError):
                if not running.done():
                    await connections.kill(session.thread_id, node.address, query=True)
                    running.cancel()
                raise
            finally:
                session.close()  # never back to the pool: the routine may have changed its session

    async def ping(self) -> None:
        await self.fetch("SELECT 1")

    @asynccontextmanager
    async def stream(
        self, sql: str, params: Sequence[Any], batch_rows: int, *, replica: bool = False, slow: bool = False
    ) -> AsyncIterator[tuple[list[str], AsyncIterator[Sequence[tuple]]]]:
        """Read a query through a server-side cursor, in batches, in constant memory.

        The wrapper covers running the query and reading the first batch: until then a failure is
        retried or reported like any other call. After that rows flow with no retry (a retry would
        repeat rows already sent), each batch bounded by GATEWAY_STREAM_TIMEOUT_S; a failure, or a
        consumer that stops early, closes the connection and kills the query on the server.
        """
        connections, driver = self.connections, self.connections.driver

        async def start_on(pool: Any) -> tuple[Any, Any, Any, Sequence[tuple]]:
            conn = await connections.acquire(pool)
            try:
                with driver.translated():
                    cursor = await conn.cursor(driver.stream_cursor)
                    await cursor.execute(sql, tuple(params))  # not bounded: the rows flow long after
                    first = await cursor.fetchmany(batch_rows)
            except BaseException as exc:
                await connections.release(conn, pool, exc)
                raise
            return pool, conn, cursor, first

        resilience = self.slow_resilience if slow else self.resilience
        pool, conn, cursor, first = await resilience.run(lambda attempt: connections.read(start_on, replica))
        names = [d[0] for d in cursor.description]
        exhausted = False

        async def batches() -> AsyncIterator[Sequence[tuple]]:
            nonlocal exhausted
            batch = first
            while batch:
                yield batch
                with driver.translated():
                    async with asyncio.timeout(self.stream_timeout):
                        batch = await cursor.fetchmany(batch_rows)
            exhausted = True

        try:
            yield names, batches()
        finally:
            if exhausted:
                pool.release(conn)
            else:
                await connections.discard(conn, pool)

    @asynccontextmanager
    async def long_transaction(self) -> AsyncIterator[Session]:
        """One transaction over many statements on one connection (an atomic import).

        Getting the connection goes through the wrapper; the statements cannot (a retry would need
        the whole input again), so each is bounded by GATEWAY_STATEMENT_TIMEOUT_S, and any failure
        rolls everything back. COMMIT with no answer is 504 commit_outcome_unknown, as elsewhere.
        """
        connections = self.connections

        async def acquire(node: Node) -> tuple[Any, Any]:
            return node.write_pool, await connections.acquire(node.write_pool)

        pool, conn = await self.resilience.run(lambda attempt: connections.on_node(acquire))
        session = Session(
            conn, await conn.cursor(connections.driver.cursor), connections.driver, self.statement_timeout
        )
        try:
            yield session
        except BaseException as exc:
            healthy = isinstance(exc, GatewayError) or (isinstance(exc, DatabaseError) and not no_answer(exc.code))
            if healthy:
                try:
                    await session.rollback()
                except BaseException:
                    healthy = False
            await connections.release(conn, pool, None if healthy else exc)
            if isinstance(exc, TimeoutError):
                raise GatewayTimeout("a statement of the transaction did not finish in time") from exc
            raise
        try:
            await session.commit()
        except BaseException as exc:
            await connections.release(conn, pool, exc)
            unknown = commit_outcome(exc, "import")
            if unknown is not None:
                raise unknown from exc
            raise
        await connections.release(conn, pool, None)
