"""A read through the shared cache (services/cache.py) and its validators: the answer from the
cache when one is current, else from the database (and kept when it may be); then 304 when the
client's If-None-Match names its ETag.

What may be kept: a read of a base table (not a view: its rows come from other tables) that reads no
other table (no embedded rows, no filter through a relation): an entry depends on one table's
changes only. The key holds what decides the answer: the table and its columns as this instance
knows them, the caller's scopes and the values of the claims row policies read (so a caller is
never given rows another caller sees: two callers share an entry only when they see the same rows),
the route, its normalized parameters or body, and the representation.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.responses import Response

from app.core import context
from app.db.catalog import Table
from app.http import validators
from app.http.answers import Answer
from app.http.route import Call
from app.rows.values import json_default

Permit = Callable[[str], None]
_signatures: dict[str, tuple[Table, str]] = {}  # table name -> (the Table copy, its columns' hash)


def _columns(table: Table) -> str:
    """A hash of the table's columns as this instance's catalog holds them: after an ALTER an
    instance that knows the new columns does not take an answer made with the old ones."""
    known = _signatures.get(table.name)
    if known is None or known[0] is not table:
        text = repr((table.columns, [c.name for c in table.primary_key])).encode()
        known = _signatures[table.name] = (table, hashlib.blake2b(text, digest_size=8).hexdigest())
    return known[1]


async def request_key(call: Call, table: Table, request: Any) -> str:
    """The entry's key within the table: who sees what (scopes, the claims policies read) and the
    normalized request."""
    who, policies = call.who, await call.state.policies.all()
    # The policies themselves too: an instance whose copy is older than a new policy makes its
    # answers under a key no instance that knows the policy reads.
    rules = sorted((p.table, p.column, p.claim) for p in policies.values())
    held = [(c, json.dumps(who.claims.get(c), default=str)) for c in sorted({p.claim for p in policies.values()})]
    seen = [sorted(f"{a}:{t}" for a, t in who.scopes), rules, held]
    text = orjson.dumps([_columns(table), seen, request], default=json_default, option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2b(text, digest_size=16).hexdigest()


async def read(call: Call, request: Any, make: Callable[[Permit], Awaitable[Answer]]) -> Response:
    """Answer a read: `make(permit)` reads the database (calling `permit` for every other table
    it reads); `request` is the normalized request (JSON-able) the key is made from."""
    cache = call.state.cache
    found = mark = key = name = None
    if cache.enabled:
        table = await call.state.catalog.table(call.table)
        name = table.name
        if table.view or not cache.usable(table.name):
            cache.count("bypass")
        else:
            key = await request_key(call, table, request)
            if (kept := cache.recall(table.name, key)) is not None:  # this instance's own: no round trip
                return _respond(call, kept)
            mark = cache.mark(table.name)
            found = await cache.lookup(table.name, key)
            if found is not None and found.entry is not None and (kept := Answer.load(found.entry)) is not None:
                return _respond(call, kept)
    others: set[str] = set()

    def permit(name: str) -> None:
        others.add(name)
        call.who.require("read", name)

    answer = await make(permit)
    if name is not None and key is not None and mark is not None:
        if others - {name}:
            cache.count("skipped")  # it read another table: its changes would not drop the entry
        else:
            cache.keep(name, key, mark, answer)
            if found is not None:
                await cache.store(found, answer.dump())
    return _respond(call, answer)


def _respond(call: Call, answer: Answer) -> Response:
    if validators.none_match(call.request.headers.get("if-none-match"), answer.etag):
        return answer.not_modified()
    return answer.response(context.current().retry_count)
