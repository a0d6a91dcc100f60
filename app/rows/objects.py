"""JSON objects -> a table's rows, checked (pure): what a POST body's rows and a stream message's
rows go through, the same way.

Each object is read by its own keys: the rows of one request are planned once over the union of
their keys (plans are kept per set of keys: a stream's rows usually all have the same keys, so one
plan, built once), and a key a row leaves out takes the column's DEFAULT. Every value is converted
for its column (values.py) and the row checked against the table's rules (rules.py); whatever is
wrong is a RowProblem (problems.py), by row.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from app.core.errors import GatewayError
from app.db.catalog import Column, Table
from app.rows.plan import BARE_NULL, ROW_ERRORS, ImportPlan, plan_import
from app.rows.problems import RowProblem
from app.rows.rules import Rules, row_maker
from app.rows.values import OMITTED, to_db

Problems = dict[int, list[RowProblem]]  # row index -> what is wrong with it


@dataclass(frozen=True)
class Planned:
    """A set of keys planned against the table: what is written, and what the keys get wrong."""

    keys: tuple[str, ...]
    plan: ImportPlan
    make: Callable[[Any], dict] | None  # converted values -> the row the rules check
    unknown: tuple[str, ...] = ()  # keys the table does not have
    missing: tuple[Column, ...] = ()  # required columns none of the keys name
    generated: tuple[str, ...] = ()  # generated columns named, where that is refused
    # What a caller keeps with the plan (streams: canonical checks).
    extras: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Rows:
    """Rows that converted and passed the rules: ready to write with `plan` (OMITTED: DEFAULT)."""

    planned: Planned
    values: list[list[Any]]

    @property
    def plan(self) -> ImportPlan:
        return self.planned.plan


class ObjectRows:
    """The rows of one table, for `rules` (None: no rules), as the database will take them
    (`load_data`: NULL as BARE_NULL and binary as base64, what LOAD DATA reads; else for INSERT).
    A value given for a generated column is refused (a POST) or left out (`generated="skip"`: a
    stream, where rows are often what an export of the table wrote)."""

    def __init__(self, table: Table, rules: Rules | None, *, load_data: bool = False, generated: str = "refuse"):
        self.table, self.rules, self.load_data = table, rules, load_data
        self.skip_generated = generated == "skip"
        self._plans: dict[tuple[str, ...], Planned] = {}

    def keys(self, rows: Sequence[Any]) -> tuple[str, ...] | Problems:
        """The union of the rows' keys, in the order first seen; or the rows that are not objects."""
        if len(rows) == 1 and isinstance(rows[0], dict):  # the usual: one row, its keys are the keys
            return tuple(rows[0])
        keys: dict[str, None] = {}
        problems: Problems = {}
        for index, row in enumerate(rows):
            if isinstance(row, dict):
                keys.update(dict.fromkeys(row))
            else:
                problems[index] = [RowProblem("invalid_body", f"expected a row object, got {kind(row)}")]
        return problems or tuple(keys)

    def plan(self, keys: tuple[str, ...]) -> Planned:
        found = self._plans.get(keys)
        if found is None:
            table = self.table
            unknown = tuple(k for k in keys if not isinstance(k, str) or table.column(k) is None)
            generated = (
                () if self.skip_generated else tuple(k for k in keys if k not in unknown and table.by_name[k].generated)
            )
            known = [k for k in keys if k not in unknown and k not in generated]
            given = set(known)
            missing = tuple(c for c in table.columns if c.required and c.name not in given)
            plan = plan_import(table, known, load_data=self.load_data, cells="json", required=False)
            make = None
            if self.rules is not None:
                make = row_maker(plan.columns, self.rules.names, BARE_NULL if self.load_data else None, OMITTED)
            found = Planned(keys, plan, make, unknown, missing, generated)
            if len(self._plans) < 1000:  # key sets are few; a stream of random keys must not grow this
                self._plans[keys] = found
        return found

    def check(self, rows: Sequence[Any]) -> Rows | Problems:
        """The rows converted and checked, or what is wrong with each bad one."""
        keys = self.keys(rows)
        if isinstance(keys, dict):
            return keys
        return self.convert(rows, self.plan(keys))

    def convert(self, rows: Sequence[dict[str, Any]], planned: Planned) -> Rows | Problems:
        plan, make, rules, table = planned.plan, planned.make, self.rules, self.table
        header = [k for k in planned.keys if k not in planned.unknown and k not in planned.generated]
        problems: Problems = {}
        values: list[list[Any]] = []
        for index, row in enumerate(rows):
            found = [RowProblem.unknown(table, k) for k in planned.unknown if k in row]
            found += [_written(table.by_name[k], row[k]) for k in planned.generated if k in row]
            found += [RowProblem.missing(c) for c in planned.missing]
            if found:
                problems[index] = found
                continue
            cells = [row.get(name, OMITTED) for name in header]
            try:
                converted = [convert(cells[p]) for p, convert in zip(plan.positions, plan.converters)]
            except ROW_ERRORS as exc:
                problems[index] = [RowProblem.of(exc)]
                continue
            if make is not None and rules is not None:
                broken = rules.problems(make(converted))
                if broken:
                    problems[index] = [RowProblem.breaking(p.column, p.rule, p.reason, rules.version) for p in broken]
                    continue
            values.append(converted)
        return problems or Rows(planned, values)


def refusal(problems: Problems) -> GatewayError:
    """A request's rows refused: its first bad row's first problem, naming the row (and, for a rule,
    every rule the row breaks)."""
    index = min(problems)
    first = problems[index][0]
    details: dict[str, Any] = {}
    if len(problems[index]) > 1 or first.rule is not None:
        details["problems"] = [
            {"column": p.column, "code": p.code, "rule": p.rule, "reason": p.reason} for p in problems[index]
        ]
    return first.as_error(index, **details)


def _written(column: Column, value: Any) -> RowProblem:
    """A value given for a generated column: refused as every write path refuses it."""
    try:
        to_db(column, value)
    except GatewayError as exc:
        return RowProblem.of(exc)
    raise AssertionError("to_db writes no generated column")


def kind(value: Any) -> str:
    return (
        "null"
        if value is None
        else {dict: "object", list: "array", str: "string", bool: "boolean"}.get(type(value), "number")
    )
