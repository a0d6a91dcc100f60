"""Exceptions -> the error envelope. Nothing internal (SQL, stack traces) reaches a client."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from app.core.errors import (
    GatewayError,
    InternalError,
    InvalidBody,
    MethodNotAllowed,
    PayloadTooLarge,
    RouteNotFound,
)
from app.http.envelope import error

log = logging.getLogger("gateway.errors")


def _body_problem(exc: RequestValidationError) -> GatewayError:
    problems = [
        {"where": ".".join(str(p) for p in e.get("loc", ())), "problem": _problem(e)}
        for e in exc.errors()[:20]
    ]
    return InvalidBody("the request body is not valid", problems)


def _problem(error: dict) -> str:
    cause = (error.get("ctx") or {}).get("error")
    return f"{error.get('msg', '')}: {cause}" if isinstance(cause, str) else str(error.get("msg", ""))


def failure(request: Request, exc: Exception) -> Response:
    """The error envelope for an exception a route raised: its own code for a GatewayError, else a
    500 that shows nothing internal (the exception is logged). Also used by routes/fast.py."""
    if isinstance(exc, GatewayError):
        return error(exc)
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error(InternalError("internal error"))


def install(app: FastAPI) -> None:
    @app.exception_handler(GatewayError)
    async def gateway_error(request: Request, exc: GatewayError):  # type: ignore[no-untyped-def]
        return failure(request, exc)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError):  # type: ignore[no-untyped-def]
        return error(_body_problem(exc))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):  # type: ignore[no-untyped-def]
        if exc.status_code == 404:
            return error(RouteNotFound("no such route", {"path": request.url.path}))
        if exc.status_code == 405:
            return error(MethodNotAllowed(f"{request.method} is not allowed here"))
        if exc.status_code == 413:
            return error(PayloadTooLarge(str(exc.detail)))
        return error(InvalidBody(str(exc.detail)))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):  # type: ignore[no-untyped-def]
        return failure(request, exc)
