"""The OpenAPI document, made from the route table (app/api/routes.py) and the catalog, for a caller.

Every route is described from its declaration: its parameters, its body, its answer and its errors
(their meanings come from the errors' registry, app/core/errors.py). A route on a table becomes one
path per table the caller may use it on, with schemas built from the table's columns (types,
nullability, lengths, enums: `users.row`, `users.input`, `users.patch`), so clients can be generated
from it. What is the same everywhere (errors, envelopes, the list options) is a component, named
once (the schemas themselves are in app/http/schemas.py). A table's part of the document is
serialized once per (table, what the caller may do with it) and kept while the catalog keeps that
table: a document of 3,000 tables is mostly a join of bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from app.core.auth import Principal
from app.db.catalog import Column, Table
from app.db.relations import Relation, names_alone
from app.http.negotiation import MEDIA_TYPES
from app.http.route import BARE_ACCESS, Param, Route
from app.http.schemas import SCHEMAS, component, envelope, error_responses, list_options, ref, table_schemas
from app.query.filters import RESERVED_PARAMS
from app.query.operators import summary as operators

if TYPE_CHECKING:
    from app.http.dispatch import Dispatcher

ACTIONS = ("read", "write", "import", "export", "admin")
STAND_IN = "gateway_stand_in_7f3a9c"  # a name no table's part holds anywhere else (and a component's)
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
        self.info = {
            "title": title,
            "version": version,
            "description": "Generated from the database's tables, for this caller."
            " WebSocket streams (/api/{table}/ws) are described under x-websockets.",
        }
        # A table route's own parameters are components (named once, referred to from every table's paths).
        self.parameters = list_options(max_limit)
        self._param_names: dict[int, str] = {}
        for route in self.table_routes + self.streams:
            for param in route.params:
                described = _param(param)
                name = (
                    param.name
                    if self.parameters.get(param.name, described) == described
                    else f"{route.name}.{param.name}"
                )
                self.parameters[name] = described
                self._param_names[id(param)] = name
        # Bodies described by their model (the routes that are not a table's), and shared answers.
        self.schemas = SCHEMAS | {
            r.body.__name__: r.body.model_json_schema() for r in documented if r.body and not r.request
        }
        self.responses = error_responses()
        for route in documented:
            if route.answer is not None and not route.answer.per_table:
                self.responses[_answer_name(route, None)] = _answer(route, None)
        self.protocol = {
            "summary": "; ".join(r.summary for r in self.streams),
            "parameters": [_param(p) for r in self.streams for p in r.params],
            "answer": ref("StreamAnswer"),
            "close_codes": {
                "1008": "credentials, scope, rate, table or mode refused",
                "1009": "a message over the size limit",
            },
        }
        self._parts: dict[tuple[int, tuple[bool, ...]], Part] = {}
        self._templates: dict[tuple[tuple[bool, ...], bool], Part] = {}
        self.reserved = dispatcher.reserved_names()

    def document(
        self, tables: list[Table], who: Principal, relations: Callable[[Table], Sequence[Relation]] | None = None,
        routines: Sequence[str] = (),
    ) -> bytes:
        """The document for `who`: the tables it may use, and `routines`, the procedures and
        functions it may execute (POST /api/rpc/{name} takes those names)."""
        parts: list[Part] = []
        embeds: list[bytes] = []
        seen = set()
        for table in tables:
            # A view is read-only: its part has no write or import routes.
            allowed = tuple(
                who.may(action, table.name) and not (table.view and action in ("write", "import")) for action in ACTIONS
            )
            if any(allowed):
                seen.add(id(table))
                parts.append(self._part(table, allowed))
                if relations is not None and allowed[ACTIONS.index("read")]:
                    embeds.append(_embeds(table, [r for r in relations(table) if who.may("read", r.target.name)]))
        if len(self._parts) > 2 * max(len(tables), 100):  # tables altered or dropped since: forget them
            self._parts = {k: v for k, v in self._parts.items() if k[0] in seen}
        importable = [t.name for t in tables if who.may("import", t.name) and not t.view]

        def joined(static: dict, pieces: list[bytes]) -> bytes:
            return b"{" + b",".join(p for p in (_inner(orjson.dumps(static)), *pieces) if p) + b"}"

        return b"".join(
            [
                b'{"openapi":"3.1.0","info":',
                orjson.dumps(self.info),
                b',"paths":',
                joined(self._other_paths(importable, list(routines), who), [p.paths for p in parts]),
                b',"x-websockets":',
                joined({"protocol": self.protocol}, [p.stream for p in parts if p.stream]),
                b',"components":{"schemas":',
                joined(self.schemas, [p.schemas for p in parts] + embeds),
                b',"responses":',
                joined(self.responses, [p.responses for p in parts]),
                b',"parameters":',
                joined(self.parameters, [p.parameters for p in parts]),
                b',"securitySchemes":{"bearer":{"type":"http","scheme":"bearer"}}}}',
            ]
        )

    def _part(self, table: Table, allowed: tuple[bool, ...]) -> Part:
        """A table's paths and components, serialized, for a caller who may do `allowed` with it.
        Its paths are the same for every table but for the name: made once per (what the caller may
        do, has a key) with a stand-in name, then the table's own name is put in (a name that is not
        a component name as it is, or that the gateway's routes take, is made the long way)."""
        key = (id(table), allowed)
        kept = self._parts.get(key)
        if kept is not None and kept.table is table:
            return kept
        name = table.name
        if component(name) == name and name not in self.reserved:
            shape = (allowed, bool(table.primary_key))
            template = self._templates.get(shape)
            if template is None:
                stand_in = Table(
                    STAND_IN,
                    (Column("c", "int", "int(11)", False, False),),
                    primary_key=(Column("c", "int", "int(11)", False, False),) if table.primary_key else (),
                )
                template = self._templates[shape] = self._built(stand_in, allowed)
            text = name.encode()
            part = Part(
                table,
                *(
                    piece.replace(STAND_IN_BYTES, text)
                    for piece in (template.paths, b"", template.responses, b"", template.stream)
                ),
            )
            part.schemas, part.parameters = self._components(table, allowed)
        else:
            part = self._built(table, allowed)
        self._parts[key] = part
        return part

    def _components(self, table: Table, allowed: tuple[bool, ...]) -> tuple[bytes, bytes]:
        """A table's own schemas (from its columns) and its filter parameter, serialized."""
        schemas = table_schemas(table)
        if allowed[ACTIONS.index("import")]:
            item = ref(f"{component(table.name)}.input")
            schemas[f"{component(table.name)}.message"] = {
                "oneOf": [
                    item,
                    {"type": "array", "items": item},
                    {
                        "type": "object",
                        "properties": {"id": {"type": ["string", "integer"]}, "rows": {"type": "array", "items": item}},
                        "required": ["rows"],
                    },
                ]
            }
        properties: dict[str, Any] = {
            c.name: {"type": "string"} for c in table.columns if c.name not in RESERVED_PARAMS
        }
        if table.fulltext and "q" not in properties:  # ?q= searches its FULLTEXT index (a column q is filtered)
            properties = {
                "q": {"type": "string", "description": "full-text search over the table's FULLTEXT index"},
                "q.index": {"type": "string", "enum": [name for name, _ in table.fulltext],
                            "description": "the FULLTEXT index ?q= searches, where there are several"},
            } | properties
        filters = {
            "name": "filters",
            "in": "query",
            "style": "form",
            "explode": True,
            "description": f"a filter per column: value or op.value ({operators()})",
            "schema": {"type": "object", "properties": properties},
        }
        return _inner(orjson.dumps(schemas)), _inner(orjson.dumps({f"{component(table.name)}.filters": filters}))

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
            stream = {
                self.dispatcher.public_path(route, table.name): {"message": ref(f"{component(table.name)}.message")}
                for route in self.streams
            }
        schemas, parameters = self._components(table, allowed)
        return Part(
            table,
            _inner(orjson.dumps(paths)),
            schemas,
            _inner(orjson.dumps(responses)),
            parameters,
            _inner(orjson.dumps(stream)),
        )

    def _operation(
        self, route: Route, table: Table | None, importable: list[str] | None = None, routines: list[str] | None = None
    ) -> dict:
        name = table.name if table is not None else ""
        operation: dict[str, Any] = {
            "operationId": f"{route.name}__{component(name)}" if table is not None else route.name,
            "tags": [name or route.tag],
            "summary": route.summary,
        }
        if table is not None:
            parameters = [ref(self._param_names[id(p)], "parameters") for p in route.params]
        else:
            parameters = [_param(p, importable) for p in route.params]
        for segment in route.segments:
            if segment == "{key}":
                parameters.append(ref("key", "parameters"))
            elif segment.startswith("{") and segment != "{table}":
                schema: dict[str, Any] = {"type": "string"}
                if segment == "{name}" and routines:
                    schema = schema | {"enum": routines}
                parameters.append({"name": segment[1:-1], "in": "path", "required": True, "schema": schema})
        parameters += [ref(option, "parameters") for option in route.options]
        if route.filters and table is not None:
            parameters.append(ref(f"{component(table.name)}.filters", "parameters"))
        if parameters:
            operation["parameters"] = parameters
        body = (
            route.request(table)
            if route.request
            else ({"$ref": f"#/components/schemas/{route.body.__name__}"} if route.body else None)
        )
        if body is not None:
            media = route.request.media if route.request is not None else "application/json"
            operation["requestBody"] = {"required": True, "content": {media: {"schema": body}}}
        if route.media != ("application/json",):
            ok: dict[str, Any] = {
                "description": "OK",
                "content": {media: {"schema": {"type": "string"}} for media in route.media},
            }
        elif route.answer is not None:
            ok = ref(_answer_name(route, table), "responses")
        else:
            ok = {"description": "OK"}
        operation["responses"] = {
            str(route.status): ok,
            **{
                str(status): ref(also.name(table), "responses") if also is not None else {"description": "no body"}
                for status, also in route.also
            },
            **{str(s): ref(str(s), "responses") for s in sorted(route.errors)},
            "default": ref("Error", "responses"),
        }
        return operation

    def _other_paths(self, importable: list[str], routines: list[str], who: Principal) -> dict[str, dict]:
        """The routes that are not a table's: imports, jobs, the catalog, accounts, health, metrics
        (the admin routes only for a caller holding `admin`)."""
        paths: dict[str, dict] = {}
        for route in self.other_routes:
            if (route.checks == "import" and not importable) or (route.tag == "rpc" and not routines):
                continue
            if route.access in BARE_ACCESS and not who.holds(BARE_ACCESS[route.access]):
                continue
            paths.setdefault(route.path, {})[route.method.lower()] = self._operation(route, None, importable, routines)
        return paths


def _param(param: Param, importable: list[str] | None = None) -> dict:
    schema = param.schema
    if param.tables is not None and importable is not None:
        schema = schema | {"enum": importable}
    described: dict[str, Any] = {"name": param.name, "in": param.where, "schema": schema}
    if param.description:
        described["description"] = param.description
    return described


def _embeds(table: Table, relations: Sequence[Relation]) -> bytes:
    """`<table>.embeds`: what `fields=name(...)` may embed in its rows, each with its shape (rows of
    the other table: an object or null, or an array), under a name that selects it alone."""
    if not relations:
        return b""
    properties: dict[str, dict] = {}
    for relation in relations:
        names = names_alone(relation, relations)
        row = ref(f"{component(relation.target.name)}.row")
        shape = {"type": "array", "items": row} if relation.many else {"anyOf": [row, {"type": "null"}]}
        on = ", ".join(f"{s.name} = {relation.target.name}.{t.name}" for s, t in relation.pairs)
        properties[names[0]] = shape | {
            "description": f"rows of {relation.target.name} where {on} (foreign key {relation.key.name})"
            + (f"; also named {', '.join(names[1:])}" if len(names) > 1 else ""),
        }
    schema = {"type": "object", "description": "embedded with fields=name(col,...)", "properties": properties}
    return _inner(orjson.dumps({f"{component(table.name)}.embeds": schema}))


def _answer_name(route: Route, table: Table | None) -> str:
    assert route.answer is not None
    return route.answer.name(table) + (".page" if route.listing else "") + (".negotiated" if route.negotiated else "")


def _answer(route: Route, table: Table | None) -> dict:
    """The answer's envelope, as a response component."""
    assert route.answer is not None
    answer = route.answer(table)
    content = {"application/json": {"schema": answer if route.raw else envelope(answer, listing=route.listing)}}
    if route.negotiated:  # the same rows, by Accept (app/http/negotiation.py); a list's meta in headers
        content |= {media.split(";")[0]: {"schema": {"type": "string"}} for media in MEDIA_TYPES.values()}
    return {"description": "OK", "content": content}


def _inner(serialized: bytes) -> bytes:
    """`{...}` without its braces, to be joined with others into one object."""
    return serialized[1:-1]
