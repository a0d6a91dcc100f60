"""The request middleware (plain ASGI, so it costs little on the hot path).

It gives each request its state (request id, retry count), returns the id as `X-Request-ID`, and
enforces the JSON body limit while the body streams in, so an oversized body is a 413 and is never
held whole in memory.
"""

from __future__ import annotations

import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core import context
from app.core.errors import PayloadTooLarge
from app.schemas.envelope import error

_SAFE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


class RequestMiddleware:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int, unlimited_prefixes: tuple[str, ...] = ()):
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.unlimited_prefixes = unlimited_prefixes  # routes that enforce their own limit (uploads)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = _header(scope, b"x-request-id")
        state = context.begin(incoming if incoming and _SAFE_ID.fullmatch(incoming) else None)
        request_id = state.request_id.encode()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id)]
            await send(message)

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
