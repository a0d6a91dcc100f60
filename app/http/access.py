"""Who calls, and may they: the credential a request presents, the caller it names, and the scope
and rate checks every route runs before its handler (app/http/dispatch.py)."""

from __future__ import annotations

from collections.abc import Mapping

from starlette.requests import HTTPConnection

from app.core.auth import Principal


def credential(headers: Mapping[str, str]) -> str | None:
    """What the caller presents: `Authorization: Bearer ...`, else `X-API-Key`."""
    header = headers.get("authorization", "")
    return header[7:].strip() if header[:7].lower() == "bearer " else headers.get("x-api-key")


async def principal(request: HTTPConnection) -> Principal:
    """The caller (401 when credentials are required and absent)."""
    return await request.app.state.auth.authenticate(credential(request.headers))


def allow(request: HTTPConnection, who: Principal, action: str, table: str) -> None:
    """The caller holds `action` on `table` (403) and is within its rate for it (429)."""
    who.require(action, table)
    take(request, who, action)


def take(request: HTTPConnection, who: Principal, action: str) -> None:
    """One request of `action` from this caller, against its rate (429 past it)."""
    client = who.name if who.name != "anonymous" else (request.client.host if request.client else "?")
    request.app.state.limiter.take(client, action)
