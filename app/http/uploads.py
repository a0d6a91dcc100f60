"""Stream one file out of a multipart/form-data upload as it arrives (python-multipart's push parser).

Starlette's `request.form()` would spool the whole file first; this hands the file's bytes on chunk
by chunk, so an import can write its first batches while the upload is still coming in, and memory
stays flat whatever the file size.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from app.core.errors import InvalidBody, PayloadTooLarge, UnsupportedMediaType

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks


class _FilePart:
    """Collects the parser's callbacks: which part we are in, and the chosen part's data."""

    def __init__(self, field: str):
        self.field = field.encode()
        self.filename: str | None = None
        self.found = False  # the file part's headers have been read
        self.done = False
        self.chunks: list[bytes] = []
        self._in_file = False
        self._headers: dict[bytes, bytes] = {}
        self._name = b""
        self._value = b""

    def callbacks(self) -> MultipartCallbacks:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": lambda d, s, e: self._add("_name", d[s:e]),
            "on_header_value": lambda d, s, e: self._add("_value", d[s:e]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._data,
            "on_part_end": self._part_end,
        }

    def _add(self, attr: str, data: bytes) -> None:
        setattr(self, attr, getattr(self, attr) + data)

    def _part_begin(self) -> None:
        self._headers = {}

    def _header_end(self) -> None:
        self._headers[self._name.lower()] = self._value
        self._name = self._value = b""

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        if options.get(b"name") == self.field and not self.found:
            self.found = self._in_file = True
            filename = options.get(b"filename")
            self.filename = filename.decode("utf-8", "replace") if filename is not None else None

    def _data(self, data: bytes, start: int, end: int) -> None:
        if self._in_file:
            self.chunks.append(data[start:end])

    def _part_end(self) -> None:
        if self._in_file:
            self._in_file, self.done = False, True

    def take(self) -> list[bytes]:
        chunks, self.chunks = self.chunks, []
        return chunks


async def stream_file(
    request: Request, field: str = "file", max_bytes: int | None = None
) -> tuple[str | None, AsyncIterator[bytes]]:
    """The uploaded file's name and an iterator over its bytes; reading stops at `max_bytes`."""
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    if content_type != b"multipart/form-data" or b"boundary" not in options:
        raise UnsupportedMediaType("send the file as multipart/form-data: curl -F file=@table.csv ...")
    declared = request.headers.get("content-length", "")
    if max_bytes is not None and declared.isdigit() and int(declared) > max_bytes:
        raise PayloadTooLarge(f"upload over {max_bytes} bytes", {"max_bytes": max_bytes})
    part = _FilePart(field)
    parser = MultipartParser(options[b"boundary"], part.callbacks())
    body = request.stream()
    received = 0

    async def pull() -> bool:
        nonlocal received
        async for chunk in body:
            received += len(chunk)
            if max_bytes is not None and received > max_bytes:
                raise PayloadTooLarge(f"upload over {max_bytes} bytes", {"max_bytes": max_bytes})
            parser.write(chunk)
            return True
        parser.finalize()
        return False

    while not part.found:
        if not await pull():
            raise InvalidBody(f"no '{field}' part in the upload: curl -F {field}=@table.csv ...")

    async def chunks() -> AsyncIterator[bytes]:
        while True:
            for chunk in part.take():
                yield chunk
            if part.done or not await pull():
                for chunk in part.take():
                    yield chunk
                return

    return part.filename, chunks()
