"""HTTP validators (RFC 9110, sections 8.8 and 13): a read's strong ETag, `If-None-Match` (304) on
reads and `If-Match` (412) on writes by key. Pure: no I/O.

An ETag is a hash of what the answer shows: its media type and its body without what changes on
every answer (the envelope's `timestamp` and `retry_count`), so the same rows give the same ETag on
every instance and from the cache. A row's ETag is the one GET /api/{table}/{key} gives in JSON
without `fields`, so a client sends back as `If-Match` the ETag it read.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from typing import Any

from app.core import jsontext
from app.core.errors import PreconditionFailed
from app.http.route import Param
from app.rows.values import json_default

JSON = "application/json"
# A read with an ETag may be kept by the client (never by a shared proxy: rows depend on the
# caller), but only to be revalidated: every use sends If-None-Match.
REVALIDATE = "private, no-cache"
IF_NONE_MATCH = Param(
    "If-None-Match", {"type": "string"},
    "an ETag of an earlier answer (or several, or *): 304 with no body when the answer is still the same",
    where="header", parsed=False,
)
IF_MATCH = Param(
    "If-Match", {"type": "string"},
    "the row's ETag as GET by key gave it (JSON, no fields), or *: the write happens only if the row is "
    "still that one (412 precondition_failed otherwise, with the current ETag); * only needs the row to exist",
    where="header", parsed=False,
)
NOT_MODIFIED = ((304, None),)  # If-None-Match matched: no body
_TAG = re.compile(r'\s*(W/)?"([\x21\x23-\x7e\x80-\xff]*)"\s*(?:,|$)')

Check = Callable[[dict], None]  # runs on the row, locked, inside a write's transaction: raises to refuse


def etag(media_type: str, *parts: bytes) -> str:
    """A strong ETag over the media type and the parts (each length-prefixed: no two splits collide)."""
    digest = hashlib.blake2b(media_type.encode(), digest_size=12)
    for part in parts:
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return f'"{digest.hexdigest()}"'


def json_etag(message: bytes, data: bytes, meta: bytes | None) -> str:
    """The ETag of an envelope answer, from its serialized `message`, `data` and `meta`."""
    return etag(JSON, message, data, meta or b"")


OK = jsontext.dumps("ok")  # the message of GET by key


def row_etag(row: dict[str, Any]) -> str:
    """The ETag GET by key gives the row in JSON (the whole row, as JSON shows its values)."""
    return json_etag(OK, jsontext.dumps(row, json_default), None)


def tags(header: str) -> list[tuple[bool, str]] | None:
    """The entity tags of an If-Match or If-None-Match header as (weak, opaque tag) pairs; None for
    `*`. A header that cannot be read holds no tag (it matches nothing)."""
    if header.strip() == "*":
        return None
    found: list[tuple[bool, str]] = []
    at = 0
    while at < len(header):
        match = _TAG.match(header, at)
        if match is None:
            return found
        found.append((match.group(1) is not None, match.group(2)))
        at = match.end()
    return found


def none_match(header: str | None, current: str) -> bool:
    """Does If-None-Match take `current` (weak comparison: W/ is ignored)? Then the answer is 304."""
    if header is None:
        return False
    listed = tags(header)
    return listed is None or any(f'"{tag}"' == current for _, tag in listed)


def if_match(header: str | None) -> Check | None:
    """If-Match as a check on the current row (strong comparison: a weak tag never matches); None
    without the header. `*`: any current row."""
    if header is None:
        return None
    listed = tags(header)

    def check(row: dict) -> None:
        if listed is None:
            return
        current = row_etag(row)
        if not any(not weak and f'"{tag}"' == current for weak, tag in listed):
            raise PreconditionFailed(
                "the row changed since it was read (If-Match does not name its current ETag): nothing written",
                {"etag": current},
            )

    return check
