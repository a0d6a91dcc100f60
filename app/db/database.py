"""The pool and the only module that knows the driver.

asyncmy (Cython) is the default driver; aiomysql (same API, pure Python) can be chosen with
GATEWAY_DB_DRIVER.
Every public method runs inside the resiliency wrapper, so nothing can reach the database around it.
Driver exceptions are translated here into `DatabaseError(code, message)`.

A failed or cancelled attempt never returns its connection to the pool: the connection is closed, and
if a statement was in flight it is killed on the server over a fresh connection, so a timed-out
statement cannot finish behind our back (or keep holding locks the retry needs).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from app.core.config import DatabaseAddress, Settings
from app.core.errors import CommitOutcomeUnknown, DatabaseError, GatewayError, GatewayTimeout
from app.db.nodes import PROBE, Node, Nodes
from app.db.retry import CONNECTIVITY_CODES, Attempt, Resilience, commit_unknown

log = logging.getLogger("gateway.database")
T = TypeVar("T")

CLIENT_FOUND_ROWS = 2  # affected rows = rows matched, not rows changed (an idempotent PUT reports 1)
LOST_CONNECTION = 2013
# Sessions run in UTC so TIMESTAMP values mean the same thing on every instance; strict mode makes a
# value that does not fit an error rather than a silent truncation.
INIT_COMMAND = "SET time_zone = '+00:00', sql_mode = CONCAT_WS(',', @@sql_mode, 'STRICT_ALL_TABLES')"


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


async def _drain(conn: Any) -> None:
    writer = getattr(conn, "_writer", None) or getattr(conn, "_proto", None)
    if writer is not None and hasattr(writer, "drain"):
        await writer.drain()


class StatementResult:
    """Column names and rows of one statement (plus what a write reports)."""

    __slots__ = ("names", "rows", "affected", "last_id", "warnings")

    def __init__(
        self, names: list[str], rows: Sequence[tuple], affected: int, last_id: int | None, warnings: int = 0
    ):
        self.names, self.rows, self.affected, self.last_id = names, rows, affected, last_id
        self.warnings = warnings


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
        # asyncio.wait_for, which on Python 3.11 can swallow the attempt's cancellation (the attempt
        # then overruns its timeout): aiomysql can do without one; asyncmy insists on one.
        self.connect_timeout = None if name == "aiomysql" else 60
        cursors = importlib.import_module("aiomysql.cursors" if name == "aiomysql" else "asyncmy.cursors")

        class QuietCursor(cursors.Cursor):  # type: ignore[misc, valid-type]
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
        connection = importlib.import_module(f"{name}.connection")
        connection.LoadLocalFile = InMemoryLocalFile
        if name == "asyncmy":
            bound_receive_buffer(connection._MySQLProtocol)

    def translate(self, exc: BaseException) -> DatabaseError:
        if isinstance(exc, self.interface_error) or isinstance(exc, OSError):
            return DatabaseError(LOST_CONNECTION, f"connection lost: {exc}")
        code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else 0
        message = str(exc.args[1]) if len(exc.args) > 1 else str(exc)
        return DatabaseError(code or LOST_CONNECTION, message)

    def is_error(self, exc: BaseException) -> bool:
        # TimeoutError is an OSError in Python 3.11, but it is ours (asyncio.timeout), not the driver's.
        return isinstance(exc, self.error) or (isinstance(exc, OSError) and not isinstance(exc, TimeoutError))


# What one connection may hold of a result it has not read yet, before it stops reading the socket.
RECEIVE_HIGH_WATER = 4 * 1024 * 1024
READ_LIMIT, PAUSED_READ = 1024 * 1024, 64 * 1024


def bound_receive_buffer(protocol: type) -> None:
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


_UNBOUNDED = contextlib.nullcontext()


class Session:
    """One attempt's connection, as the services see it: execute statements, nothing else."""

    def __init__(self, conn: Any, cursor: Any, driver: Driver, timeout: float | None = None):
        self._conn, self._cursor, self._driver = conn, cursor, driver
        self._timeout = timeout  # per statement, for sessions that live outside the retry wrapper

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
        try:
            async with self._bounded():
                await end()
        except Exception as exc:
            if self._driver.is_error(exc):
                raise self._driver.translate(exc) from exc
            raise

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> StatementResult:
        cursor = self._cursor
        try:
            async with self._bounded():
                affected = await cursor.execute(sql, tuple(params))
                rows = await cursor.fetchall() if cursor.description else ()
        except Exception as exc:
            if self._driver.is_error(exc):
                raise self._driver.translate(exc) from exc
            raise
        names = [d[0] for d in cursor.description] if cursor.description else []
        result = getattr(cursor, "_result", None)
        warnings = getattr(result, "warning_count", 0) or 0
        return StatementResult(names, rows or (), affected or 0, cursor.lastrowid, warnings)

    async def load_data(self, sql: str, params: Sequence[Any], data: bytes) -> StatementResult:
        """Run a `LOAD DATA LOCAL INFILE %s ...` statement that reads `data` (the first parameter
        names it, with a one-use random name)."""
        name = f"gateway-batch-{uuid.uuid4().hex}"
        _LOCAL_DATA[name] = data
        try:
            return await self.execute(sql, (name, *params))
        finally:
            _LOCAL_DATA.pop(name, None)

    async def warnings(self) -> list[tuple[int, str]]:
        """(code, message) of the last statement's warnings."""
        result = await self.execute("SHOW WARNINGS")
        return [(int(row[1]), str(row[2])) for row in result.rows]


class Replica:
    """A read replica: its pool, and until when it is left alone after failing."""

    def __init__(self, address: DatabaseAddress):
        self.address = address
        self.pool: Any = None
        self.down_until = 0.0

    def healthy(self) -> bool:
        return self.pool is not None and time.monotonic() >= self.down_until

    def pause(self, seconds: float) -> None:
        self.down_until = time.monotonic() + seconds
        log.warning("replica %s:%s left out for %.0f s", self.address.host, self.address.port, seconds)


class Database:
    def __init__(self, settings: Settings):
        self.settings = settings
        # The server, or the nodes of a Galera cluster (app/db/nodes.py): each with a read pool
        # (autocommit on, each statement stands alone) and a write pool (autocommit off, the first
        # statement opens the transaction). `address`: the first (or only) one.
        self.nodes = Nodes(settings.db_nodes, settings.node_probe_s)
        self.address = self.nodes.all[0].address
        self.driver = Driver(settings.db_driver)
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
        self.kill_timeout = settings.kill_timeout_ms / 1000
        self.stream_timeout = settings.stream_timeout_s
        self.statement_timeout = settings.statement_timeout_s
        self.replicas = [Replica(DatabaseAddress.parse(url)) for url in settings.replica_urls]
        self.replica_pause_s = settings.replica_pause_s
        self._next_replica = -1  # round robin over the healthy replicas
        self._kill_targets: dict[int, DatabaseAddress] = {}  # id(pool) -> its server, for KILL
        self._waiting: dict[int, int] = {}  # id(pool) -> attempts waiting for a connection
        self.server_version = ""
        self._returning: bool | None = None  # supports_returning, once the version is known
        self.kills = 0  # statements killed after a timeout (for metrics and tests)
        self.retries: dict[str, int] = {}  # retried attempts, by what failed
        self.gave_up: dict[str, int] = {}  # calls that ended in a 5xx, by code
        for resilience in (self.resilience, self.bulk_resilience, self.slow_resilience):
            resilience.on_retry, resilience.on_give_up = self._count_retry, self._count_give_up

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

    # --- lifecycle ------------------------------------------------------------------------

    def _connect_kwargs(self, autocommit: bool = True, address: DatabaseAddress | None = None) -> dict[str, Any]:
        address = address or self.address
        init = INIT_COMMAND
        if self.nodes.clustered:
            # Galera: a read waits until this node has applied every write committed before it
            # anywhere in the cluster, so a read after a write sees it, whichever node each used.
            init += f", wsrep_sync_wait = {self.settings.galera_sync_wait}"
        return address.connect_kwargs() | {
            self.driver.db_kw: address.database,
            "autocommit": autocommit,
            "charset": "utf8mb4",
            "client_flag": CLIENT_FOUND_ROWS,
            "init_command": init,
            "connect_timeout": self.driver.connect_timeout,
        }

    async def open(self) -> None:
        """Create the pools. Connections are made lazily, so the gateway starts with the database away."""
        create = self.driver.module.create_pool
        size = {"minsize": 0, "maxsize": self.settings.pool_max, "pool_recycle": 3600}
        for node in self.nodes.all:
            node.pool = await create(**size, **self._connect_kwargs(address=node.address))
            node.write_pool = await create(
                **size, **self._connect_kwargs(autocommit=False, address=node.address), local_infile=True
            )
            self._kill_targets[id(node.pool)] = self._kill_targets[id(node.write_pool)] = node.address
        for replica in self.replicas:
            replica.pool = await create(**size, **self._connect_kwargs(address=replica.address))
            self._kill_targets[id(replica.pool)] = replica.address
        self.nodes.start(self._node_status)

    async def close(self) -> None:
        await self.nodes.stop()
        for pool in (*(p for n in self.nodes.all for p in (n.pool, n.write_pool)), *(r.pool for r in self.replicas)):
            if pool is not None:
                pool.close()
                await pool.wait_closed()
        for node in self.nodes.all:
            node.pool = node.write_pool = None

    @property
    def pool(self) -> Any:
        """The first node's read pool (the only one, on a single server)."""
        return self.nodes.all[0].pool

    async def _node_status(self, node: Node) -> dict[str, str]:
        """A node's wsrep status, on a connection of its own (no init command: a node that is not
        ready refuses most statements, but answers SHOW)."""
        kwargs = self._connect_kwargs(address=node.address) | {"init_command": None}
        conn = await self.driver.module.connect(**kwargs)
        try:
            async with conn.cursor() as cursor:
                await cursor.execute(PROBE)
                return {str(name): str(value) for name, value in await cursor.fetchall()}
        finally:
            conn.close()

    @property
    def is_mariadb(self) -> bool:
        return "mariadb" in self.server_version.lower()

    @property
    def supports_returning(self) -> bool:
        """INSERT ... RETURNING: MariaDB 10.5 and later (read from the server's version once)."""
        if self._returning is None and self.server_version:
            self._returning = self._version_returns()
        return bool(self._returning)

    def _version_returns(self) -> bool:
        if not self.is_mariadb:
            return False
        version = self.server_version.split("-")
        numbers = next((v for v in version if v[:1].isdigit() and not v.startswith("5.5.5")), "0")
        major, minor = (int(x) for x in (numbers.split(".") + ["0"])[:2])
        return (major, minor) >= (10, 5)

    def pool_stats_by_pool(self) -> dict[str, dict[str, int]]:
        """Per pool: size, free, used (checked out) and max."""
        stats = {}
        if self.nodes.clustered:
            named = [(f"{kind}@{n.name}", p) for n in self.nodes.all for kind, p in (("read", n.pool), ("write", n.write_pool))]
        else:
            named = [("read", self.pool), ("write", self.nodes.all[0].write_pool)]
        named += [(f"replica{i + 1}", r.pool) for i, r in enumerate(self.replicas)]
        for name, pool in named:
            size, free = (pool.size, pool.freesize) if pool is not None else (0, 0)
            waiting = self._waiting.get(id(pool), 0) if pool is not None else 0
            stats[name] = {"size": size, "free": free, "used": size - free, "waiting": waiting, "max": self.settings.pool_max}
        return stats

    def pool_stats(self) -> dict[str, int]:
        """The read and write pools (of every node) together."""
        pools = [p for name, p in self.pool_stats_by_pool().items() if not name.startswith("replica")]
        return {state: sum(p[state] for p in pools) for state in ("size", "free", "used", "waiting", "max")}

    # --- one attempt ----------------------------------------------------------------------

    async def _acquire(self, pool: Any) -> Any:
        self._waiting[id(pool)] = self._waiting.get(id(pool), 0) + 1
        try:
            conn = await pool.acquire()
        except Exception as exc:
            if self.driver.is_error(exc):
                raise self.driver.translate(exc) from exc
            raise
        finally:
            self._waiting[id(pool)] -= 1
        if not self.server_version:
            self.server_version = conn.get_server_info()
        return conn

    async def _release(self, conn: Any, pool: Any, failure: BaseException | None) -> None:
        """Give a connection back after use, or get rid of it when it cannot be trusted."""
        if isinstance(failure, (asyncio.CancelledError, GeneratorExit, TimeoutError)):
            # Stopped mid-statement: the server may still be running it.
            await self._discard(conn, pool)
            return
        # A server error (duplicate key, bad value) leaves the connection usable; a client-side
        # error (2xxx: lost, gone away), a node that is not ready or an unknown COMMIT outcome does not.
        if isinstance(failure, CommitOutcomeUnknown) or (
            isinstance(failure, DatabaseError) and (failure.code >= 2000 or failure.code in CONNECTIVITY_CODES)
        ):
            conn.close()
        pool.release(conn)  # closes it too if a transaction was left open

    @asynccontextmanager
    async def _session(self, pool: Any) -> AsyncIterator[tuple[Any, Session]]:
        conn = await self._acquire(pool)
        try:
            # No `async with` on the cursor: closing it after a cancel would read from a broken socket.
            yield conn, Session(conn, await conn.cursor(self.driver.cursor), self.driver)
        except BaseException as exc:
            await self._release(conn, pool, exc)
            raise
        await self._release(conn, pool, None)

    async def _discard(self, conn: Any, pool: Any) -> None:
        """Close a connection we cannot trust, and kill whatever it was running on the server."""
        thread_id = conn.thread_id() if conn.server_thread_id else None
        conn.close()
        pool.release(conn)  # a closed connection only leaves the pool's books
        if thread_id is not None:
            await self._kill(thread_id, self._kill_targets.get(id(pool)))

    async def _kill(self, thread_id: int, address: DatabaseAddress | None = None) -> None:
        try:
            async with asyncio.timeout(self.kill_timeout):
                conn = await self.driver.module.connect(**self._connect_kwargs(address=address))
                try:
                    async with conn.cursor() as cursor:
                        await cursor.execute("KILL %s", (thread_id,))
                    self.kills += 1
                finally:
                    conn.close()
        except Exception as exc:
            if self.driver.is_error(exc) and exc.args and exc.args[0] == 1094:
                return  # unknown thread: it had already ended
            # The server ends the statement by itself when it next writes to the closed socket.
            log.warning("could not kill server thread %s: %r", thread_id, exc)

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

    async def _fetch_once(self, attempt: Attempt, sql: str, params: Sequence[Any], replica: bool = False) -> StatementResult:
        statement = self.bounded(sql, attempt.seconds)

        async def on(pool: Any) -> StatementResult:
            async with self._session(pool) as (_, session):
                return await session.execute(statement, params)

        return await self._read(on, replica)

    async def _read(self, run: Callable[[Any], Awaitable[T]], replica: bool) -> T:
        """Run a read on a healthy replica's pool when asked and there is one, else the primary's.
        A replica that cannot be reached is left out and the primary answers in the same attempt."""
        if replica and (chosen := self._healthy_replica()) is not None:
            try:
                return await run(chosen.pool)
            except DatabaseError as exc:
                if exc.code not in CONNECTIVITY_CODES:
                    raise  # the query's own fault: the primary would say the same
                chosen.pause(self.replica_pause_s)  # away: the primary answers, at once
            except asyncio.CancelledError:
                chosen.pause(self.replica_pause_s)  # too slow: the next attempt goes elsewhere
                raise
        return await self._on_node(lambda node: run(node.pool))

    async def _on_node(self, run: Callable[[Node], Awaitable[T]]) -> T:
        """Run on the next usable node. A node that is away or not ready (before any COMMIT) is left
        out and the next one tried, within the same attempt: nothing was done there."""
        tried: set[Node] = set()
        while True:
            node = self.nodes.pick(tried)
            try:
                return await run(node)
            except DatabaseError as exc:
                if exc.code not in CONNECTIVITY_CODES or exc.at_commit or not self.nodes.clustered:
                    raise
                self.nodes.leave_out(node, f"error {exc.code}")
                tried.add(node)
                if len(tried) == len(self.nodes.all):
                    raise

    def _healthy_replica(self) -> "Replica | None":
        healthy = [r for r in self.replicas if r.healthy()]
        if not healthy:
            return None
        self._next_replica = (self._next_replica + 1) % len(healthy)
        return healthy[self._next_replica]

    async def _transaction_once(self, attempt: Attempt, work: Callable[[Session], Awaitable[T]]) -> T:
        return await self._on_node(lambda node: self._transaction_on(node, attempt, work))

    async def _transaction_on(self, node: Node, attempt: Attempt, work: Callable[[Session], Awaitable[T]]) -> T:
        # A write connection has autocommit off: its first statement opens the transaction (no
        # BEGIN round trip), and nothing is durable until the COMMIT below.
        async with self._session(node.write_pool) as (conn, session):
            try:
                result = await work(session)
            except (DatabaseError, GatewayError) as exc:
                # Nothing was committed; on a broken connection the server rolls back on disconnect.
                if not (isinstance(exc, DatabaseError) and exc.code >= 2000):
                    await session.rollback()
                raise
            attempt.begin_commit()
            try:
                await session.commit()
            except DatabaseError as exc:
                if commit_unknown(exc):
                    # No answer, or Galera's "error during COMMIT" (quorum lost mid-way): the
                    # COMMIT may or may not have applied.
                    raise CommitOutcomeUnknown(
                        "the COMMIT got no clear answer; the write may or may not have applied",
                        {"db_code": exc.code},
                    ) from exc
                # An error answer (a deadlock: on Galera, a certification conflict) means it was
                # rolled back: retryable as a whole.
                attempt.end_commit()
                exc.at_commit = True
                raise
            attempt.end_commit()
            return result

    # --- the public surface: every call goes through the wrapper -----------------------------

    async def fetch(self, sql: str, params: Sequence[Any] = (), *, replica: bool = False, slow: bool = False) -> StatementResult:
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

        async def start_on(pool: Any) -> tuple[Any, Any, Any, Sequence[tuple]]:
            conn = await self._acquire(pool)
            try:
                cursor = await conn.cursor(self.driver.stream_cursor)
                await cursor.execute(sql, tuple(params))  # not bounded: the rows flow long after
                first = await cursor.fetchmany(batch_rows)
            except BaseException as exc:
                await self._release(conn, pool, exc)
                if self.driver.is_error(exc):
                    raise self.driver.translate(exc) from exc
                raise
            return pool, conn, cursor, first

        resilience = self.slow_resilience if slow else self.resilience
        pool, conn, cursor, first = await resilience.run(lambda attempt: self._read(start_on, replica))
        names = [d[0] for d in cursor.description]
        exhausted = False

        async def batches() -> AsyncIterator[Sequence[tuple]]:
            nonlocal exhausted
            batch = first
            while batch:
                yield batch
                try:
                    async with asyncio.timeout(self.stream_timeout):
                        batch = await cursor.fetchmany(batch_rows)
                except Exception as exc:
                    if self.driver.is_error(exc):
                        raise self.driver.translate(exc) from exc
                    raise
            exhausted = True

        try:
            yield names, batches()
        finally:
            if exhausted:
                pool.release(conn)
            else:
                await self._discard(conn, pool)

    @asynccontextmanager
    async def long_transaction(self) -> AsyncIterator[Session]:
        """One transaction over many statements on one connection (an atomic import).

        Getting the connection goes through the wrapper; the statements cannot (a retry would need
        the whole input again), so each is bounded by GATEWAY_STATEMENT_TIMEOUT_S, and any failure
        rolls everything back. COMMIT with no answer is 504 commit_outcome_unknown, as elsewhere.
        """
        async def acquire(node: Node) -> tuple[Any, Any]:
            return node.write_pool, await self._acquire(node.write_pool)

        pool, conn = await self.resilience.run(lambda attempt: self._on_node(acquire))
        session = Session(conn, await conn.cursor(self.driver.cursor), self.driver, self.statement_timeout)
        try:
            yield session
        except BaseException as exc:
            healthy = isinstance(exc, GatewayError) or (isinstance(exc, DatabaseError) and exc.code < 2000)
            if healthy:
                try:
                    await session.rollback()
                except BaseException:
                    healthy = False
            await self._release(conn, pool, None if healthy else exc)
            if isinstance(exc, TimeoutError):
                raise GatewayTimeout("a statement of the transaction did not finish in time") from exc
            raise
        try:
            await session.commit()
        except BaseException as exc:
            await self._release(conn, pool, exc)
            if isinstance(exc, TimeoutError) or (isinstance(exc, DatabaseError) and commit_unknown(exc)):
                raise CommitOutcomeUnknown("the COMMIT got no clear answer; the import may or may not have applied") from exc
            raise
        await self._release(conn, pool, None)
