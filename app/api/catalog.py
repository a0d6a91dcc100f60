"""The catalog: which tables are exposed, with their columns, types and keys."""

from __future__ import annotations

from starlette.responses import Response

from app.http.envelope import success
from app.http.route import Call


async def list_tables(call: Call) -> Response:
    tables = [t for t in await call.state.crud.describe_tables() if call.who.may("read", t["name"])]
    return success(tables, f"{len(tables)} table(s)")


async def describe_table(call: Call) -> Response:
    return success(await call.state.crud.describe_table(call.table, lambda table: call.who.may("read", table)))
