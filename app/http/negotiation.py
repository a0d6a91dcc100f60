"""What a read answers in, by its Accept header (as PostgREST does): the envelope in JSON (the
default), CSV, or JSON Lines, with the same rows, filters, order, fields and cursors.

CSV follows the export's convention (docs/data.md): NULL an empty cell, the empty string a quoted
`""` (and a text that is exactly \\N quoted too), so pandas and DuckDB read it typed, and the CSV
import reads it back exactly. The values are the ones JSON shows (decimals as written, dates ISO
8601, binary base64, TINYINT(1) the number it holds), and a JSON column's text as stored. A list's
`meta` goes in headers: X-Total-Count and X-Total-Kind (with count), X-Next-Cursor or X-Next-Offset, and for a
GET, Link rel="next".
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from typing import Any, Literal

from starlette.datastructures import URL
from starlette.responses import Response

from app.core import jsontext
from app.core.errors import NotAcceptable
from app.db.catalog import Column
from app.rows.values import LIKE_NULL, json_default

Representation = Literal["json", "csv", "jsonl"]
# What a read offers, in the order that wins a tie.
OFFERED: tuple[tuple[str, Representation], ...] = (
    ("application/json", "json"),
    ("text/csv", "csv"),
    ("application/x-ndjson", "jsonl"),
)
MEDIA_TYPES = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson"}
_PLAIN = frozenset({"*/*", "application/json"})


def choose(accept: str | None) -> Representation:
    """The representation an Accept header prefers (RFC 9110: the most specific range that names a
    type gives its q; the highest q wins, JSON on a tie). No header, or */*: JSON."""
    if not accept or accept in _PLAIN or not accept.strip():  # what almost every client sends: no parsing
        return "json"
    ranges = [_media_range(part) for part in accept.split(",") if part.strip()]
    best: tuple[float, Representation] | None = None
    for media, kind in OFFERED:
        quality = _quality(media, ranges)
        if quality > 0 and (best is None or quality > best[0]):
            best = (quality, kind)
    if best is None:
        available = [media for media, _ in OFFERED]
        raise NotAcceptable(
            f"this read answers in {', '.join(available)}; the Accept header takes none of them",
            {"available": available},
        )
    return best[1]


def _media_range(part: str) -> tuple[str, float]:
    media, *params = part.split(";")
    quality = 1.0
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            try:
                quality = min(max(float(value.strip()), 0.0), 1.0)
            except ValueError:
                quality = 0.0  # a q that is not a number takes nothing
    return media.strip().lower(), quality


def _quality(media: str, ranges: Sequence[tuple[str, float]]) -> float:
    family = media.split("/")[0] + "/*"
    best_rank, quality = -1, 0.0
    for given, q in ranges:
        rank = 2 if given == media else 1 if given == family else 0 if given == "*/*" else -1
        if rank > best_rank:
            best_rank, quality = rank, q
    return quality


def rows_response(
    kind: Literal["csv", "jsonl"], columns: Sequence[Column], rows: Sequence[dict], url: URL | None = None,
    meta: dict | None = None,
) -> Response:
    """Rows as CSV (a header, then a line a row) or JSON Lines; `meta` (a list's) in headers, with
    `url` (a GET's) for the Link to the next page."""
    body, media_type, headers = rows_body(kind, columns, rows, url, meta)
    return Response(body, media_type=media_type, headers=headers)


def rows_body(
    kind: Literal["csv", "jsonl"], columns: Sequence[Column], rows: Sequence[dict], url: URL | None = None,
    meta: dict | None = None,
) -> tuple[bytes, str, dict[str, str]]:
    """What `rows_response` answers: the body, its media type and its headers."""
    if kind == "csv":
        body = csv_lines(columns, rows, header=True)
    else:
        body = jsontext.lines(rows, json_default)
    headers = {"Vary": "Accept"}
    if meta is not None:
        headers |= _page_headers(meta, url)
    return body, MEDIA_TYPES[kind], headers


def csv_lines(columns: Sequence[Column], rows: Sequence[dict], *, header: bool) -> bytes:
    """Rows (as JSON shows them) as CSV lines, CRLF-terminated, after a header line if asked."""
    cells = [(c.name, _json_cell if c.kind == "json" else _csv_value) for c in columns]
    lines = [",".join([_csv_cell(name) for name, _ in cells])] if header else []
    lines += [",".join([cell(row[name]) for name, cell in cells]) for row in rows]
    return ("\r\n".join(lines) + "\r\n").encode() if lines else b""


def _page_headers(meta: dict, url: URL | None) -> dict[str, str]:
    headers = {}
    if meta.get("total") is not None:
        headers["X-Total-Count"] = str(meta["total"])
        headers["X-Total-Kind"] = str(meta.get("total_kind", "exact"))
    following: dict[str, Any] = {}
    if meta.get("next_cursor"):
        headers["X-Next-Cursor"] = following["cursor"] = meta["next_cursor"]
    elif meta.get("next") is not None:
        headers["X-Next-Offset"] = str(meta["next"])
        following["offset"] = meta["next"]
    if following and url is not None:  # a cursor replaces the offset (the two together are a 400)
        headers["Link"] = f'<{url.remove_query_params("offset").include_query_params(**following)}>; rel="next"'
    return headers


def _csv_value(value: Any) -> str:
    """A value as JSON shows it, as CSV text (the import reads each of these forms back)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return _csv_cell(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (dt.date, dt.time)):  # a datetime too
        return value.isoformat()
    return _csv_cell(json_default(value))  # decimals, times, binary (base64), sets


def _json_cell(value: Any) -> str:
    """A JSON column's value as its JSON text: the text as stored when the read asked for it (so the
    JSON value null is `null`, not SQL's NULL), else the value written compactly."""
    if value is None:
        return ""
    if isinstance(value, (bytes, bytearray)):
        value = value.decode()
    return _csv_cell(value if isinstance(value, str) else jsontext.dumps(value).decode())


_SPECIAL = re.compile(r'[,"\r\n]')


def _csv_cell(text: str) -> str:
    """A text cell: quoted when it holds a comma, a quote or a line break, or reads like NULL."""
    if text in LIKE_NULL or _SPECIAL.search(text):
        return '"' + text.replace('"', '""') + '"'
    return text
