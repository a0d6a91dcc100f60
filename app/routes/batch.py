"""Bulk routes: import an uploaded file (CSV, TSV, XLSX, XLS, ODS, JSON Lines, JSON), validate one
without writing, export a table as a stream (CSV, JSON Lines, XLSX)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from app.core.auth import Principal
from app.core.errors import InvalidBody, MethodNotAllowed
from app.imports.engine import ImportEngine
from app.imports.uploads import Format, opener, split_name, upload_options
from app.http.access import CanExport, Caller, allow, exports, imports
from app.http.idempotent import IdempotencyKey, upload_once
from app.routes.jobs import accepted
from app.http.envelope import success
from app.services.exports import ExportFormat, ExportService
from app.http.uploads import stream_file

router = APIRouter(prefix="/api/batch", tags=["batch"])
Engine = Annotated[ImportEngine, Depends(imports)]
Exports = Annotated[ExportService, Depends(exports)]
Table = Annotated[str | None, Query(description="the table, when not the file's name")]
Mode = Annotated[Literal["insert", "ignore", "upsert"], Query(description="what a duplicate key does")]
Null = Annotated[str, Query(description="the cell text that means NULL (CSV, TSV, spreadsheets)")]
Sheet = Annotated[str | None, Query(description="the sheet to read (spreadsheets; the first by default)")]
FileFormat = Annotated[Format | None, Query(alias="format", description="the file's format, when its extension does not say")]


class ClosingStream(StreamingResponse):
    """A streaming response that always releases what feeds it (cursor, connection, file), even when
    the client goes away before or during the transfer."""

    def __init__(self, content, stack, **kwargs):  # type: ignore[no-untyped-def]
        super().__init__(content, **kwargs)
        self._stack = stack

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._stack.aclose()


async def _upload(
    request: Request, who: Principal, table: str | None, fmt: Format | None, sheet: str | None
) -> tuple[str | None, str, AsyncIterator[bytes], Format, dict[str, Any]]:
    """The upload's file name, table, bytes, format and source options. Importing and validating
    need the same scope, `import` (a validation reads the table's rules and keys)."""
    settings = request.app.state.settings
    filename, chunks = await stream_file(request, "file", settings.max_upload_bytes)
    name, extension = split_name(filename) if table is None else (table, split_name(filename)[1] if filename else None)
    allow(request, who, "import", name)
    return filename, name, chunks, fmt or extension or "csv", upload_options(settings, sheet)


def _respond(report: dict) -> Response:
    written = report["rows_inserted"] + report["rows_updated"]
    return success(report, f"{written} row(s) written, {report['rows_failed']} failed")


@router.post("/import", summary="Import a file into the table named after it")
async def import_file(
    request: Request,
    engine: Engine,
    who: Caller,
    table: Table = None,
    mode: Mode = "insert",
    atomic: Annotated[bool, Query(description="all rows or none")] = False,
    null: Null = "\\N",
    sheet: Sheet = None,
    fmt: FileFormat = None,
    idempotency_key: IdempotencyKey = None,
    asynchronous: Annotated[bool, Query(alias="async", description="answer 202 at once with a job to follow")] = False,
):
    if asynchronous or "respond-async" in request.headers.get("prefer", "").lower():
        if idempotency_key is not None:
            raise InvalidBody("an Idempotency-Key is not taken on an async import: the job's id is what to keep")
        filename, name, chunks, kind, _ = await _upload(request, who, table, fmt, sheet)
        job = {"mode": mode, "atomic": atomic, "null": null, "sheet": sheet, "format": kind, "filename": filename}
        view = await request.app.state.jobs.submit_upload(who, name, filename, chunks, job)
        return accepted(view, f"job {view['id']} {view['state']}: follow it at {view['links']['self']}")
    if idempotency_key is not None and not atomic:
        raise InvalidBody(
            "an Idempotency-Key on an import needs atomic=true: only then is the import one transaction "
            "that the key can commit with (a plain import's report lists the committed lines to resume from)"
        )
    filename, name, chunks, kind, options = await _upload(request, who, table, fmt, sheet)
    if idempotency_key is None:
        return _respond(await engine.run(name, opener(chunks, kind, **options), mode=mode, atomic=atomic, null=null))
    return await upload_once(
        request, idempotency_key, filename, chunks, _respond,
        lambda hashed, after: engine.run(name, opener(hashed, kind, **options), mode=mode, atomic=True, null=null, after=after),
    )


@router.post("/validate", summary="Check a file as an import would, writing nothing")
async def validate_file(
    request: Request,
    engine: Engine,
    who: Caller,
    table: Table = None,
    mode: Mode = "insert",
    null: Null = "\\N",
    sheet: Sheet = None,
    fmt: FileFormat = None,
):
    _, name, chunks, kind, options = await _upload(request, who, table, fmt, sheet)
    report = await engine.run(name, opener(chunks, kind, **options), mode=mode, null=null, dry_run=True)
    return success(report, f"{report['rows_valid']} row(s) valid, {report['rows_failed']} invalid")


@router.api_route("/import", methods=["GET", "PUT", "PATCH", "DELETE"], include_in_schema=False)
@router.api_route("/validate", methods=["GET", "PUT", "PATCH", "DELETE"], include_in_schema=False)
async def upload_other_methods(request: Request):
    # Without this, GET /api/batch/import would fall through to GET /api/{table}/{key} (table "batch").
    raise MethodNotAllowed(f"{request.method} is not allowed on {request.url.path}: POST a file", headers={"Allow": "POST"})


@router.get("/{table}/export", summary="Stream a table out as CSV, JSON Lines or XLSX (same filters as /query)")
async def export_table(
    table: str,
    request: Request,
    service: Exports,
    _: CanExport,
    fmt: Annotated[ExportFormat, Query(alias="format", description="csv (default), jsonl or xlsx")] = "csv",
):
    params = [(k, v) for k, v in request.query_params.multi_items() if k != "format"]
    export = await service.open(table, params, fmt)
    name, extension = export.table, export.format
    disposition = f"attachment; filename=\"{name}.{extension}\"; filename*=UTF-8''{quote(name)}.{extension}"
    if not name.isascii() or '"' in name or "\\" in name:
        disposition = f"attachment; filename*=UTF-8''{quote(name)}.{extension}"
    return ClosingStream(export.body, export.stack, media_type=export.media_type, headers={"Content-Disposition": disposition})
