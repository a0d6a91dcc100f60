"""The catalog: which tables are exposed, with their columns, types and keys."""

from __future__ import annotations

from starlette.responses import Response

from app.http.envelope import success
from app.http.route import Call


async def list_tables(call: Call) -> Response:
    """The tables and views the caller may read, then the procedures and functions it may execute."""
    tables = [t for t in await call.state.crud.describe_tables() if call.who.may("read", t["name"])]
    routines = [r.describe() for r in await call.state.rpc.routines.all() if call.who.may("execute", r.name)]
    return success(tables + routines, f"{len(tables)} table(s), {len(routines)} routine(s)")


async def describe_table(call: Call) -> Response:
    return success(await call.state.crud.describe_table(call.table, lambda table: call.who.may("read", table)))
