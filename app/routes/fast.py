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

from fastapi import FastAPI
from starlette.requests import ClientDisconnect, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core import jsontext
from app.core.errors import GatewayError
from app.routes import crud
from app.http.access import allow, principal
from app.http.idempotent import write_once
from app.http.envelope import error, success
from app.http.bodies import CreateBody
from app.http.failures import failure

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
        request = Request(scope, receive)
        service = self.api.state.crud
        try:
            allow(request, await principal(request), "read", table)
            if listing:
                response = crud.listed(*await service.list_from_params(table, request.query_params.multi_items()))
            else:
                response = success(await service.get(table, second, request.query_params.get("fields")))
        except Exception as exc:
            response = failure(request, exc)
        await response(scope, receive, send)

    async def _create(self, scope: Scope, receive: Receive, send: Send, table: str) -> None:
        request = Request(scope, receive)
        try:
            body = await request.body()
        except ClientDisconnect:
            return
        except GatewayError as exc:  # the body limit (RequestMiddleware)
            await error(exc)(scope, receive, send)
            return
        parsed = _create_body(scope, body)
        if parsed is None:  # FastAPI's own answer (a 400), from the same bytes
            await self.app(scope, _replay(body, receive), send)
            return
        scope["route"], scope["path_params"] = self.create_route, {"table": table}
        service = self.api.state.crud
        try:
            allow(request, await principal(request), "write", table)
            call = lambda after: service.create(table, parsed.input, after)  # noqa: E731
            key = request.headers.get("idempotency-key")
            response = await write_once(request, key, call, lambda rows: crud.created(parsed.input, rows))
        except Exception as exc:
            response = failure(request, exc)
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


def install(api: FastAPI) -> None:
    """Serve the hot routes ahead of FastAPI's router (inside the request middleware)."""
    api.add_middleware(FastCrud, api=api)

