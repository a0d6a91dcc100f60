"""Files in and out: import an uploaded file (CSV, TSV, XLSX, XLS, ODS, JSON Lines, JSON) into a
table, validate one without writing, export a table as a stream (CSV, JSON Lines, XLSX, Parquet),
its rows picked by a query string (GET) or a JSON filter (POST)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import quote

from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from app.api.jobs import accepted
from app.core.errors import InvalidBody
from app.http.access import allow
from app.http.envelope import success
from app.http.idempotent import upload_once
from app.http.route import Call
from app.http.uploads import stream_file
from app.imports.uploads import Format, opener, split_name, upload_options
from app.services.exports import Export


class ClosingStream(StreamingResponse):
    """A streaming response that always releases what feeds it (cursor, connection, file), even when
    the client goes away before or during the transfer."""

    def __init__(self, content: AsyncIterator[bytes], stack: Any, **kwargs: Any):
        super().__init__(content, **kwargs)
        self._stack = stack

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._stack.aclose()


async def _upload(call: Call) -> tuple[str | None, str, AsyncIterator[bytes], Format, dict[str, Any]]:
    """The upload's file name, table, bytes, format and source options. Importing and validating
    need the same scope, `import` (a validation reads the table's rules and keys)."""
    settings, table = call.state.settings, call.query["table"]
    filename, chunks = await stream_file(call.request, "file", settings.max_upload_bytes)
    name, extension = split_name(filename) if table is None else (table, split_name(filename)[1] if filename else None)
    allow(call.request, call.who, "import", name)
    return (
        filename,
        name,
        chunks,
        call.query["file_format"] or extension or "csv",
        upload_options(settings, call.query["sheet"], call.query["null"]),
    )


def _respond(report: dict) -> Response:
    written = report["rows_inserted"] + report["rows_updated"]
    return success(report, f"{written} row(s) written, {report['rows_failed']} failed")


async def import_file(call: Call) -> Response:
    query, engine = call.query, call.state.imports
    key = call.request.headers.get("idempotency-key")
    mode, atomic, null = query["mode"], query["atomic"], query["null"]
    if query["asynchronous"] or "respond-async" in call.request.headers.get("prefer", "").lower():
        if key is not None:
            raise InvalidBody("an Idempotency-Key is not taken on an async import: the job's id is what to keep")
        filename, name, chunks, kind, _ = await _upload(call)
        job = {
            "mode": mode,
            "atomic": atomic,
            "null": null,
            "sheet": query["sheet"],
            "format": kind,
            "filename": filename,
        }
        view = await call.state.jobs.submit_upload(call.who, name, filename, chunks, job)
        return accepted(view, f"job {view['id']} {view['state']}: follow it at {view['links']['self']}")
    if key is not None and not atomic:
        raise InvalidBody(
            "an Idempotency-Key on an import needs atomic=true: only then is the import one transaction "
            "that the key can commit with (a plain import's report lists the committed lines to resume from)"
        )
    filename, name, chunks, kind, options = await _upload(call)
    if key is None:
        return _respond(await engine.run(name, opener(chunks, kind, **options), mode=mode, atomic=atomic, null=null))
    return await upload_once(
        call,
        key,
        filename,
        chunks,
        _respond,
        lambda hashed, after: engine.run(
            name, opener(hashed, kind, **options), mode=mode, atomic=True, null=null, after=after
        ),
    )


async def validate_file(call: Call) -> Response:
    _, name, chunks, kind, options = await _upload(call)
    report = await call.state.imports.run(
        name, opener(chunks, kind, **options), mode=call.query["mode"], null=call.query["null"], dry_run=True
    )
    return success(report, f"{report['rows_valid']} row(s) valid, {report['rows_failed']} invalid")


async def export_table(call: Call) -> Response:
    params = [(k, v) for k, v in call.request.query_params.multi_items() if k not in ("format", "null")]
    return _attachment(await call.state.exports.open(
        call.table, params, call.query["export_format"], call.query["null"], permit=_may_read(call),
    ))


async def export_query(call: Call) -> Response:
    body = call.body
    options = {"fields": body.fields, "order": body.order_by, "limit": body.limit, "offset": body.offset}
    return _attachment(await call.state.exports.open_body(
        call.table, body.input, options, call.query["export_format"], call.query["null"], permit=_may_read(call),
    ))


def _may_read(call: Call) -> Callable[[str], None]:
    return lambda table: call.who.require("read", table)  # tables it embeds, or filters by


def _attachment(export: Export) -> Response:
    name, extension = export.table, export.format
    disposition = f"attachment; filename=\"{name}.{extension}\"; filename*=UTF-8''{quote(name)}.{extension}"
    if not name.isascii() or '"' in name or "\\" in name:
        disposition = f"attachment; filename*=UTF-8''{quote(name)}.{extension}"
    return ClosingStream(
        export.body, export.stack, media_type=export.media_type, headers={"Content-Disposition": disposition}
    )
