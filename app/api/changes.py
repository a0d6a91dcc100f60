"""A table's committed changes, as they happen: GET /api/{table}/changes (Server-Sent Events) and
/api/{table}/changes/ws (a WebSocket), from the change feed (app/feed).

Every event is one row change: `{"op", "table", "key", "before", "after", "gtid", "committed_at",
"position"}`, in commit order, values as GET shows them. Its `position` is its SSE id; reconnecting
with `Last-Event-ID` (SSE) or `?after=` goes on from the next change, without a gap or a duplicate,
as long as the binlog holds it (410 `position_gone` past that). The query string's filters (as
GET /query takes them, on the table's own columns) narrow the rows followed, and the caller's row
policy applies as on every read. A first `ready` event gives the position the stream starts after.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from sse_starlette import EventSourceResponse
from starlette.responses import Response
from starlette.websockets import WebSocket, WebSocketDisconnect

from app.api.streams import POLICY, presented
from app.core import jsontext
from app.core.auth import Principal
from app.core.errors import GatewayError, InvalidFilter
from app.feed.changes import converters, event, feed_filter, row_of, seen_as
from app.feed.hub import Cut, Subscription
from app.feed.positions import parse
from app.http.access import credential, take
from app.http.route import Call
from app.query.filters import RESERVED_PARAMS, parse_query_params
from app.query.nodes import Node
from app.rows.values import json_default
from app.services.policies import Restriction

SEND_TIMEOUT_S = 30.0  # a subscriber whose socket takes no more for this long is let go
RECHECK_S = 1.0  # the caller's credential, scope and row policy are looked at again this often


async def changes(call: Call) -> Response:
    after = call.request.query_params.get("after") or call.request.headers.get("last-event-id")
    params = [(k, v) for k, v in call.request.query_params.multi_items() if k != "after"]
    viewer = Viewer(call.state, credential(call.request.headers), call.who, call.table)
    table, subscription = await _open(viewer, params, after)
    return EventSourceResponse(_sse(viewer, table, subscription), ping=15, send_timeout=SEND_TIMEOUT_S)


async def changes_ws(websocket: WebSocket, path: dict[str, str]) -> None:
    state = websocket.app.state
    await websocket.accept()
    try:
        given = await presented(websocket, state.settings.ws_auth_timeout_s)
        who = await state.auth.authenticate(given)
        who.require("read", path["table"])
        take(websocket, who, "read")
        params = [(k, v) for k, v in websocket.query_params.multi_items() if k != "after"]
        viewer = Viewer(state, given, who, path["table"])
        table, subscription = await _open(viewer, params, websocket.query_params.get("after"))
    except (GatewayError, WebSocketDisconnect, TimeoutError) as exc:
        with contextlib.suppress(Exception):
            reason = f"{exc.code}: {exc.message}" if isinstance(exc, GatewayError) else "no credentials in time"
            await websocket.close(POLICY, reason[:120])
        return
    closed = asyncio.create_task(_until_closed(websocket))
    sending = asyncio.create_task(_send(websocket, _events(viewer, table, subscription)))
    try:
        await asyncio.wait({closed, sending}, return_when=asyncio.FIRST_COMPLETED)  # the client left, or the feed
    finally:
        subscription.close()
        for task in (closed, sending):
            task.cancel()
        with contextlib.suppress(Exception):
            await websocket.close()


async def _send(websocket: WebSocket, events: AsyncIterator[list[dict]]) -> None:
    with contextlib.suppress(WebSocketDisconnect, TimeoutError, RuntimeError):
        async for batch in events:
            for item in batch:
                await asyncio.wait_for(websocket.send_text(jsontext.dumps(item, json_default).decode()), SEND_TIMEOUT_S)


async def _until_closed(websocket: WebSocket) -> None:
    with contextlib.suppress(Exception):
        while (await websocket.receive())["type"] != "websocket.disconnect":
            pass


@dataclass
class Viewer:
    """Who follows a table, and what it may see: looked at again at most every RECHECK_S while it
    follows, so a key revoked, a token expired or a row policy put since ends or narrows the stream."""

    state: Any
    credential: str | None
    who: Principal
    name: str
    where: Node | None = None  # the subscriber's filter
    owned: Node | None = None  # the caller's row policy on the table
    checked: float = 0.0

    async def recheck(self, table: Any, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.checked < RECHECK_S:
            return
        self.checked = now
        if not force:
            self.who = await self.state.auth.authenticate(self.credential)  # 401 when it no longer holds
            self.who.require("read", self.name)
        policies = await self.state.policies.all()
        self.owned = Restriction(policies, self.who).of(table) if policies else None


async def _open(viewer: Viewer, params: list[tuple[str, str]], after: str | None) -> tuple[Any, Subscription]:
    position = parse(after) if after else None
    listed = sorted({k for k, _ in params if k in RESERVED_PARAMS})
    if listed:
        raise InvalidFilter(f"a change feed takes filters and after=, not {', '.join(listed)}", {"parameters": listed})
    table = await viewer.state.catalog.table(viewer.name)
    viewer.where = feed_filter(parse_query_params(table, params))
    await viewer.recheck(table, force=True)
    return table, await viewer.state.feed.subscribe(position)


async def _events(viewer: Viewer, table: Any, subscription: Subscription) -> AsyncIterator[list[dict]]:
    """The subscriber's events, a transaction's at a time: `ready` first, then the changes it sees,
    then `cut` if the feed lets it go or the caller may no longer follow."""
    after, catalog = subscription.after, viewer.state.catalog
    yield [{"event": "ready", "position": str(after)}]
    convert = converters(table)
    try:
        async for tx in subscription.transactions():
            batch = []
            known = catalog.known(table.name)
            if known is not None and known is not table:  # altered: its new columns' conversions
                table, convert = known, converters(known)
            await viewer.recheck(table)
            for index, change in enumerate(tx.changes):
                if change.table != table.name:
                    continue
                position = tx.at(index)
                if position <= after:
                    continue
                seen = seen_as(change, viewer.where, lambda row: row_of(row, convert), viewer.owned)
                if seen is not None:
                    batch.append({"event": "change", **event(table, tx, position, *seen)})
            if batch:
                yield batch
    except Cut as cut:
        yield [{"event": "cut", "reason": str(cut)}]
    except GatewayError as exc:  # the credential or the scope no longer holds
        yield [{"event": "cut", "reason": f"{exc.code}: {exc.message}"}]


def _frame(item: dict) -> bytes:
    """One event as SSE writes it (`data` is one line: JSON has no raw line breaks)."""
    kind = item.pop("event")
    ident = item.get("position")
    head = f"event: {kind}\r\n" + (f"id: {ident}\r\n" if ident else "")
    return head.encode() + b"data: " + jsontext.dumps(item, json_default) + b"\r\n\r\n"


async def _sse(viewer: Viewer, table: Any, subscription: Subscription) -> AsyncIterator[bytes]:
    """A transaction's events in one write: the socket is written once a transaction, not once a change."""
    try:
        async for batch in _events(viewer, table, subscription):
            yield b"".join(_frame(item) for item in batch)
    finally:
        subscription.close()
