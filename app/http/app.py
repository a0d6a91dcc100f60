"""The ASGI application: the lifespan (start-up and shutdown), then every request through the
middleware to the dispatcher. `app.state` holds the services every handler reaches."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from starlette.datastructures import State
from starlette.types import ASGIApp, Receive, Scope, Send

Lifespan = Callable[["Gateway"], AbstractAsyncContextManager[None]]


class Gateway:
    def __init__(self, lifespan: Lifespan, *, title: str, version: str):
        self.state = State()
        self.title, self.version = title, version
        self._lifespan = lifespan
        self._stack: ASGIApp | None = None

    def serve(self, app: ASGIApp, middleware: Sequence[tuple[type, dict[str, Any]]] = ()) -> None:
        """Serve `app` (the dispatcher) behind `middleware`, outermost first."""
        for cls, options in reversed(middleware):
            app = cls(app, **options)
        self._stack = app

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """The lifespan, for a caller that drives the app itself (the tests, an ASGI transport)."""
        async with self._lifespan(self):
            yield

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["app"] = self
        if scope["type"] == "lifespan":
            await self._lifespan_protocol(receive, send)
            return
        assert self._stack is not None, "serve() was not called"
        await self._stack(scope, receive, send)

    async def _lifespan_protocol(self, receive: Receive, send: Send) -> None:
        """ASGI's lifespan messages: start-up, then (when the server stops) shutdown."""
        await receive()  # lifespan.startup
        context = self._lifespan(self)
        try:
            await context.__aenter__()
        except BaseException as exc:
            await send({"type": "lifespan.startup.failed", "message": repr(exc)})
            raise
        await send({"type": "lifespan.startup.complete"})
        await receive()  # lifespan.shutdown
        try:
            await context.__aexit__(None, None, None)
        except BaseException as exc:
            await send({"type": "lifespan.shutdown.failed", "message": repr(exc)})
            raise
        await send({"type": "lifespan.shutdown.complete"})
