"""CRUD routes: HTTP only. Parse, call the service, wrap the answer in the envelope."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.convertors import Convertor, register_url_convertor
from starlette.responses import Response

from app.http.access import CanRead, CanWrite, crud
from app.http.idempotent import IdempotencyKey, write_once
from app.routes.jsonroute import JSONRoute
from app.http.envelope import success
from app.http.bodies import AggregateBody, CreateBody, DeleteBody, QueryBody, UpdateBody, UpdateByKeyBody
from app.services.crud import CrudService

class TableName(Convertor):
    """A table's name in a CRUD path: any segment but the gateway's own route names, so these
    routes can be matched first (most requests are CRUD: every router before them cost each
    request its matching, about 5 us a route with FastAPI's included routers) without taking
    /api/batch/..., /api/tables/... or /api/schemas/... ."""

    regex = "(?!(?:batch|tables|schemas)(?:/|$))[^/]+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("table", TableName())
router = APIRouter(prefix="/api", tags=["rows"], route_class=JSONRoute)
Service = Annotated[CrudService, Depends(crud)]


def listed(rows: list[dict], meta: dict) -> Response:
    return success(rows, f"{meta['count']} row(s)", meta=meta)


def created(given: dict | list, rows: list[dict]) -> Response:
    """201 with the stored rows: a list for a list, the row for one."""
    if isinstance(given, list):
        return success(rows, f"{len(rows)} row(s) created", status=201)
    return success(rows[0] if rows else None, "row created", status=201)


@router.get("/{table:table}/query", summary="List rows (query-string filters)")
async def list_rows(table: str, request: Request, service: Service, _: CanRead):
    return listed(*await service.list_from_params(table, request.query_params.multi_items()))


@router.post("/{table:table}/query", summary="List rows (JSON filter)")
async def query_rows(table: str, body: QueryBody, service: Service, _: CanRead):
    options = {"fields": body.fields, "order": body.order_by, "limit": body.limit, "offset": body.offset,
               "cursor": body.cursor, "count": body.count}
    return listed(*await service.list_from_body(table, body.input, options))


@router.get("/{table:table}/aggregate", summary="Aggregates by group (query-string filters)")
async def aggregate_rows(table: str, request: Request, service: Service, _: CanRead):
    rows, meta = await service.aggregate_from_params(table, request.query_params.multi_items())
    return success(rows, f"{meta['count']} group(s)", meta=meta)


@router.post("/{table:table}/aggregate", summary="Aggregates by group (JSON filter)")
async def aggregate_query(table: str, body: AggregateBody, service: Service, _: CanRead):
    rows, meta = await service.aggregate_from_body(table, body.model_dump())
    return success(rows, f"{meta['count']} group(s)", meta=meta)


@router.post("/{table:table}", status_code=201, summary="Create one row or many")
async def create_rows(table: str, body: CreateBody, request: Request, service: Service, _: CanWrite, idempotency_key: IdempotencyKey = None):
    call = lambda after: service.create(table, body.input, after)  # noqa: E731
    return await write_once(request, idempotency_key, call, lambda rows: created(body.input, rows))


@router.put("/{table:table}", summary="Update the rows matching a filter")
async def update_rows(table: str, body: UpdateBody, request: Request, service: Service, _: CanWrite, idempotency_key: IdempotencyKey = None):
    call = lambda after: service.update(table, body.input, body.where, after)  # noqa: E731
    return await write_once(request, idempotency_key, call, lambda n: success({"affected": n}, f"{n} row(s) updated"))


@router.delete("/{table:table}", summary="Delete the rows matching a filter")
async def delete_rows(table: str, body: DeleteBody, request: Request, service: Service, _: CanWrite, idempotency_key: IdempotencyKey = None):
    call = lambda after: service.delete(table, body.input, after)  # noqa: E731
    return await write_once(request, idempotency_key, call, lambda n: success({"affected": n}, f"{n} row(s) deleted"))


@router.get("/{table:table}/{key}", summary="Get one row by primary key (a,b for composite keys)")
async def get_row(table: str, key: str, service: Service, _: CanRead, fields: str | None = None):
    return success(await service.get(table, key, fields))


@router.put("/{table:table}/{key}", summary="Update one row by primary key")
async def update_row(table: str, key: str, body: UpdateByKeyBody, request: Request, service: Service, _: CanWrite, idempotency_key: IdempotencyKey = None):
    call = lambda after: service.update_by_key(table, key, body.input, after)  # noqa: E731
    return await write_once(request, idempotency_key, call, lambda row: success(row, "row updated"))


@router.delete("/{table:table}/{key}", summary="Delete one row by primary key")
async def delete_row(table: str, key: str, request: Request, service: Service, _: CanWrite, idempotency_key: IdempotencyKey = None):
    call = lambda after: service.delete_by_key(table, key, after)  # noqa: E731
    return await write_once(request, idempotency_key, call, lambda n: success({"affected": n}, "row deleted"))
