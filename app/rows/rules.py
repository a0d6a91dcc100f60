"""Per-table rules: a JSON Schema (Draft 2020-12) that every row written must satisfy (pure).

Column types say a value fits; rules say more (a format, a pattern, a range, one field required when
another is set). The schema sees a row as the JSON API shows it: integers and floats as numbers,
DECIMAL as a number too (so `minimum` works; rules are checked in double precision), dates and
times as ISO 8601 text, JSON columns as their value, binary as base64. A NULL is no value: the key
is left out, like the columns a write does not give. So `required` means "given, and not NULL",
and a property's rules apply to its values. An update checks the whole row as it will be.
"""

from __future__ import annotations

import base64
import datetime as dt
import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import jsonschema_rs

from app.core import jsontext
from app.core.echo import shown
from app.core.errors import InvalidSchema, InvalidValue
from app.db.catalog import Column, Table
from app.rows.values import bit_out, format_time, json_out

DRAFT = "https://json-schema.org/draft/2020-12/schema"
# Keywords that look at the whole object: with one of them the row must hold every column given.
WHOLE_OBJECT = {
    "additionalProperties", "unevaluatedProperties", "patternProperties", "propertyNames",
    "minProperties", "maxProperties", "not", "allOf", "anyOf", "oneOf", "if", "then", "else", "$ref", "$dynamicRef",
}
NAMING = ("properties", "dependentRequired", "dependentSchemas")  # object keywords whose keys are columns
# A schema of only these is checked a column at a time (one call per column and batch, in Rust).
COLUMNAR = {"$schema", "$id", "$comment", "title", "description", "examples", "default", "type", "properties",
            "required", "dependentRequired"}


@dataclass(frozen=True)
class ByColumn:
    """A schema split by column: each property's rules, checked over a batch's values at once."""

    batch: dict[str, Any]  # column -> validator of an array of its values
    single: dict[str, Any]  # column -> validator of one value (to name the values that fail)
    required: tuple[str, ...]
    dependent: dict[str, tuple[str, ...]]

    @classmethod
    def of(cls, schema: dict) -> "ByColumn | None":
        if not COLUMNAR.issuperset(schema) or b"$ref" in jsontext.dumps(schema):
            return None
        properties = schema.get("properties") or {}
        return cls(
            {name: validator_of({"type": "array", "items": rule}) for name, rule in properties.items()},
            {name: validator_of(rule) for name, rule in properties.items()},
            tuple(schema.get("required") or ()),
            {name: tuple(needed) for name, needed in (schema.get("dependentRequired") or {}).items()},
        )

    def check(self, values: dict[str, Sequence[Any]], count: int) -> dict[int, list[Problem]]:
        """The rows (by index) that break a rule, given each column's values (None: no value; a
        column not in `values` is not given in any row)."""
        failed: dict[int, list[Problem]] = {}

        def fail(index: int, problem: Problem) -> None:
            failed.setdefault(index, []).append(problem)

        for name, validator in self.batch.items():
            column = values.get(name)
            if column is None or validator.is_valid(
                column if None not in column else [v for v in column if v is not None]
            ):
                continue
            single = self.single[name]
            for index, value in enumerate(column):
                if value is not None and not single.is_valid(value):
                    for error in single.iter_errors(value):
                        path = "/".join(str(p) for p in ("properties", name, *error.schema_path))
                        fail(index, Problem(name, path, error.message))
        for name in self.required:
            column = values.get(name)
            if column is not None and None not in column:
                continue
            for index in range(count):
                if column is None or column[index] is None:
                    fail(index, Problem(None, "required", f'"{name}" is a required property'))
        for name, needed in self.dependent.items():
            column = values.get(name)
            if column is None:
                continue
            for other in needed:
                them = values.get(other)
                for index, value in enumerate(column):
                    if value is not None and (them is None or them[index] is None):
                        fail(index, Problem(None, "dependentRequired", f'"{other}" is a required property'))
        return failed


@dataclass(frozen=True)
class Problem:
    column: str | None
    rule: str  # the schema path of the keyword that failed, e.g. properties/email/format
    reason: str


@dataclass(frozen=True)
class Rules:
    table: str
    version: int
    schema: dict
    validator: Any  # jsonschema_rs.Draft202012Validator
    names: frozenset[str] | None  # the columns the schema looks at; None: every column
    by_column: ByColumn | None = None  # the same rules a column at a time, when the schema allows

    def problems(self, row: dict) -> list[Problem]:
        """What the row breaks; those naming a column first."""
        try:
            if self.validator.is_valid(row):
                return []
        except (ValueError, TypeError, OverflowError) as exc:  # a value JSON cannot carry
            return [Problem(None, "(unreadable)", f"the row cannot be checked against the rules: {str(exc)[:200]}")]
        return sorted(
            [
                Problem(
                    str(error.instance_path[0]) if error.instance_path else None,
                    "/".join(str(p) for p in error.schema_path),
                    error.message,
                )
                for error in self.validator.iter_errors(row)
            ],
            key=lambda p: p.column is None,
        )

    def violation(self, problems: list[Problem], row: int | None = None) -> InvalidValue:
        first = problems[0]
        where = f"column '{first.column}': " if first.column else ""
        details: dict[str, Any] = {
            "column": first.column,
            "rule": first.rule,
            "reason": first.reason,
            "rules_version": self.version,
            "problems": [{"column": p.column, "rule": p.rule, "reason": p.reason} for p in problems],
        }
        if row is not None:
            details = {"row": row, **details}
        return InvalidValue(f"{where}{first.reason} (rule {first.rule})", details)


def _outside(uri: str) -> str:
    return f"a reference outside the schema ({shown(uri)}): rules refer only within themselves ('#/$defs/...')"


def _refuse(uri: str) -> Any:
    raise ValueError(_outside(uri))


def validator_of(schema: dict) -> Any:
    """The compiled validator. A `$ref` is resolved within the schema (and the metaschemas) only:
    never fetched from a URL or read from a file of this machine, which a caller who may write a
    table's rules could otherwise make the gateway do, and read back in the error."""
    return jsonschema_rs.Draft202012Validator(schema, validate_formats=True, retriever=_refuse)


def compile_rules(table: Table, schema: Any, version: int = 0) -> Rules:
    """A table's schema checked and compiled; InvalidSchema says what is wrong with it."""
    if not isinstance(schema, dict):
        raise InvalidSchema("a table's rules are a JSON Schema object (Draft 2020-12)")
    declared = schema.get("$schema", DRAFT)
    if not isinstance(declared, str) or declared.rstrip("#") != DRAFT:
        raise InvalidSchema(f"only JSON Schema Draft 2020-12 is supported ($schema {DRAFT}), not {shown(declared)}")
    if schema.get("type", "object") != "object":
        raise InvalidSchema("the schema describes a row, which is an object: 'type' must be 'object'")
    try:
        jsonschema_rs.meta.validate({**schema, "$schema": DRAFT})
    except jsonschema_rs.ValidationError as exc:
        path = "/".join(str(p) for p in exc.instance_path) or "(the root)"
        raise InvalidSchema(f"not a valid JSON Schema at {path}: {exc.message}", {"at": path}) from None
    except (
        ValueError,
        UnicodeError,
        OverflowError,
    ) as exc:  # what JSON cannot carry (a lone surrogate, a huge integer)
        raise InvalidSchema(f"the schema cannot be read: {str(exc)[:200]}") from None
    named = _named_columns(schema)
    unknown = sorted(n for n in named if table.column(n) is None)
    if unknown:
        raise InvalidSchema(
            f"the schema names column(s) table '{table.name}' does not have: {', '.join(unknown)}",
            {"unknown": unknown},
        )
    try:
        validator = validator_of(schema)
    except (
        jsonschema_rs.ValidationError,
        ValueError,
        UnicodeError,
        OverflowError,
    ) as exc:  # a pattern that is no regex, a $ref nowhere or outside the schema
        reason = str(exc).split("\n", 1)[0]
        if (outside := re.match(r"Resource '(.*?)' is not present in a registry", reason)) is not None:
            reason = _outside(outside.group(1))
        raise InvalidSchema(f"the schema cannot be compiled: {reason}") from None
    whole = any(keyword in schema for keyword in WHOLE_OBJECT)
    return Rules(table.name, version, schema, validator, None if whole else frozenset(named), ByColumn.of(schema))


def _named_columns(schema: dict) -> set[str]:
    names = set()
    for keyword in NAMING:
        if isinstance(schema.get(keyword), dict):
            names.update(schema[keyword])
    if isinstance(schema.get("required"), list):
        names.update(n for n in schema["required"] if isinstance(n, str))
    for needed in (schema.get("dependentRequired") or {}).values():
        if isinstance(needed, list):
            names.update(n for n in needed if isinstance(n, str))
    return names


# --- rows as the schema sees them ---------------------------------------------------------------


def _number(value: Any) -> Any:
    return float(value) if isinstance(value, (str, Decimal)) else value


def _moment(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace(" ", "T", 1)
    return value.isoformat() if isinstance(value, (dt.date, dt.time)) else value


def json_form(column: Column) -> Callable[[Any], Any] | None:
    """A converted (or stored) value of this column -> the schema's view of it (None: as it is)."""
    return _FIXERS.get(column.kind)


def _time(value: Any) -> Any:
    return format_time(value) if isinstance(value, dt.timedelta) else _moment(value)


def _binary(value: Any) -> Any:
    return base64.b64encode(value).decode() if isinstance(value, (bytes, bytearray)) else value


def _set(value: Any) -> Any:
    return ",".join(sorted(value)) if isinstance(value, (set, frozenset)) else value


_FIXERS: dict[str, Callable[[Any], Any]] = {
    "string": _binary,  # types the catalog passes through as text (INET6, geometry) may read back as bytes
    "decimal": _number,
    "float": _number,
    "date": _moment,
    "datetime": _moment,
    "timestamp": _moment,
    "time": _time,
    "json": json_out,
    "binary": _binary,
    "bit": bit_out,
    "set": _set,
}


def row_maker(
    columns: Sequence[Column], names: frozenset[str] | None, null: Any = None, omitted: Any = None
) -> Callable[[Sequence[Any]], dict]:
    """values (in `columns` order, as converted for writing or as read back) -> the row the schema
    checks. `null` is the converters' NULL (the LOAD DATA marker), `omitted` a value left to its
    DEFAULT (not in the row); only `names` are kept."""
    keep = [i for i, c in enumerate(columns) if names is None or c.name in names]
    keys = [columns[i].name for i in keep]
    fixes = [(columns[i].name, _FIXERS[columns[i].kind]) for i in keep if columns[i].kind in _FIXERS]
    pick = (lambda values: [values[keep[0]] for _ in keep]) if len(keep) < 2 else operator.itemgetter(*keep)
    absent = [v for v in (null, omitted) if v is not None]

    def make(values: Sequence[Any]) -> dict:
        row = dict(zip(keys, pick(values)))
        for name, fix in fixes:
            value = row[name]
            if value is not None and value is not null and value is not omitted:
                row[name] = fix(value)
        if None in row.values() or any(
            a in row.values() for a in absent
        ):  # `in` may match 0 == NULL marker: then by identity
            row = {k: v for k, v in row.items() if v is not None and v is not null and v is not omitted}
        return row

    return make
