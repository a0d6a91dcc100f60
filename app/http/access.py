"""Shared route dependencies: the services live on app.state, created once by create_app."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Annotated

from fastapi import Depends, Request

from app.core.auth import Principal

from app.imports.engine import ImportEngine
from app.services.crud import CrudService
from app.services.exports import ExportService


async def crud(request: Request) -> CrudService:
    # async: FastAPI runs a plain `def` dependency in a worker thread, on every request.
    return request.app.state.crud


async def imports(request: Request) -> ImportEngine:
    return request.app.state.imports


async def exports(request: Request) -> ExportService:
    return request.app.state.exports


def credential(headers: Mapping[str, str]) -> str | None:
    """What the caller presents: `Authorization: Bearer ...`, else `X-API-Key`."""
    header = headers.get("authorization", "")
    return header[7:].strip() if header[:7].lower() == "bearer " else headers.get("x-api-key")


async def principal(request: Request) -> Principal:
    """The caller (401 when credentials are required and absent)."""
    return request.app.state.auth.authenticate(credential(request.headers))


def allow(request: Request, who: Principal, action: str, table: str) -> None:
    """The caller holds `action` on `table` (403) and is within its rate for it (429)."""
    who.require(action, table)
    client = who.name if who.name != "anonymous" else (request.client.host if request.client else "?")
    request.app.state.limiter.take(client, action)


def may(action: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency: the caller may `action` the route's `{table}` (403), within its rate (429)."""

    async def check(table: str, request: Request) -> Principal:
        # One dependency, not two nested ones: FastAPI's resolution is a real share of a fast request.
        who = await principal(request)
        allow(request, who, action, table)
        return who

    return check


Caller = Annotated[Principal, Depends(principal)]
CanRead = Annotated[Principal, Depends(may("read"))]
CanWrite = Annotated[Principal, Depends(may("write"))]
CanExport = Annotated[Principal, Depends(may("export"))]
