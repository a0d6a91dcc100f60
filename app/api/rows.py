"""The rows of a table: list, query, aggregate, create, update and delete (by filter or by key).
HTTP only: each handler parses, calls the CRUD service, and answers in the envelope (a read, as its
Accept header asks: JSON, CSV or JSON Lines; http/negotiation.py)."""

from __future__ import annotations

from starlette.datastructures import URL
from starlette.responses import Response

from app.http.envelope import success
from app.http.idempotent import write_once
from app.http.negotiation import Representation, choose, rows_response
from app.http.route import Call
from app.query.embeds import Embed
from app.rows.embedded import flat_columns, flat_row
from app.services.crud import Permit


def listed(rows: list[dict], meta: dict) -> Response:
    return success(rows, f"{meta['count']} row(s)", meta=meta)


async def _as_asked(
    call: Call, kind: Representation, rows: list[dict], meta: dict | None, fields: str | list[str] | None,
    url: URL | None = None,
) -> Response:
    """Rows in the representation the Accept header chose (before the query ran: a 406 costs nothing).
    CSV is flat: an embedded row's columns are `customer.name` cells, an embedded array one JSON cell."""
    if kind == "json":
        if meta is None:
            return success(rows[0])
        return listed(rows, meta)
    items = await call.state.crud.items(call.table, fields)
    if kind == "csv" and any(isinstance(i, Embed) for i in items):
        rows = [flat_row(items, row) for row in rows]
    return rows_response(kind, flat_columns(items), rows, url, meta)


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
    rows, meta = await call.state.crud.list_from_params(
        call.table, params.multi_items(), json_as_text=kind == "csv", permit=_may_read(call)
    )
    return await _as_asked(call, kind, rows, meta, params.get("fields"), call.request.url)


async def query_rows(call: Call) -> Response:
    kind = choose(call.request.headers.get("accept"))
    body = call.body
    options = {"fields": body.fields, "order": body.order_by, "limit": body.limit, "offset": body.offset,
               "cursor": body.cursor, "count": body.count}
    rows, meta = await call.state.crud.list_from_body(
        call.table, body.input, options, json_as_text=kind == "csv", permit=_may_read(call)
    )
    return await _as_asked(call, kind, rows, meta, body.fields)


async def aggregate_rows(call: Call) -> Response:
    rows, meta = await call.state.crud.aggregate_from_params(
        call.table, call.request.query_params.multi_items(), _may_read(call)
    )
    return success(rows, f"{meta['count']} group(s)", meta=meta)


async def aggregate_query(call: Call) -> Response:
    rows, meta = await call.state.crud.aggregate_from_body(call.table, call.body.model_dump(), _may_read(call))
    return success(rows, f"{meta['count']} group(s)", meta=meta)


async def create_rows(call: Call) -> Response:
    given = call.body.input
    return await write_once(call, lambda after: call.state.crud.create(call.table, given, after),
                            lambda rows: created(given, rows))


async def update_rows(call: Call) -> Response:
    body = call.body
    return await write_once(call, lambda after: call.state.crud.update(call.table, body.input, body.where, after),
                            lambda n: success({"affected": n}, f"{n} row(s) updated"))


async def delete_rows(call: Call) -> Response:
    return await write_once(call, lambda after: call.state.crud.delete(call.table, call.body.input, after),
                            lambda n: success({"affected": n}, f"{n} row(s) deleted"))


async def get_row(call: Call) -> Response:
    kind = choose(call.request.headers.get("accept"))
    fields = call.request.query_params.get("fields")
    row = await call.state.crud.get(
        call.table, call.path["key"], fields, json_as_text=kind == "csv", permit=_may_read(call)
    )
    return await _as_asked(call, kind, [row], None, fields)


async def update_row(call: Call) -> Response:
    key, values = call.path["key"], call.body.input
    return await write_once(call, lambda after: call.state.crud.update_by_key(call.table, key, values, after),
                            lambda row: success(row, "row updated"))


async def delete_row(call: Call) -> Response:
    key = call.path["key"]
    return await write_once(call, lambda after: call.state.crud.delete_by_key(call.table, key, after),
                            lambda n: success({"affected": n}, "row deleted"))
