"""What is wrong with one row, said the same way wherever the row came from (pure).

A POST answers the first problem as its error (the code is the error's, the reason its message);
an import reports each bad row by position with the same code and reason; a stream message is
refused with the same code and reason for each of its bad rows. So the same bad value gives the
same words whether it was POSTed, imported or streamed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.core.echo import shown
from app.core.errors import GatewayError, InvalidValue, MissingColumn, UnknownColumn
from app.db.catalog import Column, Table


@dataclass(frozen=True)
class RowProblem:
    code: str  # a public error code: invalid_value, missing_column, unknown_column, conflict, ...
    reason: str  # the whole sentence, naming the column: "column 'age': expected an integer"
    column: str | None = None
    rule: str | None = None  # a broken rule's place in the table's JSON Schema
    key: dict[str, Any] | None = None  # a duplicate's key
    rules_version: int | None = None
    details: dict[str, Any] | None = None  # what the error said beyond its reason (the column's type, the value)

    @classmethod
    def of(cls, exc: GatewayError) -> RowProblem:
        """A conversion's or the database's refusal of one row."""
        details = exc.details if isinstance(exc.details, dict) else {}
        return cls(exc.code, exc.message, details.get("column"), details=details or None)

    @classmethod
    def missing(cls, column: Column) -> RowProblem:
        return cls(
            MissingColumn.code, f"column '{column.name}': missing, and it has no default (NOT NULL)", column.name
        )

    @classmethod
    def unknown(cls, table: Table, name: Any) -> RowProblem:
        return cls(UnknownColumn.code, f"table '{table.name}' has no column '{shown(name)}'", shown(name))

    @classmethod
    def breaking(cls, column: str | None, rule: str, reason: str, version: int | None) -> RowProblem:
        """A rule of the table's JSON Schema that the row breaks."""
        where = f"column '{column}': " if column else ""
        return cls(InvalidValue.code, f"{where}{reason} (rule {rule})", column, rule, rules_version=version)

    def as_error(self, row: int | None = None, **details: Any) -> GatewayError:
        """The row's problem as a request's error (a POST of it)."""
        known: dict[str, Any] = {"row": row} if row is not None else {}
        known |= {"column": self.column} | (self.details or {})
        if self.rule is not None:
            known |= {"rule": self.rule, "rules_version": self.rules_version}
        error = {UnknownColumn.code: UnknownColumn, MissingColumn.code: MissingColumn}.get(self.code, InvalidValue)
        return error(self.reason, known | details)

    def at(self, unit: str, position: int | None) -> dict[str, Any]:
        """The problem in a report or a stream's answer: where (`line`, `row`, `index`), then what."""
        said: dict[str, Any] = {unit: position, "column": self.column, "code": self.code, "reason": self.reason}
        if self.rule is not None:
            said["rule"] = self.rule
        if self.key is not None:
            said["key"] = self.key
        return said


def joined(problems: list[RowProblem]) -> RowProblem:
    """A row's problems as one (an import reports a row once): the first's code, column and rule,
    every reason."""
    first = problems[0]
    if len(problems) == 1:
        return first
    return RowProblem(
        first.code, "; ".join(p.reason for p in problems), first.column, first.rule, first.key, first.rules_version
    )
