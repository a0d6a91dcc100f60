"""The schemas the OpenAPI document is made of (app/http/openapi.py puts them together).

A table's columns become `users.row`, `users.input` and `users.patch` (types, nullability, lengths,
enums, as the gateway writes and reads values); a route's body and answer are `Shape`s, made per table
or named once; what is the same everywhere (errors by status, envelopes, filters, reports, jobs) is a
component, `SCHEMAS`. Pure data and pure functions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from app.core.errors import by_status, meaning
from app.db.catalog import Column, Table
from app.query.lists import MAX_ROWS
from app.query.operators import summary as operators


def component(table: str) -> str:
    """A table's name as component names may spell it (`^[a-zA-Z0-9._-]+$`): a character outside
    letters, digits and `_` (`-` and `.` included) becomes `-hex-`, so no two names meet."""
    return "".join(c if c.isascii() and (c.isalnum() or c == "_") else f"-{ord(c):x}-" for c in table)


def ref(name: str, kind: str = "schemas") -> dict:
    """A reference to a component (its name escaped as a JSON pointer: `~` and `/`)."""
    return {"$ref": f"#/components/{kind}/{name.replace('~', '~0').replace('/', '~1')}"}


# --- column schemas -------------------------------------------------------------------------------


@lru_cache(maxsize=65536)
def column_schema(column: Column) -> dict:
    """The JSON form of a column's values, as the gateway writes them in responses."""
    kind = column.kind
    if kind in ("int", "bool", "bit", "year"):
        schema: dict[str, Any] = {"type": "integer"}
        if column.int_range is not None:
            schema |= {"minimum": column.int_range[0], "maximum": column.int_range[1]}
    elif kind == "float":
        schema = {"type": "number"}
    elif kind == "decimal":
        schema = {
            "type": "string",
            "pattern": r"^-?\d+(\.\d+)?$",
            "description": f"DECIMAL({column.precision},{column.scale}), exact",
        }
    elif kind == "json":
        schema = {"description": "any JSON value"}
    elif kind == "enum":
        schema = {"type": "string", "enum": list(column.members)}
    elif kind == "binary":
        schema = {"type": "string", "contentEncoding": "base64"}
    elif kind == "date":
        schema = {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$"}
    elif kind in ("datetime", "timestamp"):
        schema = {
            "type": "string",
            "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?$",
            "description": "ISO 8601, UTC",
        }
    else:  # string, set, time, and the rest
        schema = {"type": "string"}
        if column.max_length and column.length_in_chars:
            schema["maxLength"] = column.max_length
    schema["title"] = column.column_type
    if column.nullable:
        return {"anyOf": [schema, {"type": "null"}]}
    return schema


@lru_cache(maxsize=65536)
def input_schema(column: Column) -> dict:
    """What a request may send for a column: the response form, plus what conversion accepts."""
    if column.kind == "bool":
        return {"anyOf": [{"type": "boolean"}, column_schema(column)]}
    if column.kind == "int":  # an integer, or its digits as text (3.5 is refused, so no "number")
        return {"anyOf": [column_schema(column), {"type": "string", "pattern": r"^\s*[+-]?\d+\s*$"}]}
    if column.kind == "decimal":
        return {"anyOf": [column_schema(column), {"type": "number"}]}
    if column.kind == "set":
        return {
            "anyOf": [
                column_schema(column),
                {"type": "array", "items": {"type": "string", "enum": list(column.members)}},
            ]
        }
    return column_schema(column)


def table_schemas(table: Table) -> dict[str, dict]:
    """`<table>.row` (values as answers carry them), `.input` (as a POST gives them) and `.patch`."""
    writable = [c for c in table.columns if not c.generated]
    inputs = {c.name: input_schema(c) for c in writable}
    name = component(table.name)
    return {
        f"{name}.row": {"type": "object", "properties": {c.name: column_schema(c) for c in table.columns}},
        f"{name}.input": {
            "type": "object",
            "properties": inputs,
            "required": [c.name for c in writable if c.required],
            "additionalProperties": False,
        },
        f"{name}.patch": {
            "type": "object",
            "properties": inputs,
            "minProperties": 1,
            "additionalProperties": False,
        },
    }


# --- shapes: how a route's body and answer read for a table (app/api/routes.py names them) ---------


@dataclass(frozen=True)
class Shape:
    """A body's or an answer's schema: `make(table)` for a route on a table (per_table: it names the
    table's own schemas), or the same for every table (shared)."""

    key: str  # its name among the document's components
    make: Callable[[Table | None], dict]
    per_table: bool = True
    media: str = "application/json"  # a body's media type

    def __call__(self, table: Table | None) -> dict:
        return self.make(table)

    def name(self, table: Table | None) -> str:
        return f"{component(table.name)}.{self.key}" if self.per_table and table is not None else self.key


def _row(table: Table | None) -> dict:
    return ref(f"{component(table.name)}.row") if table else {"type": "object"}


def _input(table: Table | None, kind: str = "input") -> dict:
    return ref(f"{component(table.name)}.{kind}") if table else {"type": "object"}


row = Shape("row", _row)
rows = Shape("rows", lambda table: {"type": "array", "items": _row(table)})
row_or_rows = Shape("created", lambda table: {"anyOf": [_row(table), {"type": "array", "items": _row(table)}]})
new_rows = Shape(
    "new",
    lambda table: {
        "type": "object",
        "required": ["input"],
        "additionalProperties": False,
        "properties": {"input": {"anyOf": [_input(table), {"type": "array", "items": _input(table), "minItems": 1}]}},
    },
)
changes = Shape(
    "changes",
    lambda table: {
        "type": "object",
        "properties": {"input": _input(table, "patch"), "where": ref("Filter")},
        "required": ["input", "where"],
        "additionalProperties": False,
    },
)
changes_by_key = Shape(
    "change",
    lambda table: {
        "type": "object",
        "properties": {"input": _input(table, "patch")},
        "required": ["input"],
        "additionalProperties": False,
    },
)
keyed_changes = Shape(
    "changes_by_keys",
    lambda table: {
        "type": "object",
        "properties": {"input": {"type": "array", "items": _input(table, "patch"), "minItems": 1}},
        "required": ["input"],
        "additionalProperties": False,
    },
)
upload = Shape(
    "Upload",
    lambda table: {
        "type": "object",
        "properties": {"file": {"type": "string", "format": "binary"}},
        "required": ["file"],
    },
    per_table=False,
    media="multipart/form-data",
)
token_form = Shape(
    "TokenForm",
    lambda table: {
        "type": "object",
        "properties": {
            "grant_type": {"type": "string", "enum": ["password", "client_credentials", "refresh_token"]},
            "username": {"type": "string", "description": "password grant"},
            "password": {"type": "string", "format": "password", "description": "password grant"},
            "client_id": {"type": "string", "description": "client_credentials: the key's id (or HTTP Basic)"},
            "client_secret": {"type": "string", "format": "password",
                              "description": "client_credentials: the whole gw_... key"},
            "refresh_token": {"type": "string", "description": "refresh_token grant"},
            "scope": {"type": "string", "description": "space-separated: some of the credential's scopes"},
        },
        "required": ["grant_type"],
    },
    per_table=False,
    media="application/x-www-form-urlencoded",
)
token_answer = Shape(
    "Token",
    lambda table: {
        "type": "object",
        "properties": {
            "access_token": {"type": "string"}, "token_type": {"type": "string", "enum": ["bearer"]},
            "expires_in": {"type": "integer"}, "scope": {"type": "string"},
            "refresh_token": {"type": "string", "description": "password and refresh_token grants"},
        },
        "required": ["access_token", "token_type", "expires_in", "scope"],
    },
    per_table=False,
)


def named(component: str) -> Shape:
    """A shape that is a schema component, the same for every table."""
    return Shape(component, lambda table: ref(component), per_table=False)


def maybe(component: str) -> Shape:
    return Shape(f"{component}.maybe", lambda table: {"anyOf": [ref(component), {"type": "null"}]}, per_table=False)


def inline(key: str, schema: dict) -> Shape:
    return Shape(key, lambda table: schema, per_table=False)


affected = named("Affected")


# --- components: what every table's paths share ----------------------------------------------------

RANGES = {"type": "array", "items": {"type": "array", "items": {"type": "integer"}}}
OPTIONAL_NAMES = {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}
# Which rows, in which order, with which fields: what POST /query and POST .../export share.
PICKED = {"input": ref("Filter"), "order_by": OPTIONAL_NAMES, "order": OPTIONAL_NAMES, "fields": ref("Fields")}
SCHEMAS: dict[str, dict] = {
    "Error": {
        "type": "object",
        "properties": {
            "timestamp": {"type": "string"},
            "status": {"type": "integer"},
            "error": {"type": "string"},
            "message": {"type": "string"},
            "details": {},
            "retry_count": {"type": "integer"},
            "request_id": {"type": "string"},
        },
        "required": ["timestamp", "status", "error", "message", "details", "retry_count", "request_id"],
    },
    "Meta": {
        "type": "object",
        "properties": {
            "count": {"type": "integer"},
            "limit": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
            "offset": {"type": "integer"},
            "next": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
            "next_cursor": {"anyOf": [{"type": "string"}, {"type": "null"}]},
            "total": {"type": "integer"},
            "total_kind": {"type": "string", "enum": ["exact", "estimated"]},
        },
        "required": ["count", "limit", "offset", "next"],
    },
    "Affected": {"type": "object", "properties": {"affected": {"type": "integer"}}, "required": ["affected"]},
    "Policy": {
        "type": "object",
        "properties": {"table": {"type": "string"}, "column": {"type": "string"}, "claim": {"type": "string"}},
        "required": ["table", "column", "claim"],
    },
    "Credential": {
        "type": "object",
        "description": "an API key or a user; `key` only when it is made or rotated",
        "properties": {
            "id": {"type": "string"}, "kind": {"type": "string", "enum": ["key", "user"]},
            "name": {"type": "string"}, "scopes": {"type": "array", "items": {"type": "string"}},
            "claims": {"type": "object"}, "key": {"type": "string"},
            "expires_at": {"type": ["string", "null"]}, "revoked_at": {"type": ["string", "null"]},
        },
        "required": ["id"],
    },
    "AuditEntry": {
        "type": "object",
        "properties": {
            "id": {"type": "integer"}, "at": {"type": "string"}, "request_id": {"type": "string"},
            "subject": {"type": "string"}, "table": {"type": "string"}, "action": {"type": "string"},
            "count": {"type": "integer"},
        },
        "required": ["id", "at", "request_id", "subject", "table", "action", "count"],
    },
    "Patched": {
        "type": "object",
        "properties": {
            "affected": {"type": "integer", "description": "rows found by their keys and updated"},
            "missing": {"type": "array", "items": {"type": "object"}, "description": "the keys no row has"},
        },
        "required": ["affected", "missing"],
    },
    "Filter": {
        "type": "object",
        "description": f"FILTER: {{col: value}}, {{col: {{op: value}}}} with op in {operators()}, "
        'or {"or": [FILTER, ...]} / {"and": [...]}',
    },
    "Fields": {
        "description": "columns, and relations to embed: 'id,total,customer(name)' or a list of such "
        'strings and objects {"orders": {"fields": [...], "where": FILTER, "order": "total.desc", "limit": 5}}',
        "anyOf": [
            {"type": "string"},
            {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "object"}]}},
        ],
    },
    "Query": {
        "type": "object",
        "properties": {
            **PICKED,
            "limit": {"type": "integer", "minimum": 1},
            "offset": {"type": "integer", "minimum": 0, "maximum": MAX_ROWS},
            "cursor": {"type": "string"},
            "count": {"type": "string", "enum": ["exact", "estimated"]},
        },
        "additionalProperties": False,
    },
    "ExportQuery": {
        "type": "object",
        "properties": {
            **PICKED,
            "limit": {"type": "integer", "minimum": 1, "maximum": MAX_ROWS},
            "offset": {"type": "integer", "minimum": 0, "maximum": MAX_ROWS},
        },
        "additionalProperties": False,
    },
    "Aggregate": {
        "type": "object",
        "properties": {
            "input": ref("Filter"),
            "group_by": OPTIONAL_NAMES,
            "aggregates": {
                "type": "object",
                "properties": {f: OPTIONAL_NAMES for f in ("count", "count_distinct", "sum", "avg", "min", "max")},
                "additionalProperties": False,
            },
            "having": {"type": "object", "description": "{result: value} or {result: {op: value}}, and/or lists"},
            "order_by": OPTIONAL_NAMES,
            "order": OPTIONAL_NAMES,
            "limit": {"type": "integer", "minimum": 1},
            "offset": {"type": "integer", "minimum": 0, "maximum": MAX_ROWS},
        },
        "additionalProperties": False,
    },
    "Delete": {
        "type": "object",
        "properties": {"input": ref("Filter"), "where": ref("Filter")},
        "minProperties": 1,
        "maxProperties": 1,
        "additionalProperties": False,
    },
    "Groups": {
        "type": "array",
        "items": {"type": "object", "description": "group columns by name; count, sum_<col>, avg_<col>, ..."},
    },
    "Table": {
        "type": "object",
        "properties": {"name": {"type": "string"}, "primary_key": {"type": "array"}, "columns": {}},
        "required": ["name", "columns"],
    },
    # Positions are named for what the format counts:
    # lines (CSV, TSV, JSON Lines), rows (sheets), indexes (JSON arrays).
    "ImportReport": {
        "type": "object",
        "properties": {
            "table": {"type": "string"},
            "mode": {"type": "string"},
            "atomic": {"type": "boolean"},
            "source": {"type": "object", "properties": {"format": {"type": "string"}, "sheet": {"type": "string"}}},
            "validated_only": {"type": "boolean"},
            "rules_version": {"type": ["integer", "null"]},
            **{
                k: {"type": "integer", "minimum": 0}
                for k in (
                    "rows_read",
                    "rows_inserted",
                    "rows_updated",
                    "rows_skipped",
                    "rows_failed",
                    "rows_not_applied",
                    "rows_outcome_unknown",
                    "rows_valid",
                    "errors_total",
                )
            },
            "errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "line": {"type": "integer"},
                        "row": {"type": "integer"},
                        "index": {"type": "integer"},
                        "column": {"type": ["string", "null"]},
                        "code": {"type": "string"},
                        "reason": {"type": "string"},
                        "rule": {"type": "string"},
                        "key": {"type": "object"},
                    },
                    "required": ["column", "reason"],
                },
            },
            **{
                f"{state}_{unit}": RANGES
                for state in ("committed", "not_committed", "outcome_unknown")
                for unit in ("lines", "rows", "indexes")
            },
            "elapsed_s": {"type": "number"},
            "rows_per_s": {"type": ["integer", "null"]},
        },
        "required": [
            "table",
            "mode",
            "atomic",
            "rows_read",
            "rows_inserted",
            "rows_updated",
            "rows_skipped",
            "rows_failed",
            "rows_not_applied",
            "rows_outcome_unknown",
            "errors",
            "errors_total",
        ],
    },
    "Rules": {
        "type": "object",
        "properties": {
            "table": {"type": "string"},
            "version": {"type": "integer"},
            "schema": {"type": "object"},
            "versions": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "version": {"type": "integer"},
                        "created_at": {"type": "string"},
                        "created_by": {"type": "string"},
                        "removed": {"type": "boolean"},
                        "removed_at": {"type": "string"},
                        "removed_by": {"type": ["string", "null"]},
                    },
                },
            },
        },
        "required": ["table", "version", "schema", "versions"],
    },
    "Job": {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "state": {"type": "string", "enum": ["uploading", "queued", "running", "succeeded", "failed", "cancelled"]},
            "table": {"type": "string"},
            "source": {"type": "string"},
            "format": {"type": ["string", "null"]},
            "mode": {"type": ["string", "null"]},
            "atomic": {"type": "boolean"},
            "rows_read": {"type": "integer"},
            "rows_written": {"type": "integer"},
            "rows_failed": {"type": "integer"},
            "bytes_done": {"type": "integer"},
            "bytes_total": {"type": ["integer", "null"]},
            "rows_per_s": {"type": ["integer", "null"]},
            "eta_s": {"type": ["number", "null"]},
            "errors": {"type": "array", "items": {"type": "object"}},
            "attempt": {"type": "integer"},
            "owner": {"type": ["string", "null"]},
            "cancel_requested": {"type": "boolean"},
            "created_at": {"type": "string"},
            "started_at": {"type": ["string", "null"]},
            "updated_at": {"type": "string"},
            "ended_at": {"type": ["string", "null"]},
            "error": {"type": ["object", "null"]},
            "report": {"anyOf": [ref("ImportReport"), {"type": "null"}]},
            "links": {"type": "object"},
        },
        "required": [
            "id",
            "state",
            "table",
            "source",
            "rows_read",
            "rows_written",
            "rows_failed",
            "bytes_done",
            "errors",
            "report",
        ],
    },
    "StreamAnswer": {
        "type": "object",
        "properties": {
            "id": {"type": ["string", "null"]},
            "status": {"type": "string", "enum": ["applied", "duplicate", "rejected", "failed"]},
            "rows_written": {"type": "integer"},
            "code": {"type": "string", "description": "failed: the error code"},
            "errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "index": {"type": ["integer", "null"]},
                        "column": {"type": ["string", "null"]},
                        "code": {"type": "string"},
                        "reason": {"type": "string"},
                    },
                },
            },
        },
        "required": ["id", "status", "rows_written", "errors"],
    },
}


def list_options(max_limit: int) -> dict[str, dict]:
    """The list options every list of rows takes (components/parameters)."""
    return {
        "limit": {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": max_limit}},
        "offset": {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0, "maximum": MAX_ROWS}},
        "order": {"name": "order", "in": "query", "schema": {"type": "string"}, "description": "col.asc,other.desc"},
        "fields": {
            "name": "fields",
            "in": "query",
            "schema": {"type": "string"},
            "description": "a,b; with related rows (the table's `.embeds`): "
            "a,customer(name),orders(id;order=id.desc;limit=5)",
        },
        "cursor": {
            "name": "cursor",
            "in": "query",
            "schema": {"type": "string"},
            "description": "meta.next_cursor of the page before",
        },
        "count": {
            "name": "count",
            "in": "query",
            "schema": {"type": "string", "enum": ["exact", "estimated"]},
            "description": "meta.total: exact (COUNT(*)), or estimated (the table's statistics, or the plan's "
            "estimate with a filter; counted when within a page of rows); meta.total_kind says which",
        },
        "key": {
            "name": "key",
            "in": "path",
            "required": True,
            "schema": {"type": "string"},
            "description": "the row's primary key (comma-separated, in key order, when composite)",
        },
    }


def error_responses() -> dict[str, dict]:
    """One response per error status, naming every code it may carry (the errors' registry), and
    `Error`: any of them."""
    responses = {
        str(status): {
            "description": "; ".join(f"`{e.code}`: {meaning(e)}" for e in errors),
            "content": {"application/json": {"schema": ref("Error")}},
        }
        for status, errors in by_status().items()
    }
    responses["Error"] = {
        "description": "an error: the error envelope, with one of the codes listed by status (docs/contract.md)",
        "content": {"application/json": {"schema": ref("Error")}},
    }
    return responses


def envelope(data: dict, *, listing: bool = False) -> dict:
    properties = {
        "timestamp": {"type": "string"},
        "message": {"type": "string"},
        "data": data,
        "retry_count": {"type": "integer", "minimum": 0},
    }
    if listing:
        properties["meta"] = ref("Meta")
    return {"type": "object", "properties": properties, "required": list(properties)}
