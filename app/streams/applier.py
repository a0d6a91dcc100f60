"""A group of stream messages into one table, in one transaction, each message exactly once.

    apply(messages) -> one Outcome per message (applied, duplicate or rejected)
      1. each message is checked (messages.py): JSON, keys, conversion, rules;
      2. one transaction through the retry wrapper (bulk schedule):
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

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from app.core import jsontext, tracing
from app.core.errors import Conflict, DatabaseError
from app.db.catalog import Catalog, Table
from app.db.database import Database, Session
from app.db.errors import classify
from app.imports.writer import DUPLICATE_KEY, UseInserts, insert_rows, load_rows, serialize
from app.query import sql
from app.rows.plan import for_insert, has_omitted
from app.rows.values import json_default
from app.services.policies import PolicyStore, refuse_bulk
from app.services.rules_store import RulesStore
from app.streams import positions
from app.streams.jsonlines import json_lines
from app.streams.messages import Checked, Checker, Message, Outcome, refused

log = logging.getLogger("gateway.streams")
StreamMode = Literal["insert", "upsert"]
RACES = 5  # times a group starts over after losing an id race, before it gives up (409)
STEP = 200  # rows checked or serialized between yields to the event loop


@dataclass
class Prepared:
    """A group checked, its rows grouped by plan and serialized for LOAD DATA (prepare())."""

    checker: Checker
    messages: Sequence[Message]
    checked: list[Checked | Outcome]
    groups: dict[int, list[tuple[int, Checked]]]  # plan -> (index, message)
    data: dict[int, tuple[bytes, bool]]  # plan -> the group's rows as LOAD DATA reads them (JSON lines?)


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
        policies: PolicyStore | None = None,
    ):
        self.db, self.catalog, self.rules, self.policies = db, catalog, rules, policies
        self.table_name, self.source, self.mode = table, source, mode
        self.dead_letters, self.load_data = dead_letters, load_data
        self.counters = Counters()
        self._checker: Checker | None = None
        self._rows_per_message = 1.0  # as the last group had them: how many messages make a step

    async def checker(self) -> Checker:
        """The table's current shape and rules (both cached; rebuilt when either changes)."""
        table = await self.catalog.writable(self.table_name)
        await refuse_bulk(self.policies, table, "streams")
        rules = await self.rules.for_table(table)
        current = self._checker
        if current is None or current.table is not table or current.rules is not rules:
            current = self._checker = Checker(table, rules, load_data=self.load_data)
        return current

    async def apply(self, messages: Sequence[Message]) -> list[Outcome]:
        with tracing.span("stream.group", **{"stream.source": str(self.source), "stream.messages": len(messages)}):
            return await self.commit(await self.prepare(messages))

    async def prepare(self, messages: Sequence[Message]) -> Prepared:
        """Step 1, and what LOAD DATA will read, serialized: the CPU's part, which a consumer does
        for its next group while the previous one commits (the database's part). It yields to the
        event loop every STEP messages or rows: the committing group's statements are small round
        trips, each of which would otherwise wait for the whole of this."""
        checker = await self.checker()
        loads = self.load_data and self.mode == "insert"
        checked: list[Checked | Outcome] = []
        step = max(1, round(STEP / self._rows_per_message))  # messages in about STEP rows
        for start in range(0, len(messages), step):
            checked.extend(checker.check_group(messages[start:start + step], canonical=loads))
            await asyncio.sleep(0)
        rows_seen = sum(len(c.rows) for c in checked if isinstance(c, Checked))
        if rows_seen:
            self._rows_per_message = rows_seen / len(messages)
        groups: dict[int, list[tuple[int, Checked]]] = {}  # one statement per plan (per set of keys)
        for i, item in enumerate(checked):
            if isinstance(item, Checked):
                groups.setdefault(id(item.plan), []).append((i, item))
        data: dict[int, tuple[bytes, bool]] = {}
        if loads:
            for key, group in groups.items():
                if not group[0][1].plan.load_data:
                    continue
                if all(c.canonical for _, c in group):  # values as sent: every column given, scalars
                    lines = json_lines([values for _, c in group for values in c.rows])
                    if lines is not None:
                        data[key] = (lines, True)
                        continue
                rows = [(0, values) for _, c in group for values in c.rows]
                if not has_omitted(rows):
                    parts = []
                    for start in range(0, len(rows), STEP):
                        parts.append(serialize(rows[start:start + STEP]))
                        await asyncio.sleep(0)
                    data[key] = (b"".join(parts), False)
        return Prepared(checker, messages, checked, groups, data)

    async def commit(self, prepared: Prepared) -> list[Outcome]:
        """Steps 2 and 3: one transaction, started over when another consumer won an id race."""
        for race in range(RACES):
            try:
                outcomes = await self.db.transaction(lambda s: self._apply(s, prepared), bulk=True)
            except IdRace:
                log.info("stream %s: an id was applied by another consumer meanwhile; starting over", self.source)
                continue
            for outcome in outcomes:
                self.counters.messages[outcome.status] += 1
                if outcome.status == "applied":
                    self.counters.rows += outcome.rows_written
            return outcomes
        raise Conflict(f"stream {self.source}: lost {RACES} id races in a row")

    async def _apply(self, session: Session, prepared: Prepared) -> list[Outcome]:
        checker, messages = prepared.checker, prepared.messages
        # The first read (a) takes the transaction's snapshot: it sees every group committed before.
        outcomes: list[Outcome | None] = [None] * len(messages)
        await self._skip_applied(session, messages, outcomes)
        for i, item in enumerate(prepared.checked):
            if outcomes[i] is None and isinstance(item, Outcome):
                outcomes[i] = item
        for key, group in prepared.groups.items():
            fresh = [(i, c) for i, c in group if outcomes[i] is None]
            if fresh:  # the serialized rows hold only what is written: rebuilt if duplicates were left out
                data = prepared.data.get(key) if len(fresh) == len(group) else None
                await self._write(session, checker, fresh, outcomes, data)
        done: list[Outcome] = [o for o in outcomes if o is not None]
        assert len(done) == len(messages)
        await self._record(session, checker.table, messages, done)
        return done

    async def _skip_applied(
        self, session: Session, messages: Sequence[Message], outcomes: list[Outcome | None]
    ) -> None:
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

    async def _write(
        self,
        session: Session,
        checker: Checker,
        group: list[tuple[int, Checked]],
        outcomes: list[Outcome | None],
        data: tuple[bytes, bool] | None = None,
    ) -> None:
        """(b): messages that share a plan; LOAD DATA first where it can say them (`data`: their
        rows serialized already, as JSON lines or CSV). Rows sent as they came (canonical) that the
        server has a word about are converted now, which names any bad one."""
        table, plan = checker.table, group[0][1].plan
        rows = [(0, values) for _, c in group for values in c.rows]
        if self.load_data and plan.load_data and self.mode == "insert" and (data is not None or not has_omitted(rows)):
            if data is None:
                data = (serialize(rows), False)
            statement = sql.load_data_json(table, plan.columns) if data[1] else sql.load_data(table, plan.columns)
            await session.execute("SAVEPOINT gateway_stream")
            try:
                await load_rows(session, statement, data[0], len(rows), "insert")
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
        converted = []
        for i, c in group:
            again = checker.check(c.message) if c.canonical else c
            if isinstance(again, Outcome):
                outcomes[i] = again
            else:
                converted.append((i, again))
        if converted:
            await self._insert(session, table, converted, outcomes)

    async def _insert(
        self, session: Session, table: Table, group: list[tuple[int, Checked]], outcomes: list[Outcome | None]
    ) -> None:
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

    async def _record(
        self, session: Session, table: Table, messages: Sequence[Message], outcomes: list[Outcome]
    ) -> None:
        """(c): ids, offsets and dead letters, in the rows' transaction."""
        fresh = [(m, o) for m, o in zip(messages, outcomes) if o.status != "duplicate"]
        keyed = [
            (m.key, o.rows_written)
            for m, o in fresh
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
    return jsontext.dumps(message.payload, json_default)


def _rows_fault(exc: DatabaseError) -> str | None:
    """The database's refusal as the message's fault (its reason), or None when it is not: the
    server away, a deadlock, a timeout (the wrapper retries or reports those). An error the
    gateway does not know is the message's too: a poison message must not stop the stream."""
    problem = classify(exc)
    if problem.status >= 500 and problem.code != "internal_error":
        return None
    return problem.message if problem.code != "internal_error" else f"the database refused it: {exc.message}"
