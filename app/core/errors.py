"""Every public error: an HTTP status and a stable error code (DESIGN.md), in one list.

Internal control-flow signals (a batch that must take another write path, say) are plain exceptions
next to the code that raises and catches them: they never reach a client, so they carry no code.
"""

from __future__ import annotations

from typing import Any


class GatewayError(Exception):
    status = 500
    code = "internal_error"

    def __init__(self, message: str, details: Any = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.details = details
        self.headers = headers or {}


class TableNotFound(GatewayError):
    status, code = 404, "table_not_found"


class RowNotFound(GatewayError):
    status, code = 404, "row_not_found"


class UnknownColumn(GatewayError):
    status, code = 400, "unknown_column"


class InvalidFilter(GatewayError):
    status, code = 400, "invalid_filter"


class WhereRequired(GatewayError):
    status, code = 400, "where_required"


class InvalidBody(GatewayError):
    status, code = 400, "invalid_body"


class InvalidValue(GatewayError):
    status, code = 422, "invalid_value"


class MissingColumn(GatewayError):
    status, code = 422, "missing_column"


class Conflict(GatewayError):
    status, code = 409, "conflict"


class PayloadTooLarge(GatewayError):
    status, code = 413, "payload_too_large"


class ServiceUnavailable(GatewayError):
    status, code = 503, "service_unavailable"


class GatewayTimeout(GatewayError):
    status, code = 504, "gateway_timeout"


class CommitOutcomeUnknown(GatewayError):
    status, code = 504, "commit_outcome_unknown"


class InternalError(GatewayError):
    status, code = 500, "internal_error"


class DatabaseError(Exception):
    """A server or connection error, translated from whatever the driver raised.

    `code` is the MySQL error number (1062, 2013, ...); `database.py` is the only module that
    knows the driver's own exception classes.
    """

    def __init__(self, code: int, message: str):
        super().__init__(code, message)
        self.code = code
        self.message = message
        self.at_commit = False  # answered to COMMIT (the transaction was rolled back)


class PoolExhausted(Exception):
    """No pooled connection became free within the attempt."""


class RouteNotFound(GatewayError):
    status, code = 404, "not_found"


class MethodNotAllowed(GatewayError):
    status, code = 405, "method_not_allowed"


class InvalidCsv(GatewayError):
    status, code = 400, "invalid_csv"


class InvalidHeader(GatewayError):
    status, code = 400, "invalid_header"


class UnsupportedMediaType(GatewayError):
    status, code = 415, "unsupported_media_type"


class ImportRolledBack(GatewayError):
    status, code = 422, "import_rolled_back"


class InvalidSpreadsheet(GatewayError):
    status, code = 400, "invalid_spreadsheet"


class InvalidJson(GatewayError):
    status, code = 400, "invalid_json"


class InvalidSchema(GatewayError):
    status, code = 400, "invalid_schema"


class SchemaNotFound(GatewayError):
    status, code = 404, "schema_not_found"


class IdempotencyKeyReused(GatewayError):
    status, code = 422, "idempotency_key_reused"


class Unauthorized(GatewayError):
    status, code = 401, "unauthorized"

    def __init__(self, message: str, details: Any = None):
        super().__init__(message, details, {"WWW-Authenticate": "Bearer"})


class Forbidden(GatewayError):
    status, code = 403, "forbidden"


class RateLimited(GatewayError):
    status, code = 429, "rate_limited"


class JobNotFound(GatewayError):
    status, code = 404, "job_not_found"


class JobEnded(GatewayError):
    status, code = 409, "job_ended"


class InvalidSource(GatewayError):
    """A job's `source` is not a URL the gateway reads (s3://bucket/key)."""

    status, code = 400, "invalid_source"


class SourceNotAllowed(GatewayError):
    """The bucket is not in GATEWAY_S3_BUCKETS."""

    status, code = 403, "source_not_allowed"


class SourceNotFound(GatewayError):
    status, code = 404, "source_not_found"


class SourceUnavailable(GatewayError):
    """The object store refused the gateway (credentials) or did not answer."""

    status, code = 502, "source_unavailable"


class UploadInterrupted(GatewayError):
    """An async upload stopped before the whole file arrived (a job's `error`, not a response)."""

    status, code = 400, "upload_interrupted"


class InvalidAggregate(GatewayError):
    """An aggregate request that does not make sense: an unknown function, a sum over text, a
    `having` or `order` naming no result column."""

    status, code = 400, "invalid_aggregate"


class InvalidCursor(GatewayError):
    status, code = 400, "invalid_cursor"
