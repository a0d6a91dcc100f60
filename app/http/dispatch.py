"""The dispatcher: a request's path to its route (a tree of path segments built from the route
table), then the route's checks in order (caller and scope, rate, parameters, body) and its handler;
whatever is raised becomes the error envelope.

A literal segment is preferred to a parameter at the same place, so /api/batch/... is never a table
called "batch": the names the gateway's own routes take are reserved by the table itself, not by a
list kept beside it. Every route on a table is also served under /api/tables/{table}/..., where any
name is a table's (/api/tables/batch/query, /api/tables/jobs/export); a request for a reserved name
in the short form is told so (404 naming the other form).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_to_bytes

from pydantic import BaseModel, ValidationError
from starlette.requests import ClientDisconnect, Request
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from app.core import context, jsontext
from app.core.auth import NOBODY
from app.core.errors import GatewayError, InvalidBody, MethodNotAllowed, RouteNotFound
from app.http.access import allow, principal, take
from app.http.envelope import error
from app.http.failures import body_problem, failure
from app.http.route import BARE_ACCESS, Call, Param, Route

TABLES_PREFIX = ("api", "tables")  # /api/tables/{table}/...: a table's routes, whatever its name
ALIASED = (("api", "{table}"), ("api", "batch", "{table}"))  # the shapes whose {table} meets reserved names
_NO_QUERY: dict[str, Any] = {}


def segments(scope: Scope) -> list[str]:
    """The path's segments, split where the client put slashes and then decoded: a key may hold a
    slash as `%2F` (the decoded `path` has lost the difference)."""
    raw = scope.get("raw_path")
    if not raw:
        return scope["path"][1:].split("/")
    return [unquote_to_bytes(s).decode("utf-8", "replace") for s in raw.split(b"?", 1)[0][1:].split(b"/")]


@dataclass(frozen=True)
class Mount:
    """What the access log and metrics name a mounted app's requests by (a Route: its path)."""

    path: str


@dataclass
class Node:
    literal: dict[str, Node] = field(default_factory=dict)
    parameter: tuple[str, Node] | None = None
    routes: dict[str, Route] = field(default_factory=dict)


class Dispatcher:
    """The ASGI app behind the middleware: serves `routes`, and `mounts` (path prefix -> ASGI app)."""

    def __init__(self, routes: Iterable[Route], mounts: dict[str, ASGIApp] | None = None):
        self.routes = tuple(routes)
        self.mounts = mounts or {}
        self.root = Node()
        for route in self.routes:
            self._add(route.segments, route)
            for shape in ALIASED:
                if route.segments[: len(shape)] == shape:
                    self._add((*TABLES_PREFIX, "{table}", *route.segments[len(shape):]), route)

    def _add(self, segments: tuple[str, ...], route: Route) -> None:
        node = self.root
        for segment in segments:
            if segment.startswith("{"):
                name = segment[1:-1]
                if node.parameter is None:
                    node.parameter = (name, Node())
                elif node.parameter[0] != name:
                    raise ValueError(f"{route.path}: {{{name}}} where another route has {{{node.parameter[0]}}}")
                node = node.parameter[1]
            else:
                node = node.literal.setdefault(segment, Node())
        method = route.method
        if method in node.routes and node.routes[method] is not route:
            raise ValueError(f"{method} {route.path} is declared twice")
        node.routes[method] = route

    def reserved_names(self) -> frozenset[str]:
        """The names a table's route cannot take in its short form (the gateway's own segments there)."""
        names: set[str] = set()
        for shape in ALIASED:
            node, _ = self.match("/" + "/".join(shape[:-1]))
            if node is not None:
                names |= set(node.literal)
        return frozenset(names)

    def public_path(self, route: Route, table: str) -> str:
        """The path a table's route is served at: the short one, unless the table's name is one
        the gateway's own routes take there (then /api/tables/{table}/...)."""
        for shape in ALIASED:
            if route.segments[: len(shape)] == shape:
                node, _ = self.match("/" + "/".join(shape[:-1]))
                if node is not None and table in node.literal:
                    return "/" + "/".join((*TABLES_PREFIX, table, *route.segments[len(shape):]))
        return route.path.replace("{table}", table)

    def match(self, path: str | list[str]) -> tuple[Node | None, dict[str, str]]:
        """The node a path (or its segments) ends on (None: no route has that shape) and its parameters."""
        node, found = self.root, {}
        for segment in path[1:].split("/") if isinstance(path, str) else path:
            child = node.literal.get(segment)
            if child is not None:
                node = child
            elif node.parameter is not None and segment:
                found[node.parameter[0]] = segment
                node = node.parameter[1]
            else:
                return None, found
        return node, found

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        for prefix, app in self.mounts.items():
            if path.startswith(prefix + "/"):  # as Starlette's Mount: the app sees the path below the prefix
                scope["route"] = Mount(prefix)
                await app({**scope, "root_path": scope.get("root_path", "") + prefix}, receive, send)
                return
        node, found = self.match(segments(scope))
        if scope["type"] == "websocket":
            route = node.routes.get("WS") if node is not None else None
            if route is None:
                await WebSocket(scope, receive, send).close(1008, "no such route")
                return
            scope["route"], scope["path_params"] = route, found
            await route.handler(WebSocket(scope, receive, send), found)
            return
        request = Request(scope, receive)
        method = scope["method"]
        routes = node.routes if node is not None else {}
        route = routes.get(method) or (routes.get("GET") if method == "HEAD" else None)
        if route is None:
            response = error(self._missing(path, method, routes))
        else:
            scope["route"], scope["path_params"] = route, found
            try:
                response = await route.handler(await self._call(route, request, found))
            except ClientDisconnect:
                return
            except Exception as exc:
                response = failure(request, exc)
        await response(scope, receive, send)

    def _missing(self, path: str, method: str, routes: dict[str, Route]) -> GatewayError:
        """404 or 405; when the path's first name is one the gateway's routes take and a table
        called so would be served the long way, the answer says where."""
        allowed = sorted(m for m in routes if m != "WS")
        segments = path.strip("/").split("/")
        hint, use = "", None
        if len(segments) >= 2 and segments[0] == "api" and segments[1] in self.root.literal["api"].literal:
            aliased = "/" + "/".join((*TABLES_PREFIX, *segments[1:]))
            node, _ = self.match(aliased)
            if node is not None and method in node.routes:
                hint = f"'{segments[1]}' is a name the gateway's own routes take: for a table called so, use {aliased}"
                use = aliased
        if allowed:
            message = f"the method is not allowed here: use {', '.join(allowed)}" + (f"; {hint}" if hint else "")
            details: dict[str, Any] = {"allowed": allowed} | ({"use": use} if use else {})
            return MethodNotAllowed(message, details, headers={"Allow": ", ".join(allowed)})
        if hint:
            return RouteNotFound(hint, {"path": path, "use": use})
        return RouteNotFound("no such route", {"path": path})

    async def _call(self, route: Route, request: Request, found: dict[str, str]) -> Call:
        """The route's checks, in order: who calls and may they (401/403/429), its parameters and
        its body (400 invalid_body)."""
        who = await principal(request) if route.access != "open" else NOBODY
        context.current().who = who
        if route.access in BARE_ACCESS:
            who.require_scope(BARE_ACCESS[route.access])
            take(request, who, route.access)
        elif route.access not in ("open", "caller"):
            allow(request, who, route.access, found["table"])
        query = parse_params(route.params, request) if route.params else _NO_QUERY
        if route.body is not None and request.url.query:
            _no_stray_query(route, request)
        body = await parse_body(route.body, request) if route.body is not None else None
        return Call(request, found, query, body, who)


def _no_stray_query(route: Route, request: Request) -> None:
    """A route that takes a JSON body takes its filter and options there: a query string it does
    not declare would be ignored, so it is refused (`POST /query?q=...` does not search)."""
    declared = {p.name for p in route.params if p.where == "query"}
    stray = sorted({name for name in request.query_params if name not in declared})
    if stray:
        raise InvalidBody(
            f"{route.method} {route.path} takes its input in the JSON body, not the query string: {', '.join(stray)}",
            [{"where": f"query.{name}", "problem": "not a parameter of this route"} for name in stray[:20]],
        )


def parse_params(params: tuple[Param, ...], request: Request) -> dict[str, Any]:
    values: dict[str, Any] = {}
    problems = []
    for param in params:
        if not param.parsed:
            continue
        raw = (request.query_params if param.where == "query" else request.headers).get(param.name)
        try:
            values[param.as_key] = param.default if raw is None else convert(param, raw)
        except ValueError as exc:
            problems.append({"where": f"{param.where}.{param.name}", "problem": str(exc)})
    if problems:
        raise InvalidBody(f"{problems[0]['where']}: {problems[0]['problem']}", problems)
    return values


def convert(param: Param, raw: str) -> Any:
    """A parameter's text by its schema: booleans, bounded integers, strings from a list."""
    schema = param.schema
    kind = schema.get("type")
    if kind == "boolean":
        lowered = raw.lower()
        if lowered in ("true", "1", "yes", "on"):
            return True
        if lowered in ("false", "0", "no", "off"):
            return False
        raise ValueError("expected true or false")
    if kind == "integer":
        if not raw.lstrip("-").isdigit() or len(raw) > 20:
            raise ValueError("expected an integer")
        number = int(raw)
        if number < schema.get("minimum", number) or number > schema.get("maximum", number):
            raise ValueError(f"expected an integer from {schema.get('minimum')} to {schema.get('maximum')}")
        return number
    if "enum" in schema and raw not in schema["enum"]:
        raise ValueError(f"expected one of {', '.join(schema['enum'])}")
    if len(raw) > schema.get("maxLength", len(raw)):
        raise ValueError(f"at most {schema['maxLength']} characters")
    return raw


async def parse_body(model: type[BaseModel], request: Request) -> BaseModel:
    """The JSON body, strict and exact (app/core/jsontext.py), validated by the route's model."""
    content_type = request.headers.get("content-type", "application/json").split(";", 1)[0].strip().lower()
    if not (content_type == "application/json" or content_type.endswith("+json")):
        raise InvalidBody(f"the body is JSON: send it as application/json, not {content_type[:60]}")
    raw = await request.body()
    if not raw.strip():
        raise InvalidBody("the request has no body: this route takes a JSON body (its shape is in /openapi.json)")
    try:
        value = jsontext.parse(raw)
    except json.JSONDecodeError as exc:
        raise InvalidBody(f"the body is not valid JSON: {exc}") from None
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        raise body_problem(exc) from None
