"""The response envelope (docs/contract.md), rendered with orjson.

Success: {"timestamp", "message", "data", "retry_count"} (+ "meta" on lists).
Error:   {"timestamp", "status", "error", "message", "details", "retry_count", "request_id"}.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import orjson
from starlette.responses import Response

from app.core import context, jsontext
from app.core.echo import shown
from app.core.errors import GatewayError
from app.rows.values import json_default


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        # Exact whatever the data holds: a stored rule or a job's options may hold an integer past 64 bits.
        return jsontext.dumps(content, json_default)


def success(data: Any, message: str = "ok", *, status: int = 200, meta: dict | None = None) -> JSON:
    body: dict[str, Any] = {
        "timestamp": _now(),
        "message": message,
        "data": data,
        "retry_count": context.current().retry_count,
    }
    if meta is not None:
        body["meta"] = meta
    return JSON(body, status_code=status)


def error(exc: GatewayError) -> Response:
    state = context.current()
    body = {
        "timestamp": _now(),
        "status": exc.status,
        "error": exc.code,
        "message": exc.message,
        "details": exc.details,
        "retry_count": state.retry_count,
        "request_id": state.request_id,
    }
    try:
        content = jsontext.dumps(body, json_default)
    except (orjson.JSONEncodeError, TypeError, ValueError):
        # Details echo what the caller sent (an integer past 64 bits, a lone surrogate, ...): an error
        # about bad input must never itself fail to render.
        content = orjson.dumps(printable(body))
    return Response(content, status_code=exc.status, headers=exc.headers, media_type="application/json")


def printable(value: Any) -> Any:
    """`value` with everything orjson cannot write made into text (scalars as `echo.shown` makes them)."""
    if isinstance(value, dict):
        return {shown(str(k), _WHOLE): printable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [printable(v) for v in value]
    if isinstance(value, (str, int, float)) or value is None:
        return shown(value, _WHOLE)
    try:
        return printable(json_default(value))
    except TypeError:
        return shown(str(value), _WHOLE)


_WHOLE = 1_000_000  # the envelope's own texts are not cut; what they echo was cut where it was made
