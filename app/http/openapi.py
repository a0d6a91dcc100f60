"""The OpenAPI document, made from the route table (app/api/routes.py) and the catalog, for a caller.

Every route is described from its declaration: its parameters, its body, its answer and its errors
(their meanings come from the errors' registry, app/core/errors.py). A route on a table becomes one
path per table the caller may use it on, with schemas built from the table's columns (types,
nullability, lengths, enums: `users.row`, `users.input`, `users.patch`), so clients can be generated
from it. What is the same everywhere (errors, envelopes, the list options) is a component, named
once. A table's part of the document is serialized once per (table, what the caller may do with it)
and kept while the catalog keeps that table: a document of 3,000 tables is mostly a join of bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import orjson

from app.core.auth import Principal
from app.core.errors import by_status, meaning
from app.db.catalog import Column, Table
from app.query.filters import RESERVED_PARAMS
from app.query.lists import MAX_ROWS
from app.query.operators import summary as operators
from app.http.route import Param, Route

if TYPE_CHECKING:
    from app.http.dispatch import Dispatcher

ACTIONS = ("read", "write", "import", "export")
COMMON_ERRORS = (400, 401, 403, 404, 429, 503, 504)  # what any route that reads a table may answer


def ref(name: str, kind: str = "schemas") -> dict:
    return {"$ref": f"#/components/{kind}/{name}"}


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
        schema = {"type": "string", "pattern": r"^-?\d+(\.\d+)?$", "description": f"DECIMAL({column.precision},{column.scale}), exact"}
    elif kind == "json":
        schema = {"description": "any JSON value"}
    elif kind == "enum":
        schema = {"type": "string", "enum": list(column.members)}
    elif kind == "binary":
        schema = {"type": "string", "contentEncoding": "base64"}
    elif kind == "date":
        schema = {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$"}
    elif kind in ("datetime", "timestamp"):
        schema = {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?$", "description": "ISO 8601, UTC"}
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
        return {"anyOf": [column_schema(column), {"type": "array", "items": {"type": "string", "enum": list(column.members)}}]}
    return column_schema(column)


def table_schemas(table: Table) -> dict[str, dict]:
    writable = [c for c in table.columns if not c.generated]
    inputs = {c.name: input_schema(c) for c in writable}
    return {
        f"{table.name}.row": {"type": "object", "properties": {c.name: column_schema(c) for c in table.columns}},
        f"{table.name}.input": {"type": "object", "properties": inputs, "required": [c.name for c in writable if c.required],
                                "additionalProperties": False},
        f"{table.name}.patch": {"type": "object", "properties": inputs, "minProperties": 1, "additionalProperties": False},
    }


# --- shapes: how a route's body and answer read for a table (app/api/routes.py names them) ---------


def row(table: Table | None) -> dict:
    return ref(f"{table.name}.row") if table else {"type": "object"}


def rows(table: Table | None) -> dict:
    return {"type": "array", "items": row(table)}


def row_or_rows(table: Table | None) -> dict:
    return {"anyOf": [row(table), rows(table)]}


def affected(table: Table | None) -> dict:
    return ref("Affected")


def new_rows(table: Table | None) -> dict:
    item = ref(f"{table.name}.input") if table else {"type": "object"}
    return {"type": "object", "properties": {"input": {"anyOf": [item, {"type": "array", "items": item, "minItems": 1}]}},
            "required": ["input"], "additionalProperties": False}


def changes(table: Table | None) -> dict:
    patch = ref(f"{table.name}.patch") if table else {"type": "object"}
    return {"type": "object", "properties": {"input": patch, "where": ref("Filter")}, "required": ["input", "where"],
            "additionalProperties": False}


def changes_by_key(table: Table | None) -> dict:
    patch = ref(f"{table.name}.patch") if table else {"type": "object"}
    return {"type": "object", "properties": {"input": patch}, "required": ["input"], "additionalProperties": False}


def named(component: str) -> Callable[[Table | None], dict]:
    """A shape that is a component, the same for every table."""
    return lambda table: ref(component)


def maybe(component: str) -> Callable[[Table | None], dict]:
    return lambda table: {"anyOf": [ref(component), {"type": "null"}]}


def anything(table: Table | None) -> dict:
    return {"type": "object"}


def text(table: Table | None) -> dict:
    return {"type": "string"}


def upload(table: Table | None) -> dict:
    return {"type": "object", "properties": {"file": {"type": "string", "format": "binary"}}, "required": ["file"]}


# --- components: what every table's paths share ----------------------------------------------------

RANGES = {"type": "array", "items": {"type": "array", "items": {"type": "integer"}}}
OPTIONAL_NAMES = {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}
SCHEMAS: dict[str, dict] = {
    "Error": {"type": "object", "properties": {
        "timestamp": {"type": "string"}, "status": {"type": "integer"}, "error": {"type": "string"},
        "message": {"type": "string"}, "details": {}, "retry_count": {"type": "integer"}, "request_id": {"type": "string"},
    }, "required": ["timestamp", "status", "error", "message", "details", "retry_count", "request_id"]},
    "Meta": {"type": "object", "properties": {
        "count": {"type": "integer"}, "limit": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
        "offset": {"type": "integer"}, "next": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
        "next_cursor": {"anyOf": [{"type": "string"}, {"type": "null"}]}, "total": {"type": "integer"},
    }, "required": ["count", "limit", "offset", "next"]},
    "Affected": {"type": "object", "properties": {"affected": {"type": "integer"}}, "required": ["affected"]},
    "Filter": {"type": "object", "description": f"FILTER: {{col: value}}, {{col: {{op: value}}}} with op in {operators()}, "
                                                 "or {\"or\": [FILTER, ...]} / {\"and\": [...]}"},
    "Query": {"type": "object", "properties": {
        "input": ref("Filter"), "order_by": OPTIONAL_NAMES, "order": OPTIONAL_NAMES, "fields": OPTIONAL_NAMES,
        "limit": {"type": "integer", "minimum": 1}, "offset": {"type": "integer", "minimum": 0, "maximum": MAX_ROWS},
        "cursor": {"type": "string"}, "count": {"type": "string", "enum": ["exact"]},
    }, "additionalProperties": False},
    "Aggregate": {"type": "object", "properties": {
        "input": ref("Filter"), "group_by": OPTIONAL_NAMES,
        "aggregates": {"type": "object", "properties": {f: OPTIONAL_NAMES for f in (
            "count", "count_distinct", "sum", "avg", "min", "max")}, "additionalProperties": False},
        "having": {"type": "object", "description": "{result: value} or {result: {op: value}}, and/or lists"},
        "order_by": OPTIONAL_NAMES, "order": OPTIONAL_NAMES,
        "limit": {"type": "integer", "minimum": 1}, "offset": {"type": "integer", "minimum": 0, "maximum": MAX_ROWS},
    }, "additionalProperties": False},
    "Delete": {"type": "object", "properties": {"input": ref("Filter"), "where": ref("Filter")}, "minProperties": 1,
               "maxProperties": 1, "additionalProperties": False},
    "Groups": {"type": "array", "items": {"type": "object", "description": "group columns by name; count, sum_<col>, avg_<col>, ..."}},
    "Table": {"type": "object", "properties": {"name": {"type": "string"}, "primary_key": {"type": "array"},
                                                "columns": {}}, "required": ["name", "columns"]},
    # Positions are named for what the format counts: lines (CSV, TSV, JSON Lines), rows (sheets), indexes (JSON arrays).
    "ImportReport": {"type": "object", "properties": {
        "table": {"type": "string"}, "mode": {"type": "string"}, "atomic": {"type": "boolean"},
        "source": {"type": "object", "properties": {"format": {"type": "string"}, "sheet": {"type": "string"}}},
        "validated_only": {"type": "boolean"}, "rules_version": {"type": ["integer", "null"]},
        **{k: {"type": "integer", "minimum": 0} for k in (
            "rows_read", "rows_inserted", "rows_updated", "rows_skipped", "rows_failed", "rows_not_applied",
            "rows_outcome_unknown", "rows_valid", "errors_total")},
        "errors": {"type": "array", "items": {"type": "object", "properties": {
            "line": {"type": "integer"}, "row": {"type": "integer"}, "index": {"type": "integer"},
            "column": {"type": ["string", "null"]}, "code": {"type": "string"}, "reason": {"type": "string"},
            "rule": {"type": "string"}, "key": {"type": "object"}}, "required": ["column", "reason"]}},
        **{f"{state}_{unit}": RANGES for state in ("committed", "not_committed", "outcome_unknown") for unit in ("lines", "rows", "indexes")},
        "elapsed_s": {"type": "number"}, "rows_per_s": {"type": ["integer", "null"]},
    }, "required": ["table", "mode", "atomic", "rows_read", "rows_inserted", "rows_updated", "rows_skipped",
                    "rows_failed", "rows_not_applied", "rows_outcome_unknown", "errors", "errors_total"]},
    "Rules": {"type": "object", "properties": {
        "table": {"type": "string"}, "version": {"type": "integer"}, "schema": {"type": "object"},
        "versions": {"type": "array", "items": {"type": "object", "properties": {
            "version": {"type": "integer"}, "created_at": {"type": "string"}, "created_by": {"type": "string"},
            "removed": {"type": "boolean"}, "removed_at": {"type": "string"}, "removed_by": {"type": ["string", "null"]}}}},
    }, "required": ["table", "version", "schema", "versions"]},
    "Job": {"type": "object", "properties": {
        "id": {"type": "string"}, "state": {"type": "string", "enum": ["uploading", "queued", "running", "succeeded", "failed", "cancelled"]},
        "table": {"type": "string"}, "source": {"type": "string"}, "format": {"type": ["string", "null"]},
        "mode": {"type": ["string", "null"]}, "atomic": {"type": "boolean"}, "rows_read": {"type": "integer"},
        "rows_written": {"type": "integer"}, "rows_failed": {"type": "integer"}, "bytes_done": {"type": "integer"},
        "bytes_total": {"type": ["integer", "null"]}, "rows_per_s": {"type": ["integer", "null"]}, "eta_s": {"type": ["number", "null"]},
        "errors": {"type": "array", "items": {"type": "object"}}, "attempt": {"type": "integer"},
        "owner": {"type": ["string", "null"]}, "cancel_requested": {"type": "boolean"},
        "created_at": {"type": "string"}, "started_at": {"type": ["string", "null"]}, "updated_at": {"type": "string"},
        "ended_at": {"type": ["string", "null"]}, "error": {"type": ["object", "null"]},
        "report": {"anyOf": [ref("ImportReport"), {"type": "null"}]}, "links": {"type": "object"},
    }, "required": ["id", "state", "table", "source", "rows_read", "rows_written", "rows_failed", "bytes_done", "errors", "report"]},
    "StreamAnswer": {"type": "object", "properties": {
        "id": {"type": ["string", "null"]}, "status": {"type": "string", "enum": ["applied", "duplicate", "rejected", "failed"]},
        "rows_written": {"type": "integer"}, "code": {"type": "string", "description": "failed: the error code"},
        "errors": {"type": "array", "items": {"type": "object", "properties": {
            "index": {"type": ["integer", "null"]}, "column": {"type": ["string", "null"]}, "code": {"type": "string"},
            "reason": {"type": "string"}}}},
    }, "required": ["id", "status", "rows_written", "errors"]},
}


def list_options(max_limit: int) -> dict[str, dict]:
    """The list options every list of rows takes (components/parameters)."""
    return {
        "limit": {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": max_limit}},
        "offset": {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0, "maximum": MAX_ROWS}},
        "order": {"name": "order", "in": "query", "schema": {"type": "string"}, "description": "col.asc,other.desc"},
        "fields": {"name": "fields", "in": "query", "schema": {"type": "string"}, "description": "a,b"},
        "cursor": {"name": "cursor", "in": "query", "schema": {"type": "string"}, "description": "meta.next_cursor of the page before"},
        "count": {"name": "count", "in": "query", "schema": {"type": "string", "enum": ["exact"]}, "description": "exact: meta.total"},
        "key": {"name": "key", "in": "path", "required": True, "schema": {"type": "string"},
                "description": "the row's primary key (comma-separated, in key order, when composite)"},
    }


def error_responses() -> dict[str, dict]:
    """One response per error status, naming every code it may carry (the errors' registry)."""
    return {
        str(status): {
            "description": "; ".join(f"`{e.code}`: {meaning(e)}" for e in errors),
            "content": {"application/json": {"schema": ref("Error")}},
        }
        for status, errors in by_status().items()
    }


def envelope(data: dict, *, listing: bool = False) -> dict:
    properties = {"timestamp": {"type": "string"}, "message": {"type": "string"}, "data": data,
                  "retry_count": {"type": "integer", "minimum": 0}}
    if listing:
        properties["meta"] = ref("Meta")
    return {"type": "object", "properties": properties, "required": list(properties)}


# --- the document ------------------------------------------------------------------------------------


class OpenAPI:
    """The document for a caller, from `routes` (served by `dispatcher`) and the catalog's tables."""

    def __init__(self, routes: Sequence[Route], dispatcher: Dispatcher, *, title: str, version: str, max_limit: int):
        self.dispatcher = dispatcher
        self.max_limit = max_limit
        documented = [r for r in routes if r.documented]
        self.table_routes = [r for r in documented if r.per_table and r.method != "WS"]
        self.other_routes = [r for r in documented if not r.per_table]
        self.streams = [r for r in documented if r.method == "WS"]
        self.info = {"title": title, "version": version, "description": "Generated from the database's tables, for this caller."
                     " WebSocket streams (/api/{table}/ws) are described under x-websockets."}
        self.components = {"parameters": list_options(max_limit), "responses": error_responses(),
                           "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}}
        self._parts: dict[tuple[int, tuple[bool, ...]], tuple[Table, bytes, bytes]] = {}
        # Bodies described by their model (the routes that are not a table's).
        self.schemas = SCHEMAS | {r.body.__name__: r.body.model_json_schema() for r in documented if r.body and not r.request}

    def document(self, tables: list[Table], who: Principal) -> bytes:
        paths: list[bytes] = []
        schemas: list[bytes] = [_inner(orjson.dumps(self.schemas))]
        seen = set()
        for table in tables:
            allowed = tuple(who.may(action, table.name) for action in ACTIONS)
            if not any(allowed):
                continue
            seen.add(id(table))
            table_paths, table_schemas_ = self._part(table, allowed)
            paths.append(table_paths)
            schemas.append(table_schemas_)
        if len(self._parts) > 2 * max(len(tables), 100):  # tables altered or dropped since: forget them
            self._parts = {k: v for k, v in self._parts.items() if k[0] in seen}
        importable = [t.name for t in tables if who.may("import", t.name)]
        paths.append(_inner(orjson.dumps(self._other_paths(who, importable))))
        streams = {path: item for t in tables if who.may("import", t.name) for path, item in self._stream(t).items()}
        return b"".join([
            b'{"openapi":"3.1.0","info":', orjson.dumps(self.info),
            b',"paths":{', b",".join(p for p in paths if p), b'},"x-websockets":', orjson.dumps(streams),
            b',"components":{"schemas":{', b",".join(s for s in schemas if s), b"},",
            _inner(orjson.dumps(self.components)), b"}}",
        ])

    def _part(self, table: Table, allowed: tuple[bool, ...]) -> tuple[bytes, bytes]:
        """A table's paths and schemas, serialized, for a caller who may do `allowed` with it."""
        key = (id(table), allowed)
        kept = self._parts.get(key)
        if kept is not None and kept[0] is table:
            return kept[1], kept[2]
        may = dict(zip(ACTIONS, allowed))
        paths: dict[str, dict] = {}
        for route in self.table_routes:
            if not may.get(route.access, False) or ("{key}" in route.segments and not table.primary_key):
                continue
            path = self.dispatcher.public_path(route, table.name)
            paths.setdefault(path, {})[route.method.lower()] = self._operation(route, table)
        part = (table, _inner(orjson.dumps(paths)), _inner(orjson.dumps(table_schemas(table))))
        self._parts[key] = part
        return part[1], part[2]

    def _operation(self, route: Route, table: Table | None, importable: list[str] | None = None) -> dict:
        name = table.name if table is not None else ""
        operation: dict[str, Any] = {
            "operationId": f"{route.name}_{name}" if table is not None else route.name,
            "tags": [name or route.tag], "summary": route.summary,
        }
        parameters = [self._param(p, importable) for p in route.params]
        for segment in route.segments:
            if segment == "{key}":
                parameters.append(ref("key", "parameters"))
            elif segment.startswith("{") and segment != "{table}":
                parameters.append({"name": segment[1:-1], "in": "path", "required": True, "schema": {"type": "string"}})
        parameters += [ref(name, "parameters") for name in route.options]
        if route.filters and table is not None:
            parameters += _filters(table, skip={p.name for p in route.params} | set(route.options))
        if parameters:
            operation["parameters"] = parameters
        body = route.request(table) if route.request else ({"$ref": f"#/components/schemas/{route.body.__name__}"} if route.body else None)
        if body is not None:
            media = "multipart/form-data" if route.request is upload else "application/json"
            operation["requestBody"] = {"required": True, "content": {media: {"schema": body}}}
        answer = route.answer(table) if route.answer else None
        ok: dict[str, Any] = {"description": "OK"}
        if route.media != ("application/json",):
            ok["content"] = {media: {"schema": {"type": "string"}} for media in route.media}
        elif answer is not None:
            ok["content"] = {"application/json": {"schema": envelope(answer, listing=route.listing)}}
        responses: dict[str, Any] = {str(route.status): ok}
        errors = route.errors if route.access == "open" else (*COMMON_ERRORS, *route.errors)
        for status in sorted(set(errors)):
            responses[str(status)] = ref(str(status), "responses")
        operation["responses"] = responses
        return operation

    def _param(self, param: Param, importable: list[str] | None) -> dict:
        schema = param.schema
        if param.tables is not None and importable is not None:
            schema = schema | {"enum": importable}
        described: dict[str, Any] = {"name": param.name, "in": param.where, "schema": schema}
        if param.description:
            described["description"] = param.description
        return described

    def _other_paths(self, who: Principal, importable: list[str]) -> dict[str, dict]:
        """The routes that are not a table's: imports, jobs, the catalog, health, metrics."""
        paths: dict[str, dict] = {}
        for route in self.other_routes:
            if route.checks == "import" and not importable:
                continue
            paths.setdefault(route.path, {})[route.method.lower()] = self._operation(route, None, importable)
        return paths

    def _stream(self, table: Table) -> dict[str, dict]:
        """The WebSocket streams (OpenAPI has no WebSocket operations: an `x-websockets` extension,
        which tools that do not know it pass by)."""
        item = ref(f"{table.name}.input")
        return {
            self.dispatcher.public_path(route, table.name): {
                "summary": route.summary,
                "parameters": [self._param(p, None) for p in route.params],
                "message": {"oneOf": [item, {"type": "array", "items": item},
                                      {"type": "object", "properties": {"id": {"type": ["string", "integer"]},
                                                                        "rows": {"type": "array", "items": item}},
                                       "required": ["rows"]}]},
                "answer": ref("StreamAnswer"),
                "close_codes": {"1008": "credentials, scope, rate, table or mode refused", "1009": "a message over the size limit"},
            }
            for route in self.streams
        }


def _filters(table: Table, skip: set[str]) -> list[dict]:
    """A filter per column of the table (a column named like one of the route's own parameters, or a
    list option, is filtered with the JSON filter of POST /query instead)."""
    described = f"value or op.value ({operators()})"
    return [
        {"name": c.name, "in": "query", "schema": {"type": "string"}, "description": described}
        for c in table.columns if c.name not in RESERVED_PARAMS and c.name not in skip
    ]


def _inner(serialized: bytes) -> bytes:
    """`{...}` without its braces, to be joined with others into one object."""
    return serialized[1:-1]
