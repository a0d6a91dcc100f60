"""GET /api/batch/dead-letters: the messages broker streams could not apply, with their reasons
(app/streams/positions.py keeps them), newest first, of the tables the caller may import into; the
next page: `before=` the last one's id."""

from __future__ import annotations

from starlette.responses import Response

from app.http.access import allow
from app.http.envelope import success
from app.http.route import Call
from app.streams.positions import dead_letters


async def list_dead_letters(call: Call) -> Response:
    query, who = call.query, call.who
    if query["table"] is not None:
        allow(call.request, who, "import", query["table"])
        tables: list[str] | None = [query["table"]]
    else:
        catalog = call.state.catalog
        if not catalog.loaded:
            await catalog.reload()
        tables = [t.name for t in catalog.tables() if who.may("import", t.name)]
    letters = await dead_letters(call.state.db, tables, query["source"], query["before"], query["limit"])
    return success(letters, f"{len(letters)} dead letter(s)")
