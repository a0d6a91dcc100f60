"""Connections: the pools of the server (or of each Galera node, app/db/nodes.py) and of each read
replica, which one an attempt takes, and what happens to a connection after it.

Each node has a read pool (autocommit on, each statement stands alone: reads, and writes that are
one statement) and a write pool (autocommit off, the first statement opens the transaction). A
failed or cancelled attempt never returns its connection to the pool: the connection is closed, and
if a statement was in flight it is killed on the server over a fresh connection, so a timed-out
statement cannot finish behind our back (or keep holding locks the retry needs).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from app.core.config import DatabaseAddress, Settings
from app.core.errors import CommitOutcomeUnknown, DatabaseError
from app.db.driver import Driver
from app.db.errors import CONNECTIVITY_CODES, no_answer
from app.db.nodes import PROBE, Node, Nodes
from app.db.session import Session

log = logging.getLogger("gateway.database")
T = TypeVar("T")

CLIENT_FOUND_ROWS = 2  # affected rows = rows matched, not rows changed (an idempotent PUT reports 1)
# Sessions run in UTC so TIMESTAMP values mean the same thing on every instance; strict mode makes a
# value that does not fit an error rather than a silent truncation.
# group_concat_max_len bounds JSON_ARRAYAGG too: an embedded array may be as long as a packet.
INIT_COMMAND = (
    "SET time_zone = '+00:00', sql_mode = CONCAT_WS(',', @@sql_mode, 'STRICT_ALL_TABLES'),"
    " group_concat_max_len = @@max_allowed_packet"
)
UNKNOWN_THREAD = 1094


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


class Connections:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.nodes = Nodes(settings.db_nodes, settings.node_probe_s)
        self.address = self.nodes.all[0].address  # the first (or only) server
        self.driver = Driver(settings.db_driver)
        self.kill_timeout = settings.kill_timeout_ms / 1000
        self.replicas = [Replica(DatabaseAddress.parse(url)) for url in settings.replica_urls]
        self.replica_pause_s = settings.replica_pause_s
        self._next_replica = -1  # round robin over the healthy replicas
        self._kill_targets: dict[int, DatabaseAddress] = {}  # id(pool) -> its server, for KILL
        self._waiting: dict[int, int] = {}  # id(pool) -> attempts waiting for a connection
        self.server_version = ""
        self._returning: bool | None = None  # supports_returning, once the version is known
        self.kills = 0  # statements killed after a timeout (for metrics and tests)

    # --- lifecycle ------------------------------------------------------------------------

    def connect_kwargs(self, autocommit: bool = True, address: DatabaseAddress | None = None) -> dict[str, Any]:
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
            node.pool = await create(**size, **self.connect_kwargs(address=node.address))
            node.write_pool = await create(
                **size, **self.connect_kwargs(autocommit=False, address=node.address), local_infile=True
            )
            self._kill_targets[id(node.pool)] = self._kill_targets[id(node.write_pool)] = node.address
        for replica in self.replicas:
            replica.pool = await create(**size, **self.connect_kwargs(address=replica.address))
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

    async def _node_status(self, node: Node) -> dict[str, str]:
        """A node's wsrep status, on a connection of its own (no init command: a node that is not
        ready refuses most statements, but answers SHOW)."""
        kwargs = self.connect_kwargs(address=node.address) | {"init_command": None}
        conn = await self.driver.module.connect(**kwargs)
        try:
            async with conn.cursor() as cursor:
                await cursor.execute(PROBE)
                return {str(name): str(value) for name, value in await cursor.fetchall()}
        finally:
            conn.close()

    # --- what the server is -------------------------------------------------------------------

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
            pools = (("read", "pool"), ("write", "write_pool"))
            named = [(f"{kind}@{n.name}", getattr(n, attr)) for n in self.nodes.all for kind, attr in pools]
        else:
            named = [("read", self.nodes.all[0].pool), ("write", self.nodes.all[0].write_pool)]
        named += [(f"replica{i + 1}", r.pool) for i, r in enumerate(self.replicas)]
        for name, pool in named:
            size, free = (pool.size, pool.freesize) if pool is not None else (0, 0)
            waiting = self._waiting.get(id(pool), 0) if pool is not None else 0
            stats[name] = {
                "size": size,
                "free": free,
                "used": size - free,
                "waiting": waiting,
                "max": self.settings.pool_max,
            }
        return stats

    def pool_stats(self) -> dict[str, int]:
        """The read and write pools (of every node) together."""
        pools = [p for name, p in self.pool_stats_by_pool().items() if not name.startswith("replica")]
        return {state: sum(p[state] for p in pools) for state in ("size", "free", "used", "waiting", "max")}

    # --- a connection, for one attempt --------------------------------------------------------

    async def acquire(self, pool: Any) -> Any:
        self._waiting[id(pool)] = self._waiting.get(id(pool), 0) + 1
        try:
            with self.driver.translated():
                conn = await pool.acquire()
        finally:
            self._waiting[id(pool)] -= 1
        if not self.server_version:
            self.server_version = conn.get_server_info()
        return conn

    async def release(self, conn: Any, pool: Any, failure: BaseException | None) -> None:
        """Give a connection back after use, or get rid of it when it cannot be trusted."""
        if isinstance(failure, (asyncio.CancelledError, GeneratorExit, TimeoutError)):
            # Stopped mid-statement: the server may still be running it.
            await self.discard(conn, pool)
            return
        # A server error (duplicate key, bad value) leaves the connection usable; a client-side
        # error (2xxx: lost, gone away), a node that is not ready or an unknown COMMIT outcome does not.
        if isinstance(failure, CommitOutcomeUnknown) or (
            isinstance(failure, DatabaseError) and (no_answer(failure.code) or failure.code in CONNECTIVITY_CODES)
        ):
            conn.close()
        pool.release(conn)  # closes it too if a transaction was left open

    @asynccontextmanager
    async def session(self, pool: Any) -> AsyncIterator[Session]:
        conn = await self.acquire(pool)
        try:
            # No `async with` on the cursor: closing it after a cancel would read from a broken socket.
            yield Session(conn, await conn.cursor(self.driver.cursor), self.driver)
        except BaseException as exc:
            await self.release(conn, pool, exc)
            raise
        await self.release(conn, pool, None)

    async def discard(self, conn: Any, pool: Any) -> None:
        """Close a connection we cannot trust, and kill whatever it was running on the server."""
        thread_id = conn.thread_id() if conn.server_thread_id else None
        conn.close()
        pool.release(conn)  # a closed connection only leaves the pool's books
        if thread_id is not None:
            await self.kill(thread_id, self._kill_targets.get(id(pool)))

    async def kill(self, thread_id: int, address: DatabaseAddress | None = None, *, query: bool = False) -> bool:
        """KILL a server thread (its connection and statement), or with `query` only the statement it
        is running (KILL QUERY: the connection stays, and answers the statement with 1317). True when
        the server did it, or the thread had ended."""
        try:
            async with asyncio.timeout(self.kill_timeout):
                conn = await self.driver.module.connect(**self.connect_kwargs(address=address))
                try:
                    async with conn.cursor() as cursor:
                        await cursor.execute("KILL QUERY %s" if query else "KILL %s", (thread_id,))
                    self.kills += 1
                finally:
                    conn.close()
            return True
        except Exception as exc:
            if self.driver.is_error(exc) and exc.args and exc.args[0] == UNKNOWN_THREAD:
                return True  # it had already ended
            # The server ends the statement by itself when it next writes to the closed socket.
            log.warning("could not kill server thread %s: %r", thread_id, exc)
            return False

    # --- where an attempt runs ------------------------------------------------------------------

    async def read(self, run: Callable[[Any], Awaitable[T]], replica: bool) -> T:
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
        return await self.on_node(lambda node: run(node.pool))

    async def on_node(self, run: Callable[[Node], Awaitable[T]]) -> T:
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

    def _healthy_replica(self) -> Replica | None:
        healthy = [r for r in self.replicas if r.healthy()]
        if not healthy:
            return None
        self._next_replica = (self._next_replica + 1) % len(healthy)
        return healthy[self._next_replica]
