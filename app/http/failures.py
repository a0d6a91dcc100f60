"""Exceptions -> the error envelope. Nothing internal (SQL, stack traces) reaches a client."""

from __future__ import annotations

import logging

from pydantic import ValidationError
from pydantic_core import ErrorDetails
from starlette.requests import Request
from starlette.responses import Response

from app.core.errors import GatewayError, InternalError, InvalidBody
from app.http.envelope import error

log = logging.getLogger("gateway.errors")


def body_problem(exc: ValidationError) -> InvalidBody:
    """A body that does not have the route's shape: each problem with where it is (at most 20)."""
    problems = [
        {"where": ".".join(str(p) for p in ("body", *e.get("loc", ()))), "problem": _problem(e)}
        for e in exc.errors()[:20]
    ]
    first = problems[0] if problems else {"where": "body", "problem": "not valid"}
    return InvalidBody(f"the request body is not valid: {first['where']}: {first['problem']}", problems)


def _problem(error: ErrorDetails) -> str:
    cause = (error.get("ctx") or {}).get("error")
    return f"{error.get('msg', '')}: {cause}" if isinstance(cause, str) else str(error.get("msg", ""))


def failure(request: Request, exc: Exception) -> Response:
    """The error envelope for an exception a route raised: its own code for a GatewayError, else a
    500 that shows nothing internal (the exception is logged)."""
    if isinstance(exc, GatewayError):
        return error(exc)
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error(InternalError("internal error"))
