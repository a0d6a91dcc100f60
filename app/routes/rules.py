"""Rules routes: a table's JSON Schema, versioned. PUT stores a new version, GET shows the current
one and the list, DELETE rolls back to the previous one. Changing rules needs `write` on the table
(the rules decide what may be written); reading them needs `read`."""

from __future__ import annotations

import json

from fastapi import APIRouter, Request

from app.core import jsontext
from app.core.errors import InvalidBody
from app.http.access import CanRead, CanWrite
from app.http.envelope import success

router = APIRouter(prefix="/api/schemas", tags=["rules"])


@router.put("/{table}", summary="Store a JSON Schema (Draft 2020-12) for the table's rows, as a new version")
async def put_schema(table: str, request: Request, who: CanWrite):
    try:
        schema = jsontext.parse(await request.body())
    except json.JSONDecodeError as exc:
        raise InvalidBody(f"the body is not valid JSON: {exc}") from None
    found = await request.app.state.catalog.table(table)
    described = await request.app.state.rules.put(found, schema, who.name)
    return success(described, f"rules version {described['version']} stored for '{found.name}'")


@router.get("/{table}", summary="The table's current JSON Schema and its versions")
async def get_schema(table: str, request: Request, _: CanRead):
    found = await request.app.state.catalog.table(table)
    return success(await request.app.state.rules.describe(found))


@router.delete("/{table}", summary="Remove the current version: the one before is current again (none left: no rules)")
async def delete_schema(table: str, request: Request, who: CanWrite):
    found = await request.app.state.catalog.table(table)
    described = await request.app.state.rules.roll_back(found, who.name)
    if described is None:
        return success(None, f"'{found.name}' has no rules now")
    return success(described, f"'{found.name}' is back to rules version {described['version']}")
