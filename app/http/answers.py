"""A read's answer as the cache keeps it and validators hash it: the media type, the headers, and
the body in the parts that do not change from one answer to the next. A JSON envelope is kept as its
serialized `message`, `data` and `meta` and put together again for each answer with its own
`timestamp` and `retry_count` (the same bytes `envelope.success` writes). Pure: no I/O."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import orjson
from starlette.responses import Response

from app.core import jsontext
from app.http import validators
from app.rows.values import json_default

_VERSION = b"a1"  # the stored form's version: an entry in another form is a miss, never misread


@dataclass(frozen=True, slots=True)
class Answer:
    media_type: str
    body: bytes  # JSON: the serialized `data`; otherwise the whole body (CSV, JSON Lines)
    headers: dict[str, str] = field(default_factory=dict)
    message: bytes | None = None  # JSON only: the serialized `message`
    meta: bytes | None = None  # JSON lists: the serialized `meta`
    etag: str = ""

    @classmethod
    def envelope(
        cls, data: object, message: str = "ok", meta: dict | None = None, headers: dict[str, str] | None = None
    ) -> Answer:
        message_json = jsontext.dumps(message)
        data_json = jsontext.dumps(data, json_default)
        meta_json = jsontext.dumps(meta, json_default) if meta is not None else None
        return cls(validators.JSON, data_json, headers or {}, message_json, meta_json,
                   validators.json_etag(message_json, data_json, meta_json))

    @classmethod
    def raw(cls, body: bytes, media_type: str, headers: dict[str, str]) -> Answer:
        """A body as it is (CSV, JSON Lines): its headers (a list's meta) are part of what it says."""
        shown = orjson.dumps(headers, option=orjson.OPT_SORT_KEYS)
        return cls(media_type, body, headers, etag=validators.etag(media_type, shown, body))

    def response(self, retry_count: int = 0) -> Response:
        headers = self.headers | {"ETag": self.etag, "Cache-Control": validators.REVALIDATE}
        if self.message is None:
            return Response(self.body, media_type=self.media_type, headers=headers)
        now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        parts = [b'{"timestamp":"', now.encode(), b'","message":', self.message, b',"data":', self.body,
                 b',"retry_count":', str(retry_count).encode()]
        if self.meta is not None:
            parts += [b',"meta":', self.meta]
        parts.append(b"}")
        return Response(b"".join(parts), media_type=self.media_type, headers=headers)

    def not_modified(self) -> Response:
        """304: no body, the validator and what the 200 would say about caching and variants."""
        headers = {"ETag": self.etag, "Cache-Control": validators.REVALIDATE}
        if "Vary" in self.headers:
            headers["Vary"] = self.headers["Vary"]
        return Response(status_code=304, headers=headers)

    def dump(self) -> bytes:
        """The stored form: a header line (JSON) and the body."""
        head = {"t": self.media_type, "h": self.headers, "e": self.etag}
        if self.message is not None:
            head["m"] = self.message.decode()
        if self.meta is not None:
            head["x"] = self.meta.decode()
        return _VERSION + orjson.dumps(head) + b"\n" + self.body

    @classmethod
    def load(cls, stored: bytes) -> Answer | None:
        """An answer from its stored form; None for one this version does not read."""
        if not stored.startswith(_VERSION):
            return None
        head_text, newline, body = stored[len(_VERSION):].partition(b"\n")
        try:
            head = orjson.loads(head_text)
        except orjson.JSONDecodeError:
            return None
        if not newline or not isinstance(head, dict):
            return None
        message, meta = head.get("m"), head.get("x")
        return cls(head["t"], body, head["h"], message.encode() if message is not None else None,
                   meta.encode() if meta is not None else None, head["e"])
