"""A group of stream messages into one table, in one transaction, each message exactly once.

    apply(messages) -> one Outcome per message (applied, duplicate or rejected)
      1. each message is checked (messages.py): JSON, keys, conversion, rules;
      2. one transaction through the retry wrapper (bulk schedule), READ COMMITTED:
         a. the messages already applied are found (their ids recorded; their offsets below the
            partition's next offset, whose row is locked) and skipped as duplicates;
         b. the good messages' rows are written: by LOAD DATA LOCAL behind a savepoint (what an
            import does), else by multi-row INSERT; a statement the database refuses is split by
            message (each statement is atomic), so one bad message is refused alone;
         c. the ids, the partitions' next offsets and the dead letters (broker streams: messages
            refused, with their payload and reason) are written;
      3. COMMIT; only then does the caller answer or acknowledge.
A retry of the whole transaction (a deadlock, a lost connection, a COMMIT whose outcome is unknown)
is safe: step (a) sees whatever committed. Two consumers that raced for the same id: the second's
id insert fails on the key, and it starts over and sees the first's.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import orjson

from app.core import sql
from app.core.catalog import Catalog, Table
from app.core.database import Database, Session
from app.core.errors import Conflict, DatabaseError
from app.core.resiliency import classify
from app.core.values import json_default
from app.imports.plan import for_insert, has_omitted
from app.imports.writer import DUPLICATE_KEY, UseInserts, insert_rows, load_rows, serialize
from app.services.rules import RulesStore
from app.streams import positions
from app.streams.messages import Checked, Checker, Message, Outcome, refused

log = logging.getLogger("gateway.streams")
StreamMode = Literal["insert", "upsert"]
RACES = 5  # times a group starts over after losing an id race, before it gives up (409)


class IdRace(Conflict):
    """Internal: another consumer recorded one of the group's ids while this one wrote."""


@dataclass
class Counters:
    messages: dict[str, int] = field(default_factory=lambda: {"applied": 0, "duplicate": 0, "rejected": 0})
    rows: int = 0


class StreamApplier:
    """One source's messages into one table. `dead_letters`: refused messages are recorded with
    their ids and kept in `_gateway_dead_letters` (brokers: the stream must move on); without it
    they are only answered (a WebSocket client gets the reason and may send a fixed message with
    the same id)."""

    def __init__(
        self, db: Database, catalog: Catalog, rules: RulesStore, table: str, source: str, *,
        mode: StreamMode = "insert", dead_letters: bool = True, load_data: bool = True,
    ):
        self.db, self.catalog, self.rules = db, catalog, rules
        self.table_name, self.source, self.mode = table, source, mode
        self.dead_letters, self.load_data = dead_letters, load_data
        self.counters = Counters()
        self._checker: Checker | None = None

    async def checker(self) -> Checker:
        """The table's current shape and rules (both cached; rebuilt when either changes)."""
        table = await self.catalog.table(self.table_name)
        rules = await self.rules.for_table(table)
        current = self._checker
        if current is None or current.table is not table or current.rules is not rules:
            current = self._checker = Checker(table, rules, load_data=self.load_data)
        return current

    async def apply(self, messages: Sequence[Message]) -> list[Outcome]:
        checker = await self.checker()
        checked = [checker.check(m) for m in messages]
        for race in range(RACES):
            try:
                outcomes = await self.db.transaction(lambda s: self._apply(s, checker.table, messages, checked), bulk=True)
            except IdRace:
                log.info("stream %s: an id was applied by another consumer meanwhile; starting over", self.source)
                continue
            for outcome in outcomes:
                self.counters.messages[outcome.status] += 1
                if outcome.status == "applied":
                    self.counters.rows += outcome.rows_written
            return outcomes
        raise Conflict(f"stream {self.source}: lost {RACES} id races in a row")

    async def _apply(
        self, session: Session, table: Table, messages: Sequence[Message], checked: list[Checked | Outcome]
    ) -> list[Outcome]:
        # No gap locks, and each read sees what other consumers committed (a).
        await session.execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
        outcomes: list[Outcome | None] = [None] * len(messages)
        await self._skip_applied(session, messages, outcomes)
        groups: dict[int, list[tuple[int, Checked]]] = {}  # one statement per plan (per set of keys)
        for i, item in enumerate(checked):
            if outcomes[i] is not None:
                continue
            if isinstance(item, Outcome):
                outcomes[i] = item
            else:
                groups.setdefault(id(item.plan), []).append((i, item))
        for group in groups.values():
            await self._write(session, table, group, outcomes)
        done: list[Outcome] = [o for o in outcomes if o is not None]
        assert len(done) == len(messages)
        await self._record(session, table, messages, done)
        return done

    async def _skip_applied(self, session: Session, messages: Sequence[Message], outcomes: list[Outcome | None]) -> None:
        """(a): duplicates of earlier transactions, and of earlier messages of this group."""
        first: dict[str, int] = {}
        for i, m in enumerate(messages):
            if m.key is not None:
                if m.key in first:
                    outcomes[i] = Outcome("duplicate")
                else:
                    first[m.key] = i
        if first:
            for key, rows in (await positions.applied_ids(session, self.source, list(first))).items():
                outcomes[first[key]] = Outcome("duplicate", rows)
        partitions = sorted({m.partition for m in messages if m.partition is not None})
        if partitions:
            next_offsets = await positions.next_offsets(session, self.source, partitions)
            for i, m in enumerate(messages):
                if m.partition is not None and m.offset is not None and m.offset < next_offsets.get(m.partition, -1):
                    outcomes[i] = Outcome("duplicate")

    async def _write(self, session: Session, table: Table, group: list[tuple[int, Checked]], outcomes: list[Outcome | None]) -> None:
        """(b): messages that share a plan; LOAD DATA first where it can say them."""
        plan = group[0][1].plan
        rows = [(0, values) for _, c in group for values in c.rows]
        if self.load_data and plan.load_data and self.mode == "insert" and not has_omitted(rows):
            await session.execute("SAVEPOINT gateway_stream")
            try:
                await load_rows(session, sql.load_data(table, plan.columns), serialize(rows), len(rows), "insert")
            except UseInserts as exc:
                await session.execute("ROLLBACK TO SAVEPOINT gateway_stream")
                if exc.refused:
                    self.load_data = False
            except DatabaseError as exc:
                if _rows_fault(exc) is None:
                    raise
                await session.execute("ROLLBACK TO SAVEPOINT gateway_stream")
            else:
                for i, c in group:
                    outcomes[i] = Outcome("applied", len(c.rows))
                return
        await self._insert(session, table, group, outcomes)

    async def _insert(self, session: Session, table: Table, group: list[tuple[int, Checked]], outcomes: list[Outcome | None]) -> None:
        """Multi-row INSERT of the group; refused as a whole, it is split by message."""
        plan = group[0][1].plan
        rows = [(0, values) for _, c in group for values in c.rows]
        if plan.load_data:
            rows = for_insert(plan, rows)
        try:
            await insert_rows(session, table, plan.columns, rows, self.mode)
        except DatabaseError as exc:
            reason = _rows_fault(exc)
            if reason is None:
                raise  # the wrapper's to retry or report
            if len(group) > 1:
                middle = len(group) // 2
                await self._insert(session, table, group[:middle], outcomes)
                await self._insert(session, table, group[middle:], outcomes)
            else:
                i, c = group[0]
                outcomes[i] = await self._which_row(session, table, c, reason)
            return
        for i, c in group:
            outcomes[i] = Outcome("applied", len(c.rows))

    async def _which_row(self, session: Session, table: Table, checked: Checked, reason: str) -> Outcome:
        """A refused message of several rows: its rows one by one behind a savepoint, to name the
        one the database refuses; then rolled back (the message is refused whole)."""
        if len(checked.rows) == 1:
            return refused(reason, 0)
        plan = checked.plan
        rows = [(0, values) for values in checked.rows]
        if plan.load_data:
            rows = for_insert(plan, rows)
        await session.execute("SAVEPOINT gateway_row")
        try:
            for index, row in enumerate(rows):
                try:
                    await insert_rows(session, table, plan.columns, [row], self.mode)
                except DatabaseError as exc:
                    said = _rows_fault(exc)
                    if said is None:
                        raise
                    return refused(said, index)
        finally:
            await session.execute("ROLLBACK TO SAVEPOINT gateway_row")
        return refused(reason)  # together they break a rule none breaks alone (a key within the message)

    async def _record(self, session: Session, table: Table, messages: Sequence[Message], outcomes: list[Outcome]) -> None:
        """(c): ids, offsets and dead letters, in the rows' transaction."""
        fresh = [(m, o) for m, o in zip(messages, outcomes) if o.status != "duplicate"]
        keyed = [
            (m.key, o.rows_written) for m, o in fresh
            if m.key is not None and (o.status == "applied" or self.dead_letters)
        ]
        if keyed:
            try:
                await positions.record_ids(session, self.source, keyed)
            except DatabaseError as exc:
                if exc.code == DUPLICATE_KEY:
                    raise IdRace("an id of the group was applied meanwhile") from exc
                raise
        offsets: dict[int, int] = {}
        for m in messages:
            if m.partition is not None and m.offset is not None:
                offsets[m.partition] = max(offsets.get(m.partition, 0), m.offset + 1)
        if offsets:
            await positions.store_offsets(session, self.source, offsets)
        if self.dead_letters:
            letters = [(m.position, _payload(m), o.reason) for m, o in fresh if o.status == "rejected"]
            if letters:
                await positions.dead_letter(session, self.source, table.name, letters)


def _payload(message: Message) -> bytes:
    if not message.parsed:
        return message.payload if isinstance(message.payload, bytes) else bytes(message.payload)
    return orjson.dumps(message.payload, default=json_default)


def _rows_fault(exc: DatabaseError) -> str | None:
    """The database's refusal as the message's fault (its reason), or None when it is not: the
    server away, a deadlock, a timeout (the wrapper retries or reports those). An error the
    gateway does not know is the message's too: a poison message must not stop the stream."""
    problem = classify(exc)
    if problem.status >= 500 and problem.code != "internal_error":
        return None
    return problem.message if problem.code != "internal_error" else f"the database refused it: {exc.message}"
