"""The catalog: which tables are exposed, with their columns, types and keys."""

from __future__ import annotations

from starlette.responses import Response

from app.core.auth import Principal
from app.http.envelope import success
from app.http.route import Call

# What a caller may do with a table, as /api/tables and /api/tables/{table} tell it (a console shows
# only the controls the answer allows; the routes check the scopes again whatever a client shows).
TABLE_ACTIONS = ("read", "write", "import", "export", "admin")


async def list_tables(call: Call) -> Response:
    """The tables and views the caller may read, then the procedures and functions it may execute."""
    tables = [t | {"access": access(call.who, t)} for t in await call.state.crud.describe_tables()
              if call.who.may("read", t["name"])]
    routines = [r.describe() for r in await call.state.rpc.routines.all() if call.who.may("execute", r.name)]
    return success(tables + routines, f"{len(tables)} table(s), {len(routines)} routine(s)")


async def describe_table(call: Call) -> Response:
    described = await call.state.crud.describe_table(call.table, lambda table: call.who.may("read", table))
    return success(described | {"access": access(call.who, described)})


def access(who: Principal, table: dict) -> list[str]:
    """The actions the caller holds on the table; a view is read-only, whatever the scopes."""
    view = table.get("kind") == "view"
    return [a for a in TABLE_ACTIONS if who.may(a, table["name"]) and not (view and a in ("write", "import"))]
