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
from collections.abc import Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any, Literal, cast

from app.core import jsontext
from app.core.errors import InvalidBody, InvalidJson
from app.db.catalog import Table
from app.rows.objects import ObjectRows, Planned, Problems, kind
from app.rows.plan import BARE_NULL, ImportPlan
from app.rows.rules import Rules
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


def refused(reason: str, index: int | None = None, column: str | None = None, code: str = "invalid_body") -> Outcome:
    """A message refused whole: not JSON, not rows, no id where one is needed."""
    return Outcome("rejected", 0, [{"index": index, "column": column, "code": code, "reason": reason}])


@dataclass(slots=True)
class Checked:
    """A message whose rows all converted and passed the rules: ready to write with `plan`."""

    message: Message
    plan: ImportPlan
    rows: Sequence[Sequence[Any]]  # values in plan.columns order, LOAD DATA-ready (NULL as BARE_NULL)
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
    raise ValueError(f"expected a row object, an array of rows or {{\"id\", \"rows\"}}, got {kind(value)}")


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
    planned: Planned
    fast: list[Check] | None  # per plan column, when every column has a canonical check


class Checker:
    """Checks messages for one table: each message's rows as app/rows/objects.py checks any JSON
    rows (a POST's too), with the plans it keeps per set of keys."""

    def __init__(self, table: Table, rules: Rules | None, *, load_data: bool = True):
        self.table, self.rules, self.load_data = table, rules, load_data
        self.objects = ObjectRows(table, rules, load_data=load_data, generated="skip")
        self._fast: dict[tuple[str, ...], list[Check] | None] = {}

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
            elif (
                canonical
                and read.fast is not None
                and self.rules is None
                and (
                    len(read.rows) == 1
                    or all(len(r) == len(read.planned.keys) for r in read.rows)  # one row: its keys are the keys
                )
            ):
                together.setdefault(id(read.planned), []).append((i, read))
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
                out[i] = Checked(read.message, read.planned.plan, rows[at : at + len(read.rows)], canonical=True)
                at += len(read.rows)
        return cast(list[Checked | Outcome], out)  # every position is filled by now

    def _read(self, message: Message) -> _Read | Outcome:
        try:
            value = message.payload if message.parsed else parse(message.payload)
            rows, ident = message_rows(value)
        except ValueError as exc:
            return refused(
                str(exc), code=InvalidJson.code if str(exc).startswith("not valid JSON") else InvalidBody.code
            )
        if message.key is None and ident is not None and message.envelope_ids:
            if len(ident) > ID_CHARS:
                return refused(f"the id is longer than {ID_CHARS} characters")
            message.key = ident
        if message.key is None and message.needs_key is not None:
            return refused(message.needs_key)
        if not rows:
            return refused("the message holds no rows")
        keys = self.objects.keys(rows)
        if isinstance(keys, dict):
            return rejected(keys)
        planned = self.objects.plan(keys)
        return _Read(message, rows, planned, self._canonical_checks(planned))

    def _canonical_checks(self, planned: Planned) -> list[Check] | None:
        """The plan's canonical checks (canonical.py), when LOAD DATA takes the rows and the keys are
        all the table's, every required one given."""
        if planned.keys not in self._fast:
            checks = [column_check(c) for c in planned.plan.columns]
            found = [check for check in checks if check is not None]
            usable = self.load_data and not planned.unknown and not planned.missing and len(found) == len(checks)
            fast = found if usable else None
            if len(self._fast) < 1000:
                self._fast[planned.keys] = fast
            return fast
        return self._fast[planned.keys]

    def _convert(self, read: _Read) -> Checked | Outcome:
        checked = self.objects.convert(read.rows, read.planned)
        if isinstance(checked, dict):
            return rejected(checked)
        return Checked(read.message, checked.plan, checked.values)


def rejected(problems: Problems) -> Outcome:
    """A message refused for its rows: every problem of every bad row, by the row's index."""
    return Outcome("rejected", 0, [p.at("index", index) for index, found in sorted(problems.items()) for p in found])


def _canonical_rows(reads: list[_Read]) -> list[tuple[Any, ...]] | None:
    """The rows of messages sharing a plan, values as they are (NULL as BARE_NULL), if every
    column passes its canonical check; else None."""
    plan = reads[0].planned.plan
    rows = [row for read in reads for row in read.rows]
    header = reads[0].planned.keys
    width = len(header)
    pick = itemgetter(*header)
    cells = list(map(pick, rows)) if width > 1 else [(pick(row),) for row in rows]
    columns = list(zip(*cells))
    kept = []
    for position, check in zip(plan.positions, reads[0].fast or ()):
        column = columns[position]
        if not check(column):
            return None
        kept.append([BARE_NULL if v is None else v for v in column] if None in column else column)
    return list(zip(*kept))
