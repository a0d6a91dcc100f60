"""CSV routes: import an uploaded file, export a table as a stream."""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Annotated, Literal
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from app.core.errors import InvalidBody, MethodNotAllowed
from app.routes.deps import CanExport, Caller, allow, csv_service
from app.routes.idempotent import IdempotencyKey, import_once
from app.schemas.envelope import success
from app.services.csv_service import CsvService, table_name_from_file
from app.utils.upload import stream_file

router = APIRouter(prefix="/api/batch", tags=["batch"])
Service = Annotated[CsvService, Depends(csv_service)]


class ClosingStream(StreamingResponse):
    """A streaming response that always releases what feeds it (cursor, connection), even when the
    client goes away before or during the transfer."""

    def __init__(self, content, stack: AsyncExitStack, **kwargs):  # type: ignore[no-untyped-def]
        super().__init__(content, **kwargs)
        self._stack = stack

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._stack.aclose()


@router.post("/import", summary="Import a CSV file into the table named after it")
async def import_csv(
    request: Request,
    service: Service,
    who: Caller,
    table: Annotated[str | None, Query(description="the table, when not the file's name")] = None,
    mode: Annotated[Literal["insert", "ignore", "upsert"], Query(description="what a duplicate key does")] = "insert",
    atomic: Annotated[bool, Query(description="all rows or none")] = False,
    null: Annotated[str, Query(description="the cell text that means NULL")] = "\\N",
    idempotency_key: IdempotencyKey = None,
):
    if idempotency_key is not None and not atomic:
        raise InvalidBody(
            "an Idempotency-Key on an import needs atomic=true: only then is the import one transaction "
            "that the key can commit with (a plain import's report lists the committed lines to resume from)"
        )
    filename, chunks = await stream_file(request, "file", request.app.state.settings.max_upload_bytes)
    name = table or table_name_from_file(filename)
    allow(request, who, "import", name)

    def respond(report: dict) -> Response:
        written = report["rows_inserted"] + report["rows_updated"]
        return success(report, f"{written} row(s) written, {report['rows_failed']} failed")

    if idempotency_key is None:
        return respond(await service.import_csv(name, chunks, mode=mode, atomic=atomic, null=null))
    return await import_once(request, idempotency_key, filename, chunks, respond,
                             lambda hashed, after: service.import_csv(name, hashed, mode=mode, atomic=True, null=null, after=after))


@router.api_route("/import", methods=["GET", "PUT", "PATCH", "DELETE"], include_in_schema=False)
async def import_other_methods(request: Request):
    # Without this, GET /api/batch/import would fall through to GET /api/{table}/{key} (table "batch").
    raise MethodNotAllowed(f"{request.method} is not allowed on /api/batch/import: POST a file", headers={"Allow": "POST"})


@router.get("/{table}/export", summary="Stream a table out as CSV (same filters as /query)")
async def export_csv(table: str, request: Request, service: Service, _: CanExport):
    name, body, stack = await service.open_export(table, request.query_params.multi_items())
    disposition = f"attachment; filename=\"{name}.csv\"; filename*=UTF-8''{quote(name)}.csv"
    if not name.isascii() or '"' in name or "\\" in name:
        disposition = f"attachment; filename*=UTF-8''{quote(name)}.csv"
    return ClosingStream(body, stack, media_type="text/csv; charset=utf-8", headers={"Content-Disposition": disposition})
