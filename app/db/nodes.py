"""The servers the gateway reads from and writes to: one, or the nodes of a Galera cluster.

DATABASE_URL may name several nodes (mysql://u:p@h1:3306,h2:3306,h3:3306/db). Each node has its own
two pools (reads with autocommit, writes in a transaction). Every attempt takes the next usable node
in turn; a node that refuses, drops the connection or answers 1047 (not ready) is left out at once,
and its idle connections closed. A probe reads every node's wsrep state each `node_probe_s` and lets
a node back in only when it is ready, Synced and in the primary component. When no node is usable
the attempt goes to one anyway: it fails with the server's own error, which the wrapper retries
and, at the end of its schedule, answers 503 with Retry-After.

One node (a plain server) is never left out and never probed: the wrapper's retries are all there is.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from collections.abc import Set as AbstractSet
from typing import Any

from app.core.config import DatabaseAddress

log = logging.getLogger("gateway.nodes")

# What a Galera node says about itself; a node is used only when it is ready, Synced and Primary.
PROBE = (
    "SHOW GLOBAL STATUS WHERE Variable_name IN"
    " ('wsrep_ready', 'wsrep_local_state_comment', 'wsrep_cluster_status', 'wsrep_cluster_size')"
)
# A node that is joining or lost the primary component takes connections but refuses statements.
NOT_READY = 1047


class Node:
    """One server: its pools, what the probe last found, and whether attempts may use it."""

    def __init__(self, address: DatabaseAddress):
        self.address = address
        self.pool: Any = None  # reads: autocommit
        self.write_pool: Any = None  # writes: autocommit off
        self.usable = True
        self.state = "unknown"  # Synced, Joining, Donor/Desynced, non-Primary, unreachable, ...
        self.cluster_size = 0
        self.attempts = 0  # attempts sent here (a node back in use is seen taking them again)
        self.left_out = 0  # times it was left out

    @property
    def name(self) -> str:
        return self.address.where

    def describe(self) -> dict[str, Any]:
        return {"node": self.name, "state": self.state, "usable": self.usable, "cluster_size": self.cluster_size,
                "attempts": self.attempts}


def state_of(status: dict[str, str]) -> tuple[str, bool]:
    """(state, usable) from a node's wsrep status variables. Pure, for unit tests."""
    if not status:
        return "not a Galera node", True  # wsrep off: a plain server answers for itself
    if status.get("wsrep_cluster_status", "Primary") != "Primary":
        return "non-Primary", False
    comment = status.get("wsrep_local_state_comment", "")
    ready = status.get("wsrep_ready") == "ON"
    return comment or ("ready" if ready else "not ready"), ready and comment == "Synced"


class Nodes:
    """The nodes in turn, and the probe that keeps their states."""

    def __init__(self, addresses: list[DatabaseAddress], probe_s: float):
        self.all = [Node(a) for a in addresses]
        self.probe_s = probe_s
        self._next = -1
        self._probe: asyncio.Task | None = None
        self._clearing: set[asyncio.Task] = set()

    @property
    def clustered(self) -> bool:
        return len(self.all) > 1

    def pick(self, excluding: AbstractSet[Node] = frozenset()) -> Node:
        """The next usable node not yet tried in this attempt; when none is, the next of all (its
        own error is then the answer)."""
        nodes = self.all
        if len(nodes) == 1:
            return nodes[0]
        candidates = (
            [n for n in nodes if n.usable and n not in excluding] or [n for n in nodes if n not in excluding] or nodes
        )
        self._next = (self._next + 1) % len(candidates)
        node = candidates[self._next]
        node.attempts += 1
        return node

    def leave_out(self, node: Node, why: str) -> None:
        """Stop using `node` until the probe finds it Synced; close its idle connections (a node
        that went away left them all broken)."""
        if not self.clustered:
            return
        self._mark(node, why, usable=False)
        for pool in (node.pool, node.write_pool):
            if pool is not None and pool.freesize:
                task = asyncio.get_running_loop().create_task(pool.clear())
                self._clearing.add(task)  # held until done: the loop keeps only a weak reference
                task.add_done_callback(self._clearing.discard)

    def start(self, read_status: Callable[[Node], Awaitable[dict[str, str]]]) -> None:
        """Probe every node now and then (only when there are several)."""
        if self.clustered and self._probe is None:
            self._probe = asyncio.get_running_loop().create_task(self._probe_loop(read_status))

    async def stop(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
            await asyncio.gather(self._probe, return_exceptions=True)
            self._probe = None

    async def probe(self, read_status: Callable[[Node], Awaitable[dict[str, str]]]) -> None:
        """Read every node's state once (at the same time) and set which are usable."""

        async def one(node: Node) -> None:
            try:
                async with asyncio.timeout(max(self.probe_s, 1.0)):
                    status = await read_status(node)
            except Exception as exc:  # refused, timed out, access denied: the node cannot be used
                self._mark(node, f"unreachable ({type(exc).__name__})", usable=False)
                return
            node.cluster_size = int(status.get("wsrep_cluster_size", "0") or 0)
            state, usable = state_of(status)
            self._mark(node, state, usable=usable)

        await asyncio.gather(*(one(n) for n in self.all))

    @staticmethod
    def _mark(node: Node, state: str, *, usable: bool) -> None:
        """Record what became of `node`, logging (and counting) when it leaves or comes back."""
        if usable and not node.usable:
            log.warning("database node %s back in use (%s)", node.name, state)
        elif not usable and node.usable:
            node.left_out += 1
            log.warning("database node %s left out: %s", node.name, state)
        node.state, node.usable = state, usable

    async def _probe_loop(self, read_status: Callable[[Node], Awaitable[dict[str, str]]]) -> None:
        while True:
            try:
                await self.probe(read_status)
            except Exception:  # never let the probe die: the nodes would stay as they are forever
                log.exception("probing the database nodes failed")
            await asyncio.sleep(self.probe_s)
