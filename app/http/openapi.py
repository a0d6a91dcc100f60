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
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Shape:
    """A body's or an answer's schema: `make(table)` for a route on a table (per_table: it names the
    table's own schemas), or the same for every table (shared)."""

    key: str  # its name among the document's components
    make: Callable[[Table | None], dict]
    per_table: bool = True

    def __call__(self, table: Table | None) -> dict:
        return self.make(table)

    def name(self, table: Table | None) -> str:
        return f"{table.name}.{self.key}" if self.per_table and table is not None else self.key


def _row(table: Table | None) -> dict:
    return ref(f"{table.name}.row") if table else {"type": "object"}


def _input(table: Table | None, kind: str = "input") -> dict:
    return ref(f"{table.name}.{kind}") if table else {"type": "object"}


row = Shape("row", _row)
rows = Shape("rows", lambda table: {"type": "array", "items": _row(table)})
row_or_rows = Shape("created", lambda table: {"anyOf": [_row(table), {"type": "array", "items": _row(table)}]})
new_rows = Shape("new", lambda table: {
    "type": "object", "required": ["input"], "additionalProperties": False,
    "properties": {"input": {"anyOf": [_input(table), {"type": "array", "items": _input(table), "minItems": 1}]}}})
changes = Shape("changes", lambda table: {
    "type": "object", "properties": {"input": _input(table, "patch"), "where": ref("Filter")}, "required": ["input", "where"],
    "additionalProperties": False})
changes_by_key = Shape("change", lambda table: {
    "type": "object", "properties": {"input": _input(table, "patch")}, "required": ["input"], "additionalProperties": False})
upload = Shape("Upload", lambda table: {
    "type": "object", "properties": {"file": {"type": "string", "format": "binary"}}, "required": ["file"]}, per_table=False)


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
    """One response per error status, naming every code it may carry (the errors' registry), and
    `Error`: any of them."""
    responses = {
        str(status): {"description": "; ".join(f"`{e.code}`: {meaning(e)}" for e in errors),
                      "content": {"application/json": {"schema": ref("Error")}}}
        for status, errors in by_status().items()
    }
    responses["Error"] = {"description": "an error: the error envelope, with one of the codes listed by status (docs/contract.md)",
                          "content": {"application/json": {"schema": ref("Error")}}}
    return responses


def envelope(data: dict, *, listing: bool = False) -> dict:
    properties = {"timestamp": {"type": "string"}, "message": {"type": "string"}, "data": data,
                  "retry_count": {"type": "integer", "minimum": 0}}
    if listing:
        properties["meta"] = ref("Meta")
    return {"type": "object", "properties": properties, "required": list(properties)}


# --- the document ------------------------------------------------------------------------------------


STAND_IN = "@@gateway-table@@"  # a name no table's part holds anywhere else
STAND_IN_BYTES = STAND_IN.encode()


@dataclass
class Part:
    """What a table adds to the document, serialized, each piece without its braces."""

    table: Table
    paths: bytes
    schemas: bytes
    responses: bytes
    parameters: bytes
    stream: bytes


class OpenAPI:
    """The document for a caller, from `routes` (served by `dispatcher`) and the catalog's tables."""

    def __init__(self, routes: Sequence[Route], dispatcher: Dispatcher, *, title: str, version: str, max_limit: int):
        self.dispatcher = dispatcher
        documented = [r for r in routes if r.documented]
        self.table_routes = [r for r in documented if r.per_table and r.method != "WS"]
        self.other_routes = [r for r in documented if not r.per_table]
        self.streams = [r for r in documented if r.method == "WS"]
        self.info = {"title": title, "version": version, "description": "Generated from the database's tables, for this caller."
                     " WebSocket streams (/api/{table}/ws) are described under x-websockets."}
        # A table route's own parameters are components (named once, referred to from every table's paths).
        self.parameters = list_options(max_limit)
        self._param_names: dict[int, str] = {}
        for route in self.table_routes + self.streams:
            for param in route.params:
                described = _param(param)
                name = param.name if self.parameters.get(param.name, described) == described else f"{route.name}.{param.name}"
                self.parameters[name] = described
                self._param_names[id(param)] = name
        # Bodies described by their model (the routes that are not a table's), and shared answers.
        self.schemas = SCHEMAS | {r.body.__name__: r.body.model_json_schema() for r in documented if r.body and not r.request}
        self.responses = error_responses()
        for route in documented:
            if route.answer is not None and not route.answer.per_table:
                self.responses[_answer_name(route, None)] = _answer(route, None)
        self.protocol = {"summary": "; ".join(r.summary for r in self.streams),
                         "parameters": [_param(p) for r in self.streams for p in r.params],
                         "answer": ref("StreamAnswer"),
                         "close_codes": {"1008": "credentials, scope, rate, table or mode refused",
                                         "1009": "a message over the size limit"}}
        self._parts: dict[tuple[int, tuple[bool, ...]], Part] = {}
        self._templates: dict[tuple[tuple[bool, ...], bool], Part] = {}
        self.reserved = dispatcher.reserved_names()

    def document(self, tables: list[Table], who: Principal) -> bytes:
        parts: list[Part] = []
        seen = set()
        for table in tables:
            allowed = tuple(who.may(action, table.name) for action in ACTIONS)
            if any(allowed):
                seen.add(id(table))
                parts.append(self._part(table, allowed))
        if len(self._parts) > 2 * max(len(tables), 100):  # tables altered or dropped since: forget them
            self._parts = {k: v for k, v in self._parts.items() if k[0] in seen}
        importable = [t.name for t in tables if who.may("import", t.name)]

        def joined(static: dict, pieces: list[bytes]) -> bytes:
            return b"{" + b",".join(p for p in (_inner(orjson.dumps(static)), *pieces) if p) + b"}"

        return b"".join([
            b'{"openapi":"3.1.0","info":', orjson.dumps(self.info),
            b',"paths":', joined(self._other_paths(importable), [p.paths for p in parts]),
            b',"x-websockets":', joined({"protocol": self.protocol}, [p.stream for p in parts if p.stream]),
            b',"components":{"schemas":', joined(self.schemas, [p.schemas for p in parts]),
            b',"responses":', joined(self.responses, [p.responses for p in parts]),
            b',"parameters":', joined(self.parameters, [p.parameters for p in parts]),
            b',"securitySchemes":{"bearer":{"type":"http","scheme":"bearer"}}}}',
        ])

    def _part(self, table: Table, allowed: tuple[bool, ...]) -> Part:
        """A table's paths and components, serialized, for a caller who may do `allowed` with it.
        Its paths are the same for every table but for the name: made once per (what the caller may
        do, has a key) with a stand-in name, then the table's own name is put in (a name that needs
        escaping in a JSON pointer, or that the gateway's routes take, is made the long way)."""
        key = (id(table), allowed)
        kept = self._parts.get(key)
        if kept is not None and kept.table is table:
            return kept
        name = table.name
        if name.isprintable() and not set(name) & {"~", "/", '"', "\\"} and name not in self.reserved:
            shape = (allowed, bool(table.primary_key))
            template = self._templates.get(shape)
            if template is None:
                stand_in = Table(STAND_IN, (Column("c", "int", "int(11)", False, False),),
                                 primary_key=(Column("c", "int", "int(11)", False, False),) if table.primary_key else ())
                template = self._templates[shape] = self._built(stand_in, allowed)
            text = name.encode()
            part = Part(table, *(piece.replace(STAND_IN_BYTES, text) for piece in (
                template.paths, b"", template.responses, b"", template.stream)))
            part.schemas, part.parameters = self._components(table, allowed)
        else:
            part = self._built(table, allowed)
        self._parts[key] = part
        return part

    def _components(self, table: Table, allowed: tuple[bool, ...]) -> tuple[bytes, bytes]:
        """A table's own schemas (from its columns) and its filter parameter, serialized."""
        schemas = table_schemas(table)
        if allowed[ACTIONS.index("import")]:
            item = ref(f"{table.name}.input")
            schemas[f"{table.name}.message"] = {"oneOf": [item, {"type": "array", "items": item}, {
                "type": "object", "properties": {"id": {"type": ["string", "integer"]}, "rows": {"type": "array", "items": item}},
                "required": ["rows"]}]}
        filters = {"name": "filters", "in": "query", "style": "form", "explode": True,
                   "description": f"a filter per column: value or op.value ({operators()})",
                   "schema": {"type": "object", "properties": {c.name: {"type": "string"} for c in table.columns
                                                               if c.name not in RESERVED_PARAMS}}}
        return _inner(orjson.dumps(schemas)), _inner(orjson.dumps({f"{table.name}.filters": filters}))

    def _built(self, table: Table, allowed: tuple[bool, ...]) -> Part:
        may = dict(zip(ACTIONS, allowed))
        paths: dict[str, dict] = {}
        responses: dict[str, dict] = {}
        for route in self.table_routes:
            if not may.get(route.access, False) or ("{key}" in route.segments and not table.primary_key):
                continue
            path = self.dispatcher.public_path(route, table.name)
            paths.setdefault(path, {})[route.method.lower()] = self._operation(route, table)
            if route.answer is not None and route.answer.per_table:
                responses[_answer_name(route, table)] = _answer(route, table)
        stream = {}
        if may["import"]:
            stream = {self.dispatcher.public_path(route, table.name): {"message": ref(f"{table.name}.message")}
                      for route in self.streams}
        schemas, parameters = self._components(table, allowed)
        return Part(table, _inner(orjson.dumps(paths)), schemas, _inner(orjson.dumps(responses)), parameters,
                    _inner(orjson.dumps(stream)))

    def _operation(self, route: Route, table: Table | None, importable: list[str] | None = None) -> dict:
        name = table.name if table is not None else ""
        operation: dict[str, Any] = {
            "operationId": f"{route.name}_{name}" if table is not None else route.name,
            "tags": [name or route.tag], "summary": route.summary,
        }
        if table is not None:
            parameters = [ref(self._param_names[id(p)], "parameters") for p in route.params]
        else:
            parameters = [_param(p, importable) for p in route.params]
        for segment in route.segments:
            if segment == "{key}":
                parameters.append(ref("key", "parameters"))
            elif segment.startswith("{") and segment != "{table}":
                parameters.append({"name": segment[1:-1], "in": "path", "required": True, "schema": {"type": "string"}})
        parameters += [ref(option, "parameters") for option in route.options]
        if route.filters and table is not None:
            parameters.append(ref(f"{table.name}.filters", "parameters"))
        if parameters:
            operation["parameters"] = parameters
        body = route.request(table) if route.request else ({"$ref": f"#/components/schemas/{route.body.__name__}"} if route.body else None)
        if body is not None:
            media = "multipart/form-data" if route.request is upload else "application/json"
            operation["requestBody"] = {"required": True, "content": {media: {"schema": body}}}
        if route.media != ("application/json",):
            ok: dict[str, Any] = {"description": "OK", "content": {media: {"schema": {"type": "string"}} for media in route.media}}
        elif route.answer is not None:
            ok = ref(_answer_name(route, table), "responses")
        else:
            ok = {"description": "OK"}
        operation["responses"] = {str(route.status): ok, **{str(s): ref(str(s), "responses") for s in sorted(route.errors)},
                                  "default": ref("Error", "responses")}
        return operation

    def _other_paths(self, importable: list[str]) -> dict[str, dict]:
        """The routes that are not a table's: imports, jobs, the catalog, health, metrics."""
        paths: dict[str, dict] = {}
        for route in self.other_routes:
            if route.checks == "import" and not importable:
                continue
            paths.setdefault(route.path, {})[route.method.lower()] = self._operation(route, None, importable)
        return paths


def _param(param: Param, importable: list[str] | None = None) -> dict:
    schema = param.schema
    if param.tables is not None and importable is not None:
        schema = schema | {"enum": importable}
    described: dict[str, Any] = {"name": param.name, "in": param.where, "schema": schema}
    if param.description:
        described["description"] = param.description
    return described


def _answer_name(route: Route, table: Table | None) -> str:
    assert route.answer is not None
    return route.answer.name(table) + (".page" if route.listing else "")


def _answer(route: Route, table: Table | None) -> dict:
    """The answer's envelope, as a response component."""
    assert route.answer is not None
    return {"description": "OK", "content": {"application/json": {"schema": envelope(route.answer(table), listing=route.listing)}}}


def _inner(serialized: bytes) -> bytes:
    """`{...}` without its braces, to be joined with others into one object."""
    return serialized[1:-1]
