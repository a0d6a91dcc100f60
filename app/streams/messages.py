"""Stream messages -> rows, checked (pure, no I/O).

A message is one JSON value: a row object, an array of row objects, or an envelope
`{"id": "...", "rows": [...]}` (the WebSocket's form; a broker may use it too). A message is the unit
of a stream: its rows are all written, or none is and the message is refused with every problem
found (`index` of the row in the message, `column`, `reason`). Rows of one message may leave
different keys out: the message is planned once over the union of its keys and a key a row leaves
out takes the column's DEFAULT, as in a POST body.

What is checked here, before any transaction: JSON, the shape, the keys against the catalog, the
values' conversion to their columns (values.py) and the table's rules (JSON Schema). What only the
database can say (a duplicate key, a foreign key) is found by the applier (applier.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from operator import itemgetter
from dataclasses import dataclass, field
from typing import Any, Literal

from app.core import jsontext
from app.db.catalog import Table
from app.core.errors import InvalidHeader, InvalidValue
from app.rows.rules import Rules, row_maker
from app.rows.plan import BARE_NULL, ImportPlan, plan_import
from app.imports.records import OMITTED
from app.streams.canonical import Check, column_check
from app.streams.positions import ID_CHARS

Status = Literal["applied", "duplicate", "rejected", "failed"]


@dataclass(slots=True)
class Message:
    """One message of a stream. `key`: what makes it once-only (a message id, a stream sequence;
    None: not recorded). `partition`/`offset`: a Kafka message's place (offsets are recorded per
    partition instead of per message). `position`: where a dead letter says it came from."""

    payload: bytes | Any  # the message's bytes, or its value already parsed (a WebSocket text frame)
    position: str
    key: str | None = None
    partition: int | None = None
    offset: int | None = None
    parsed: bool = False  # payload is a parsed value, not bytes
    # The envelope's "id" is the key of a message that has none (a Kafka message; a RabbitMQ one
    # without a message_id): a producer that sends a batch again under its id is not applied twice.
    envelope_ids: bool = False
    needs_key: str | None = None  # why a message that ends up without a key is refused (RabbitMQ)


@dataclass(slots=True)
class Outcome:
    status: Status
    rows_written: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)

    @property
    def reason(self) -> str:
        """The errors in one line (a dead letter's reason)."""
        return "; ".join(
            (f"row {e['index']}: " if e.get("index") is not None else "")
            + (f"column '{e['column']}': " if e.get("column") and f"'{e['column']}'" not in e["reason"] else "")
            + e["reason"]
            for e in self.errors
        )


def refused(reason: str, index: int | None = None, column: str | None = None) -> Outcome:
    return Outcome("rejected", 0, [{"index": index, "column": column, "reason": reason}])


@dataclass(slots=True)
class Checked:
    """A message whose rows all converted and passed the rules: ready to write with `plan`."""

    message: Message
    plan: ImportPlan
    rows: list[list[Any]]  # values in plan.columns order, LOAD DATA-ready (NULL as BARE_NULL)
    canonical: bool = False  # the values as sent, unconverted (canonical.py): for LOAD DATA only


def message_rows(value: Any) -> tuple[list[Any], str | None]:
    """A message's rows and its envelope id (None without an envelope); ValueError if the shape is
    wrong. An object is an envelope only when its keys are `rows` (a list) and at most `id`."""
    if isinstance(value, dict):
        rows = value.get("rows")
        if isinstance(rows, list) and set(value) <= {"id", "rows"}:
            ident = value.get("id")
            if ident is not None and not isinstance(ident, (str, int)) or isinstance(ident, bool):
                raise ValueError("the envelope's id must be a string or an integer")
            return rows, None if ident is None else str(ident)
        return [value], None
    if isinstance(value, list):
        return value, None
    raise ValueError(f"expected a row object, an array of rows or {{\"id\", \"rows\"}}, got {_kind(value)}")


def parse(payload: bytes) -> Any:
    """A broker message's JSON (strict: no NaN, integers kept exact); ValueError says why not."""
    try:
        return jsontext.parse(payload)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON: {exc}") from None


@dataclass(slots=True)
class _Read:
    """A message read and planned, not yet converted."""

    message: Message
    rows: list[dict[str, Any]]
    header: list[str]
    plan: ImportPlan
    make: Callable[[Any], dict] | None
    fast: list[Check] | None  # per plan column, when every column has a canonical check


class Checker:
    """Checks messages for one table, with plans cached per set of keys (a stream's rows usually
    all have the same keys: one plan, built once)."""

    def __init__(self, table: Table, rules: Rules | None, *, load_data: bool = True):
        self.table, self.rules, self.load_data = table, rules, load_data
        self._plans: dict[tuple[str, ...], _Planned | InvalidHeader] = {}

    def check(self, message: Message) -> Checked | Outcome:
        """The message's rows converted and ready to write, or why it is refused."""
        read = self._read(message)
        return read if isinstance(read, Outcome) else self._convert(read)

    def check_group(self, messages: Sequence[Message], *, canonical: bool) -> list[Checked | Outcome]:
        """Every message checked. With `canonical` (the rows will go to LOAD DATA), messages that
        share a plan and give every column are first looked at a column at a time (canonical.py):
        if every column is in a form the server reads as the converters would, their rows go as they
        are (`Checked.canonical`), else each message is converted as `check` does."""
        out: list[Checked | Outcome | None] = [None] * len(messages)
        together: dict[int, list[tuple[int, _Read]]] = {}
        for i, message in enumerate(messages):
            read = self._read(message)
            if isinstance(read, Outcome):
                out[i] = read
            elif canonical and read.fast is not None and self.rules is None and (
                len(read.rows) == 1 or all(len(r) == len(read.header) for r in read.rows)  # one row: its keys are the header
            ):
                together.setdefault(id(read.plan), []).append((i, read))
            else:
                out[i] = self._convert(read)
        for group in together.values():
            rows = _canonical_rows([read for _, read in group])
            if rows is None:
                for i, read in group:
                    out[i] = self._convert(read)
                continue
            at = 0
            for i, read in group:
                out[i] = Checked(read.message, read.plan, rows[at:at + len(read.rows)], canonical=True)
                at += len(read.rows)
        return out  # type: ignore[return-value]

    def _read(self, message: Message) -> _Read | Outcome:
        try:
            value = message.payload if message.parsed else parse(message.payload)
            rows, ident = message_rows(value)
        except ValueError as exc:
            return refused(str(exc))
        if message.key is None and ident is not None and message.envelope_ids:
            if len(ident) > ID_CHARS:
                return refused(f"the id is longer than {ID_CHARS} characters")
            message.key = ident
        if message.key is None and message.needs_key is not None:
            return refused(message.needs_key)
        if not rows:
            return refused("the message holds no rows")
        if len(rows) == 1 and isinstance(rows[0], dict):  # the usual message: one row
            header = list(rows[0])
        else:
            errors: list[dict[str, Any]] = []
            keys: dict[str, None] = {}
            for index, row in enumerate(rows):
                if isinstance(row, dict):
                    keys.update(dict.fromkeys(row))
                else:
                    errors.append({"index": index, "column": None, "reason": f"expected a row object, got {_kind(row)}"})
            if errors:
                return Outcome("rejected", 0, errors)
            header = list(keys)
        planned = self._plan(tuple(header))
        if isinstance(planned, InvalidHeader):
            return refused(planned.message)
        return _Read(message, rows, header, planned.plan, planned.make, planned.fast)

    def _convert(self, read: _Read) -> Checked | Outcome:
        plan, make, header = read.plan, read.make, read.header
        errors: list[dict[str, Any]] = []
        values: list[list[Any]] = []
        for index, row in enumerate(read.rows):
            cells = [row.get(name, OMITTED) for name in header]
            try:
                converted = [convert(cells[p]) for p, convert in zip(plan.positions, plan.converters)]
            except InvalidValue as exc:
                errors.append({"index": index, "column": (exc.details or {}).get("column"), "reason": exc.message})
                continue
            if make is not None and self.rules is not None:
                problems = self.rules.problems(make(converted))
                if problems:
                    errors.extend(
                        {"index": index, "column": p.column, "reason": f"{p.reason} (rule {p.rule})"} for p in problems
                    )
                    continue
            values.append(converted)
        if errors:
            return Outcome("rejected", 0, errors)
        return Checked(read.message, plan, values)

    def _plan(self, keys: tuple[str, ...]) -> _Planned | InvalidHeader:
        found = self._plans.get(keys)
        if found is None:
            try:
                plan = plan_import(self.table, list(keys), load_data=self.load_data, cells="json")
            except InvalidHeader as exc:
                found = exc
            else:
                make = None
                if self.rules is not None:
                    make = row_maker(plan.columns, self.rules.names, BARE_NULL if self.load_data else None, OMITTED)
                checks = [column_check(c) for c in plan.columns]
                fast = None if not self.load_data or any(c is None for c in checks) else checks
                found = _Planned(plan, make, fast)  # type: ignore[arg-type]
            if len(self._plans) < 1000:  # key sets are few; a stream of random keys must not grow this
                self._plans[keys] = found
        return found


@dataclass(frozen=True)
class _Planned:
    plan: ImportPlan
    make: Callable[[Any], dict] | None
    fast: list[Check] | None


def _canonical_rows(reads: list[_Read]) -> list[list[Any]] | None:
    """The rows of messages sharing a plan, values as they are (NULL as BARE_NULL), if every
    column passes its canonical check; else None."""
    plan = reads[0].plan
    rows = [row for read in reads for row in read.rows]
    width = len(reads[0].header)
    pick = itemgetter(*reads[0].header)
    cells = list(map(pick, rows)) if width > 1 else [(pick(row),) for row in rows]
    columns = list(zip(*cells))
    kept = []
    for position, check in zip(plan.positions, reads[0].fast or ()):
        column = columns[position]
        if not check(column):
            return None
        kept.append([BARE_NULL if v is None else v for v in column] if None in column else column)
    return list(zip(*kept))  # type: ignore[arg-type]


def _kind(value: Any) -> str:
    return "null" if value is None else {dict: "object", list: "array", str: "string", bool: "boolean"}.get(
        type(value), "number"
    )
