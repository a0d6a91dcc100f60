"""Group commit: messages from many producers (WebSocket connections) applied a group at a time.

A group closes at `max_rows` rows or `max_wait_s` after its first message, whichever comes first;
messages that arrive while a group commits wait for the next one, so under load groups grow by
themselves and a lone message waits at most `max_wait_s`. The next group is gathered and prepared
(checked, serialized) while one commits; groups commit one at a time, in order. Each submitter gets its message's
Outcome once the group's transaction has committed (or the failure that stopped it).
"""

from __future__ import annotations

import asyncio
import logging

from app.core.errors import GatewayError, ServiceUnavailable
from app.streams.applier import Prepared, StreamApplier
from app.streams.grouping import collect
from app.streams.messages import Message, Outcome

log = logging.getLogger("gateway.streams")


class Failed(Outcome):
    """A group's transaction failed (the database away past the retry budget): nothing of it was
    written, or (commit_outcome_unknown) it may have been; a message with an id is safe to resend."""

    def __init__(self, error: GatewayError):
        super().__init__("failed", 0, [{"index": None, "column": None, "code": error.code, "reason": error.message}])
        self.code = error.code


Item = tuple[Message, int, "asyncio.Future[Outcome]"]  # a message, about how many rows, its answer


class GroupCommitter:
    def __init__(self, applier: StreamApplier, max_rows: int, max_wait_s: float):
        self.applier, self.max_rows, self.max_wait_s = applier, max_rows, max_wait_s
        # None is queued by stop(): the groups before it are committed, then the loop ends.
        self._queue: asyncio.Queue[Item | None] = asyncio.Queue()
        self._task: asyncio.Task | None = None

    def submit(self, message: Message, rows: int) -> asyncio.Future[Outcome]:
        """Queue a message of about `rows` rows; the future is its outcome. Unbounded here: each
        connection bounds what it has in flight."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((message, rows, future))
        return future

    async def stop(self) -> None:
        """Groups already taken commit and are answered; what is still queued is answered `failed`
        (the gateway is shutting down: nothing of it written, safe to resend)."""
        if self._task is not None:
            self._queue.put_nowait(None)
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        stopped = Failed(ServiceUnavailable("the gateway is shutting down"))
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if item is not None and not item[2].done():
                item[2].set_result(stopped)

    async def _run(self) -> None:
        """Gather a group and prepare it (check, serialize) while the one before commits."""
        committing: asyncio.Task | None = None
        stopping = False
        while not stopping:
            first = await self._queue.get()
            if first is None:
                break
            taken = await collect(self._queue, first, self.max_rows, self.max_wait_s, size=_rows)
            group = [item for item in taken if item is not None]
            stopping = len(group) < len(taken)
            try:
                prepared: Prepared | GatewayError = await self.applier.prepare([m for m, _, _ in group])
            except GatewayError as exc:  # the catalog or rules could not be read
                prepared = exc
            except Exception as exc:  # a bug: the group is answered, the loop goes on
                log.exception("stream %s: a group could not be prepared", self.applier.source)
                prepared = GatewayError(f"internal error: {type(exc).__name__}")
            if committing is not None:
                await committing
            committing = asyncio.create_task(self._commit(group, prepared))
        if committing is not None:
            await committing

    async def _commit(
        self, group: list[Item], prepared: Prepared | GatewayError
    ) -> None:
        try:
            if isinstance(prepared, GatewayError):
                raise prepared
            outcomes: list[Outcome] = await self.applier.commit(prepared)
        except GatewayError as exc:
            log.warning("stream %s: a group of %d message(s) failed: %s", self.applier.source, len(group), exc.message)
            outcomes = [Failed(exc)] * len(group)
        except Exception as exc:  # a bug: every waiting connection hears of it, and the loop goes on
            log.exception("stream %s: a group failed", self.applier.source)
            outcomes = [Failed(GatewayError(f"internal error: {type(exc).__name__}"))] * len(group)
        for (_, _, future), outcome in zip(group, outcomes):
            if not future.done():
                future.set_result(outcome)


def _rows(item: Item | None) -> int:
    return 0 if item is None else item[1]
