"""The request middleware (plain ASGI, so it costs little on the hot path).

It gives each request its state (request id, retry count), returns the id as `X-Request-ID`,
enforces the JSON body limit while the body streams in (an oversized body is a 413 and is never
held whole in memory), and records each request: the metrics, and one JSON access log line (route
template and table, never the path's values or the body).
"""

from __future__ import annotations

import logging
import re
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core import context
from app.core.errors import PayloadTooLarge
from app.core.observability import Metrics, access_log
from app.http.envelope import error

_SAFE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# On every response: no MIME sniffing, no framing, no referrer, and API answers are not cached
# (unless the answer says otherwise: a read with an ETag may be kept to be revalidated).
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]
NO_STORE = (b"cache-control", b"no-store")


class RequestMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        metrics: Metrics,
        access_log: bool = True,
        unlimited_prefixes: tuple[str, ...] = (),
    ):
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.metrics, self.access_log = metrics, access_log
        self.unlimited_prefixes = unlimited_prefixes  # routes that enforce their own limit (uploads)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        incoming = _header(scope, b"x-request-id")
        state = context.begin(incoming if incoming and _SAFE_ID.fullmatch(incoming) else None)
        request_id = state.request_id.encode()
        status = 500  # if the app fails before answering

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [*message.get("headers", []), (b"x-request-id", request_id), *SECURITY_HEADERS]
                if not any(name == b"cache-control" for name, _ in headers):
                    headers.append(NO_STORE)
                message["headers"] = headers
            await send(message)

        try:
            await self._limited(scope, receive, send_with_id)
        finally:
            self._record(scope, status, time.perf_counter() - started, state)

    def _record(self, scope: Scope, status: int, seconds: float, state: context.RequestState) -> None:
        matched = scope.get("route")
        route: str = getattr(matched, "path", "unmatched")  # /api/{table}/query: a Route, or a Mount
        self.metrics.observe(scope["method"], route, status, seconds)
        if self.access_log:
            fields = {
                "method": scope["method"],
                "route": route,
                "table": scope.get("path_params", {}).get("table"),
                "status": status,
                "duration_ms": round(seconds * 1000, 2),
                "retry_count": state.retry_count,
                "request_id": state.request_id,
            }
            if access_log.isEnabledFor(logging.INFO):  # handle(makeRecord): info() without its caller lookup
                record = access_log.makeRecord(
                    access_log.name, logging.INFO, "", 0, "request", (), None, extra={"fields": fields}
                )
                access_log.handle(record)

    async def _limited(self, scope: Scope, receive: Receive, send_with_id: Send) -> None:
        if scope["path"].startswith(self.unlimited_prefixes):
            await self.app(scope, receive, send_with_id)
            return
        limit = self.max_body_bytes
        declared = _header(scope, b"content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            await error(PayloadTooLarge(f"request body over {limit} bytes"))(scope, receive, send_with_id)
            return
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise PayloadTooLarge(f"request body over {limit} bytes")
            return message

        await self.app(scope, limited_receive, send_with_id)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None
