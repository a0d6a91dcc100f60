"""The three hottest CRUD routes, served below FastAPI's routing and dependency resolution.

GET /api/{table}/{key}, GET /api/{table}/query and POST /api/{table} are most of a gateway's
traffic, and FastAPI's own per-request work (matching the path against every route, resolving
dependencies, parsing parameters) was about a third of their cost (profiled in-process). This ASGI
layer recognises exactly those shapes and runs what the FastAPI routes in routes/crud.py run: the
same credential, scope and rate checks (routes/deps.py), the same service calls, envelope, error
rendering and idempotency. It sets `scope["route"]` to the FastAPI route it stands in for, so the
access log and metrics name the same route template.

FastAPI keeps those routes: they are the OpenAPI document, and they serve every request this layer
does not take, including a POST whose body does not parse or validate (replayed to FastAPI as it
came, so its 400 is FastAPI's own, word for word).
"""

from __future__ import annotations

import logging

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core import jsontext
from app.core.errors import GatewayError, InternalError
from app.routes import crud
from app.routes.deps import allow, principal
from app.routes.idempotent import write_once
from app.schemas.envelope import error, success
from app.schemas.requests import CreateBody

log = logging.getLogger("gateway.errors")
# Second path segments that are other routes of the same shape (GET /api/{table}/aggregate).
_OTHER_ROUTES = frozenset({"aggregate"})
# First segments that are not tables (routes/crud.py's TableName convertor).
_NOT_TABLES = frozenset({"batch", "tables", "schemas"})


class FastCrud:
    def __init__(self, app: ASGIApp, api: FastAPI):
        self.app, self.api = app, api
        by_name = {getattr(route, "name", None): route for route in crud.router.routes}
        self.get_route, self.list_route, self.create_route = by_name["get_row"], by_name["list_rows"], by_name["create_rows"]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/api/"):
            parts = scope["path"][5:].split("/")
            method = scope["method"]
            if all(parts) and parts[0] not in _NOT_TABLES:
                if method == "GET" and len(parts) == 2 and parts[1] not in _OTHER_ROUTES:
                    await self._serve(scope, receive, send, parts)
                    return
                if method == "POST" and len(parts) == 1:
                    await self._create(scope, receive, send, parts[0])
                    return
        await self.app(scope, receive, send)

    async def _serve(self, scope: Scope, receive: Receive, send: Send, parts: list[str]) -> None:
        table, second = parts
        listing = second == "query"
        scope["route"] = self.list_route if listing else self.get_route
        scope["path_params"] = {"table": table} if listing else {"table": table, "key": second}
        scope["app"] = self.api
        request = Request(scope, receive)
        service = self.api.state.crud
        try:
            allow(request, await principal(request), "read", table)
            if listing:
                rows, meta = await service.list_from_params(table, request.query_params.multi_items())
                response = success(rows, f"{meta['count']} row(s)", meta=meta)
            else:
                response = success(await service.get(table, second, request.query_params.get("fields")))
        except Exception as exc:
            response = _failure(exc, request)
        await response(scope, receive, send)

    async def _create(self, scope: Scope, receive: Receive, send: Send, table: str) -> None:
        body, more = b"", True
        try:
            while more:
                message = await receive()
                if message["type"] != "http.request":
                    return  # the client went away
                body += message.get("body", b"")
                more = message.get("more_body", False)
        except GatewayError as exc:  # the body limit (RequestMiddleware)
            await error(exc)(scope, receive, send)
            return
        parsed = _create_body(scope, body)
        if parsed is None:  # FastAPI's own answer (a 400), from the same bytes
            await self.app(scope, _replay(body, receive), send)
            return
        scope["route"], scope["path_params"], scope["app"] = self.create_route, {"table": table}, self.api
        request = Request(scope, _replay(body, receive))
        service = self.api.state.crud

        def respond(rows: list[dict]) -> Response:
            if isinstance(parsed.input, list):
                return success(rows, f"{len(rows)} row(s) created", status=201)
            return success(rows[0] if rows else None, "row created", status=201)

        try:
            allow(request, await principal(request), "write", table)
            key = request.headers.get("idempotency-key")
            response = await write_once(request, key, lambda after: service.create(table, parsed.input, after), respond)
        except Exception as exc:
            response = _failure(exc, request)
        await response(scope, receive, send)


def _create_body(scope: Scope, body: bytes) -> CreateBody | None:
    """The body as POST /api/{table} takes it, or None for anything FastAPI should answer itself."""
    content_type = next((v for k, v in scope["headers"] if k == b"content-type"), b"")
    if content_type.split(b";", 1)[0].strip().lower() != b"application/json":
        return None
    try:
        return CreateBody.model_validate(jsontext.parse(body))
    except Exception:  # not JSON, not storable, not the shape: FastAPI's own answer, always
        return None


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that gives `body` once, then listens to the client (for a disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _failure(exc: Exception, request: Request) -> Response:
    """As app/utils/error_handler.py answers: the error envelope, nothing internal shown."""
    if isinstance(exc, GatewayError):
        return error(exc)
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error(InternalError("internal error"))


def install(api: FastAPI) -> None:
    """Serve the hot routes ahead of FastAPI's router (inside the request middleware)."""
    api.add_middleware(FastCrud, api=api)

