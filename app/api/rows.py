"""The rows of a table: list, query, aggregate, create, update and delete (by filter or by key).
HTTP only: each handler parses, calls the CRUD service, and answers in the envelope (a read, as its
Accept header asks: JSON, CSV or JSON Lines; http/negotiation.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from starlette.datastructures import URL
from starlette.responses import Response

from app.core.errors import Forbidden
from app.http import cached, prefer, validators
from app.http.answers import Answer
from app.http.envelope import success
from app.http.idempotent import write_once
from app.http.negotiation import Representation, choose, rows_body
from app.http.prefer import Preferences
from app.http.route import Call
from app.query.embeds import Embed
from app.query.sql import Mode
from app.rows.embedded import flat_columns, flat_row
from app.rows.values import json_default
from app.services.crud import Permit

# Prefer: resolution=... -> what a duplicate key does (app/query/sql.py, insert).
DUPLICATES: dict[str | None, Mode] = {None: "insert", "merge-duplicates": "upsert", "ignore-duplicates": "keep"}


VARY = {"Vary": "Accept"}  # a read's answer depends on its Accept header


async def _as_asked(
    call: Call, kind: Representation, rows: list[dict], meta: dict | None, fields: str | list[str] | None,
    url: URL | None = None,
) -> Answer:
    """Rows in the representation the Accept header chose (before the query ran: a 406 costs nothing).
    CSV is flat: an embedded row's columns are `customer.name` cells, an embedded array one JSON cell."""
    if kind == "json":
        if meta is None:
            return Answer.envelope(rows[0], headers=VARY)
        return Answer.envelope(rows, f"{meta['count']} row(s)", meta, VARY)
    items = await call.state.crud.items(call.table, fields)
    if kind == "csv" and any(isinstance(i, Embed) for i in items):
        rows = [flat_row(items, row) for row in rows]
    return Answer.raw(*rows_body(kind, flat_columns(items), rows, url, meta))


def _may_read(call: Call) -> Permit:
    return lambda table: call.who.require("read", table)


def created(given: dict | list, rows: list[dict]) -> Response:
    """201 with the stored rows: a list for a list, the row for one."""
    if isinstance(given, list):
        return success(rows, f"{len(rows)} row(s) created", status=201)
    return success(rows[0] if rows else None, "row created", status=201)


async def list_rows(call: Call) -> Response:
    kind = choose(call.request.headers.get("accept"))
    params = call.request.query_params
    items = params.multi_items()

    async def make(permit: Permit) -> Answer:
        rows, meta = await call.state.crud.list_from_params(
            call.table, items, json_as_text=kind == "csv", permit=permit
        )
        return await _as_asked(call, kind, rows, meta, params.get("fields"), call.request.url)

    # The parameters by name (a name's own values keep their order); a Link header holds the URL.
    where = str(call.request.url.replace(query="")) if kind != "json" else None
    return await cached.read(call, ["list", kind, sorted(items, key=lambda item: item[0]), where], make)


async def query_rows(call: Call) -> Response:
    kind = choose(call.request.headers.get("accept"))
    body = call.body
    options = {"fields": body.fields, "order": body.order_by, "limit": body.limit, "offset": body.offset,
               "cursor": body.cursor, "count": body.count}

    async def make(permit: Permit) -> Answer:
        rows, meta = await call.state.crud.list_from_body(
            call.table, body.input, options, json_as_text=kind == "csv", permit=permit
        )
        return await _as_asked(call, kind, rows, meta, body.fields)

    return await cached.read(call, ["query", kind, body.model_dump()], make)


async def aggregate_rows(call: Call) -> Response:
    rows, meta = await call.state.crud.aggregate_from_params(
        call.table, call.request.query_params.multi_items(), _may_read(call)
    )
    return success(rows, f"{meta['count']} group(s)", meta=meta)


async def aggregate_query(call: Call) -> Response:
    rows, meta = await call.state.crud.aggregate_from_body(call.table, call.body.model_dump(), _may_read(call))
    return success(rows, f"{meta['count']} group(s)", meta=meta)


def _preferences(call: Call, *, inserting: bool = False) -> Preferences:
    return prefer.parse(call.request.headers.getlist("prefer"), resolution=inserting)


def _no_content(prefs: Preferences, answer: Callable[[Any], Response]) -> Callable[[Any], Response]:
    """PUT, PATCH and DELETE: 204 with no body when the client prefers it, else `answer`."""
    return (lambda _: Response(status_code=204)) if prefs.minimal else answer


def _location(call: Call, keys: list[dict]) -> dict[str, str]:
    """Where one created row is (`/api/orders/42`, `/api/lines/7,3`); nothing for several, or none known."""
    if len(keys) != 1 or not keys[0]:
        return {}
    parts = [_key_text(v) for v in keys[0].values()]
    # A composite key's part holding a comma has no path (the key is split at commas), and `.` or
    # `..` as a segment is rewritten by every client: no Location for those.
    if any(p in (".", "..") for p in parts) or (len(parts) > 1 and any("," in p for p in parts)):
        return {}
    key = ",".join(quote(p, safe="") for p in parts)
    return {"Location": f"{call.request.url.path.rstrip('/')}/{key}"}


def _key_text(value: Any) -> str:
    text = json_default(value) if not isinstance(value, (str, int)) else value
    return str(text)


async def create_rows(call: Call) -> Response:
    given = call.body.input
    prefs = _preferences(call, inserting=True)
    duplicates = DUPLICATES[prefs.resolution]

    def answer(rows: list[dict]) -> Response:
        if prefs.minimal:
            return Response(status_code=201, headers=_location(call, rows) if not isinstance(given, list) else {})
        return created(given, rows)

    return await _invalidating(call, write_once(
        call,
        lambda after: call.state.crud.create(call.table, given, after, duplicates=duplicates,
                                             read_back=not prefs.minimal),
        answer, prefs.headers(),
    ))


async def update_rows(call: Call) -> Response:
    body, prefs = call.body, _preferences(call)
    return await _invalidating(call, write_once(
        call, lambda after: call.state.crud.update(call.table, body.input, body.where, after),
        _no_content(prefs, lambda n: success({"affected": n}, f"{n} row(s) updated")), prefs.headers(),
    ))


async def update_many(call: Call) -> Response:
    prefs = _preferences(call)

    def answer(done: dict) -> Response:
        missing = f", {len(done['missing'])} key(s) not found" if done["missing"] else ""
        return success(done, f"{done['affected']} row(s) updated{missing}")

    return await _invalidating(call, write_once(
        call, lambda after: call.state.crud.update_many(call.table, call.body.input, after),
        _no_content(prefs, answer), prefs.headers(),
    ))


async def delete_rows(call: Call) -> Response:
    prefs = _preferences(call)
    return await _invalidating(call, write_once(
        call, lambda after: call.state.crud.delete(call.table, call.body.input, after),
        _no_content(prefs, lambda n: success({"affected": n}, f"{n} row(s) deleted")), prefs.headers(),
    ))


async def get_row(call: Call) -> Response:
    kind = choose(call.request.headers.get("accept"))
    fields = call.request.query_params.get("fields")

    async def make(permit: Permit) -> Answer:
        row = await call.state.crud.get(
            call.table, call.path["key"], fields, json_as_text=kind == "csv", permit=permit
        )
        return await _as_asked(call, kind, [row], None, fields)

    return await cached.read(call, ["get", kind, call.path["key"], fields], make)


async def _invalidating(call: Call, write: Awaitable[Response]) -> Response:
    """A write, then its table's cached answers dropped, whatever it answered (a failed write may
    have committed: commit_outcome_unknown). The change feed drops them too, for every writer;
    this keeps the gateway right on its own."""
    try:
        return await write
    finally:
        await call.state.cache.invalidate(call.table)


async def update_row(call: Call) -> Response:
    """PUT or PATCH by key: the columns given change, the others stay. With If-Match, only if the
    row is still the one the client read (the answer's ETag is the new row's)."""
    key, values, prefs = call.path["key"], call.body.input, _preferences(call)
    precondition = validators.if_match(call.request.headers.get("if-match"))

    def answer(row: dict | None) -> Response:
        if prefs.minimal or row is None:
            return Response(status_code=204)
        response = success(row, "row updated")
        response.headers["ETag"] = validators.row_etag(row)
        return response

    return await _invalidating(call, write_once(
        call,
        lambda after: call.state.crud.update_by_key(call.table, key, values, after, read_back=not prefs.minimal,
                                                    precondition=precondition),
        answer, prefs.headers(),
    ))


async def delete_row(call: Call) -> Response:
    key, prefs = call.path["key"], _preferences(call)
    precondition = validators.if_match(call.request.headers.get("if-match"))
    return await _invalidating(call, write_once(
        call, lambda after: call.state.crud.delete_by_key(call.table, key, after, precondition=precondition),
        _no_content(prefs, lambda n: success({"affected": n}, "row deleted")), prefs.headers(),
    ))


async def call_routine(call: Call) -> Response:
    """POST /api/rpc/{name}: needs `execute:{name}`."""
    name = call.path["name"]
    if not call.who.may("execute", name):
        raise Forbidden(f"'{call.who.name}' may not execute '{name}'", {"needs": f"execute:{name}"})
    try:
        data, meta = await call.state.rpc.call(name, call.body.input)
    finally:
        await call.state.cache.invalidate_all()  # a procedure may have written any table
    return success(data, f"'{name}' called", meta=meta or None)
