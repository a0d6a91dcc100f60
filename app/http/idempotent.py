"""The `Idempotency-Key` header on write routes (see services/idempotency.py)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
from starlette.responses import Response

from app.core.errors import ImportRolledBack, InvalidBody
from app.http.envelope import error
from app.http.route import Call, Param
from app.services.audit import count_of
from app.services.crud import Hook
from app.services.idempotency import request_hash

IDEMPOTENCY_KEY = Param(
    "Idempotency-Key", {"type": "string", "minLength": 1, "maxLength": 255},
    "send the same key to retry safely: the write applies once, later sends replay its answer", where="header",
    parsed=False,
)


async def write_once(
    call: Call, write: Callable[[Hook | None], Awaitable[Any]], respond: Callable[[Any], Response],
    headers: dict[str, str] | None = None,
) -> Response:
    """Run a write route's service call and `respond`; with an Idempotency-Key, at most once per key.
    `headers` (Preference-Applied) go on the answer and on every replay of it. A write that ran and
    committed is recorded in the audit trail (a replay is not: it changed nothing)."""
    request = call.request
    key = request.headers.get("idempotency-key")

    async def run(after: Hook | None) -> Any:
        result = await write(after)
        audited(call, call.table, count_of(result))
        return result

    if key is None:
        response = respond(await run(None))
        response.headers.update(headers or {})
        return response
    check_key(key)
    # What the client prefers changes what the write does (an upsert) and answers: it is part of the request.
    query = request.url.query
    if prefer := ", ".join(request.headers.getlist("prefer")):
        query += "\x00prefer:" + prefer
    fingerprint = request_hash(request.method, request.url.path, query, await request.body())

    def render(result: Any) -> tuple[int, bytes]:
        response = respond(result)
        return response.status_code, _stored_body(response)

    replayed = as_response(await call.state.idempotency.once(await _scoped(call, key), fingerprint, run, render))
    replayed.headers.update(headers or {})
    return replayed


# A stored answer is its body; one with a Location (a row created, no body: Prefer: return=minimal)
# starts with a newline and that header as JSON, a line no envelope starts with.
def _stored_body(response: Response) -> bytes:
    body = bytes(response.body)
    location = response.headers.get("location")
    return body if location is None else b"\n" + orjson.dumps({"location": location}) + b"\n" + body


def as_response(stored: Any) -> Response:
    body, headers = stored.body, {"Idempotent-Replayed": "true"} if stored.replayed else {}
    if body.startswith(b"\n"):
        kept, _, body = body[1:].partition(b"\n")
        headers["Location"] = orjson.loads(kept)["location"]
    media = "application/json" if body else None
    return Response(body, status_code=stored.status, media_type=media, headers=headers)


def audited(call: Call, table: str, count: int) -> None:
    """A committed change, for the audit trail (when it is on), named by the route's operation."""
    trail = call.state.audit
    if trail is not None:
        route = call.request.scope.get("route")
        trail.record(call.who.name, table, getattr(route, "name", "write"), count)


def check_key(key: str) -> None:
    if not 1 <= len(key) <= 255:
        raise InvalidBody("Idempotency-Key must be 1 to 255 characters")




async def upload_once(
    call: Call,
    key: str,
    filename: str | None,
    chunks: AsyncIterator[bytes],
    respond: Callable[[dict], Response],
    run: Callable[[AsyncIterator[bytes], Callable[[Any, dict], Awaitable[None]]], Awaitable[dict]],
) -> Response:
    """A keyed atomic import (see IdempotencyStore.once_upload)."""
    check_key(key)

    def render(report: dict) -> tuple[int, bytes]:
        response = respond(report)
        return response.status_code, bytes(response.body)

    def refusal(exc: ImportRolledBack) -> tuple[int, bytes]:
        response = error(exc)
        return response.status_code, bytes(response.body)

    request = call.request
    parts = [request.method, request.url.path, request.url.query, filename or ""]
    return as_response(
        await call.state.idempotency.once_upload(await _scoped(call, key), parts, chunks, run, render, refusal)
    )


async def _scoped(call: Call, key: str) -> str:
    """A key is the caller's own: another caller sending it (with the same request) does not get
    this caller's answer, which may hold rows a row policy hides from it. The caller is its name
    and the values of the claims row policies read (two tenants may share a token subject). With
    auth off every caller is the same one."""
    who = call.who
    if who.name == "anonymous":
        return key
    claims = sorted({p.claim for p in (await call.state.policies.all()).values()})
    held = "".join(f"\n{claim}={json.dumps(who.claims.get(claim), default=str)}" for claim in claims)
    return f"{who.name}{held}\n{key}"
