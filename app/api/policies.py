"""A table's row policy: GET shows it, PUT binds a column to a claim of the caller, DELETE removes
it. All three need `admin` on the table."""

from __future__ import annotations

from starlette.responses import Response

from app.core.echo import shown
from app.core.errors import InvalidBody, RowNotFound, UnknownColumn
from app.http.envelope import success
from app.http.idempotent import audited
from app.http.route import Call


async def get_policy(call: Call) -> Response:
    found = await call.state.catalog.table(call.table)
    policy = (await call.state.policies.all()).get(found.name)
    if policy is None:
        raise RowNotFound(f"'{found.name}' has no row policy", {"table": found.name})
    return success(policy.describe())


async def put_policy(call: Call) -> Response:
    # A view reads its tables as the database user: a policy on it could not hold (nor do its
    # tables' policies hold through it): views over tables with policies are the admin's to avoid.
    found = await call.state.catalog.writable(call.table)
    body = call.body
    if found.column(body.column) is None:
        named = shown(body.column)
        raise UnknownColumn(f"table '{found.name}' has no column '{named}'", {"column": named})
    if not body.claim.strip():
        raise InvalidBody("claim names a claim of the caller's token (or a key of an API key's claims)")
    policy = await call.state.policies.put(found, body.column, body.claim, call.who.name)
    await call.state.cache.invalidate(found.name)  # its answers were made for every caller
    audited(call, found.name, 1)
    said = f"'{found.name}' shows each caller the rows whose {body.column} is its claim {body.claim}"
    return success(policy.describe(), said)


async def remove_policy(call: Call) -> Response:
    found = await call.state.catalog.table(call.table)
    if not await call.state.policies.remove(found):
        raise RowNotFound(f"'{found.name}' has no row policy", {"table": found.name})
    await call.state.cache.invalidate(found.name)
    audited(call, found.name, 1)
    return success(None, f"'{found.name}' has no row policy now: every caller with read sees every row")
