"""The `Idempotency-Key` header on write routes (see services/idempotency.py)."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any

from fastapi import Header, Request
from starlette.responses import Response

from app.core.errors import InvalidBody
from app.services.crud_service import Hook
from app.core.errors import CommitOutcomeUnknown, Conflict
from app.services.idempotency import check, key_digest, request_hash

IdempotencyKey = Annotated[
    str | None,
    Header(description="Send the same key to retry safely: the write applies once, later sends replay its response"),
]


async def write_once(
    request: Request,
    key: str | None,
    call: Callable[[Hook | None], Awaitable[Any]],
    respond: Callable[[Any], Response],
) -> Response:
    """Run a write route's service `call` and `respond`; with a key, at most once per key."""
    if key is None:
        return respond(await call(None))
    check_key(key)
    fingerprint = request_hash(request.method, request.url.path, request.url.query, await request.body())

    def render(result: Any) -> tuple[int, bytes]:
        response = respond(result)
        return response.status_code, bytes(response.body)

    return as_response(await request.app.state.idempotency.once(key, fingerprint, call, render))


def check_key(key: str) -> None:
    if not 1 <= len(key) <= 255:
        raise InvalidBody("Idempotency-Key must be 1 to 255 characters")


def as_response(stored: Any) -> Response:
    headers = {"Idempotent-Replayed": "true"} if stored.replayed else None
    return Response(stored.body, status_code=stored.status, media_type="application/json", headers=headers)


async def import_once(
    request: Request,
    key: str,
    filename: str | None,
    chunks: AsyncIterator[bytes],
    respond: Callable[[dict], Response],
    run: Callable[[AsyncIterator[bytes], Callable[[Any, dict], Awaitable[None]]], Awaitable[dict]],
) -> Response:
    """A keyed atomic import. The upload is hashed as it streams; the key's record is stored inside
    the import's transaction with the final report. A replay must send the same file: it is read
    and hashed, then the first report is returned."""
    check_key(key)
    store = request.app.state.idempotency
    await store.ensure_table()
    hasher = hashlib.sha256("\n".join([request.method, request.url.path, request.url.query, filename or ""]).encode())

    async def hashed() -> AsyncIterator[bytes]:
        async for chunk in chunks:
            hasher.update(chunk)
            yield chunk

    async def replay(found: tuple[bytes, Any]) -> Response:
        async for _ in hashed():
            pass
        return as_response(check(found, hasher.digest()))

    if (found := await store.lookup(key_digest(key))) is not None:
        return await replay(found)
    made: list[Response] = []

    async def after(session: Any, report: dict) -> None:
        response = respond(report)
        await store.remember(session, key, hasher.digest(), response.status_code, bytes(response.body))
        made.append(response)

    try:
        await run(hashed(), after)
    except (Conflict, CommitOutcomeUnknown):
        # Another request with this key committed first, or our COMMIT went unanswered: the key's
        # record says what happened. (The upload is read; a replay compares what was hashed.)
        if (found := await store.lookup(key_digest(key))) is not None:
            return as_response(check(found, hasher.digest()))
        raise
    return made[-1]
