"""The response envelope (DESIGN.md), rendered with orjson.

Success: {"timestamp", "message", "data", "retry_count"} (+ "meta" on lists).
Error:   {"timestamp", "status", "error", "message", "details", "retry_count", "request_id"}.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import orjson
from starlette.responses import Response

from app.core import context
from app.core.errors import GatewayError
from app.core.values import json_default


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, default=json_default)


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


def error(exc: GatewayError) -> JSON:
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
    return JSON(body, status_code=exc.status, headers=exc.headers)
