"""WebSocket /api/{table}/ws: rows streamed into a table, each message answered once it is committed.

    -> {"id": "m1", "rows": [{...}, {...}]}      (or a bare row object, or an array of rows)
    <- {"id": "m1", "status": "applied", "rows_written": 2, "errors": []}

Statuses: applied; duplicate (a message with this id was applied before: nothing written again,
`rows_written` is what it wrote then); rejected (nothing written; `errors` name the row `index`,
`column` and `reason`); failed (the database could not take the group: `code`, nothing written or,
with commit_outcome_unknown, perhaps written; a message with an id is safe to resend). Answers come
in the order the messages were sent. Credentials: the HTTP headers (Authorization, X-API-Key), or a
first message {"token": "..."} from a browser; the `import` scope on the table. Close codes: 1008
(credentials, scope, rate, an unknown table or mode), 1009 (a message over the size limit).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import orjson
from starlette.websockets import WebSocket, WebSocketDisconnect

from app.core import jsontext
from app.core.auth import Principal
from app.core.errors import GatewayError
from app.http.access import credential, take
from app.streams.committer import Failed, GroupCommitter
from app.streams.messages import Message, Outcome, message_rows, parse, refused
from app.streams.positions import ID_CHARS

POLICY, TOO_BIG = 1008, 1009


async def stream(websocket: WebSocket, path: dict[str, str]) -> None:
    state, table = websocket.app.state, path["table"]
    settings = state.settings
    mode = websocket.query_params.get("mode", "insert")
    await websocket.accept()
    try:
        who = await _authenticate(websocket, settings.ws_auth_timeout_s)
        who.require("import", table)
        take(websocket, who, "import")
        await state.catalog.writable(table)
        if mode not in ("insert", "upsert"):
            raise GatewayError(f"mode must be insert or upsert, not {mode[:40]!r}")
    except (GatewayError, WebSocketDisconnect, TimeoutError) as exc:
        with contextlib.suppress(Exception):
            reason = f"{exc.code}: {exc.message}" if isinstance(exc, GatewayError) else "no credentials in time"
            await websocket.close(POLICY, reason[:120])
        return
    committer = state.streams.committer(table, mode)
    await _serve(websocket, committer, settings.ws_max_message_bytes, settings.ws_max_in_flight)


async def _authenticate(websocket: WebSocket, timeout_s: float) -> Principal:
    return await websocket.app.state.auth.authenticate(await presented(websocket, timeout_s))


async def presented(websocket: WebSocket, timeout_s: float) -> str | None:
    """The credential from the handshake's headers; else (when credentials are needed) from a first
    message {"token": "..."}, which a browser's WebSocket can send where it cannot set a header."""
    given = credential(websocket.headers)
    if given or websocket.app.state.auth.mode == "none":
        return given
    async with asyncio.timeout(timeout_s):
        first = await websocket.receive_text()
    try:
        token = orjson.loads(first).get("token")
    except (orjson.JSONDecodeError, AttributeError):
        token = None
    return token if isinstance(token, str) else None


async def _serve(websocket: WebSocket, committer: GroupCommitter, max_bytes: int, max_in_flight: int) -> None:
    """Read, submit, answer in order. At most `max_in_flight` messages are unanswered: past that the
    reader waits (TCP pushes back on the client), nothing piles up in memory."""
    slots = asyncio.Semaphore(max_in_flight)
    answers: asyncio.Queue[tuple[Any, asyncio.Future[Outcome]] | None] = asyncio.Queue()
    sender = asyncio.create_task(_answer(websocket, answers, slots))
    try:
        number = 0
        while True:
            await slots.acquire()
            received = await websocket.receive()
            if received["type"] == "websocket.disconnect":
                break
            data = received.get("text")
            if data is None:
                data = received.get("bytes") or b""
            if len(data) > max_bytes:  # str length <= its UTF-8 length: a cheap first look
                await websocket.close(TOO_BIG, f"a message is limited to {max_bytes} bytes")
                break
            number += 1
            ident, message, rows = _message(data if isinstance(data, bytes) else data.encode(), number)
            if isinstance(message, Outcome):
                future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
                future.set_result(message)
            else:
                future = committer.submit(message, rows)
            answers.put_nowait((ident, future))
    except WebSocketDisconnect:
        pass
    finally:
        answers.put_nowait(None)
        with contextlib.suppress(Exception):
            await sender  # messages in flight still commit: their answers go while the socket is open


def _message(data: bytes, number: int) -> tuple[Any, Message | Outcome, int]:
    """(the id to answer with, the message or why it is refused, its row count)."""
    try:
        value = parse(data)
        rows, ident = message_rows(value)
    except ValueError as exc:
        return None, refused(str(exc)), 0
    if ident is not None and len(ident) > ID_CHARS:
        return ident, refused(f"the id is longer than {ID_CHARS} characters"), 0
    position = ident if ident is not None else f"#{number}"
    return ident, Message(value, position, key=ident, parsed=True), len(rows)


async def _answer(websocket: WebSocket, answers: asyncio.Queue, slots: asyncio.Semaphore) -> None:
    open_ = True
    while (item := await answers.get()) is not None:
        ident, future = item
        outcome = await future
        slots.release()
        if not open_:
            continue
        answer: dict[str, Any] = {
            "id": ident, "status": outcome.status, "rows_written": outcome.rows_written, "errors": outcome.errors,
        }
        if isinstance(outcome, Failed):
            answer["code"] = outcome.code
        try:
            await websocket.send_text(jsontext.dumps(answer).decode())
        except Exception:  # the client went away: the rest still commit, unanswered
            open_ = False
