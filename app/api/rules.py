"""A table's rules, a JSON Schema kept in versions: PUT stores a new version, GET shows the current
one and the list, DELETE removes the current version. Changing rules needs `write` on the table (the
rules decide what may be written); reading them needs `read`."""

from __future__ import annotations

import json

from starlette.responses import Response

from app.core import jsontext
from app.core.errors import InvalidBody
from app.http.envelope import success
from app.http.idempotent import audited
from app.http.route import Call


async def put_rules(call: Call) -> Response:
    try:
        schema = jsontext.parse(await call.request.body())
    except json.JSONDecodeError as exc:
        raise InvalidBody(f"the body is not valid JSON: {exc}") from None
    found = await call.state.catalog.writable(call.table)  # rules are for writes: a view takes none
    described = await call.state.rules.put(found, schema, call.who.name)
    audited(call, found.name, 1)
    return success(described, f"rules version {described['version']} stored for '{found.name}'")


async def get_rules(call: Call) -> Response:
    found = await call.state.catalog.table(call.table)
    return success(await call.state.rules.describe(found))


async def remove_rules(call: Call) -> Response:
    found = await call.state.catalog.table(call.table)
    described = await call.state.rules.roll_back(found, call.who.name)
    audited(call, found.name, 1)
    if described is None:
        return success(None, f"'{found.name}' has no rules now")
    return success(described, f"'{found.name}' is back to rules version {described['version']}")
