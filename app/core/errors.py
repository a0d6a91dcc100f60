"""Every public error, in one registry: an HTTP status, a stable code and when it happens. The
error envelope (docs/api.md), the OpenAPI document's responses and the table of codes in the docs
are all made from `ERRORS`.

Internal control-flow signals (a batch that must take another write path, say) are plain exceptions
next to the code that raises and catches them: they never reach a client, so they carry no code.
"""

from __future__ import annotations

from typing import Any


class GatewayError(Exception):
    """Anything else: a 500 that shows nothing internal (the cause is logged)."""

    status = 500
    code = "internal_error"

    def __init__(self, message: str, details: Any = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.details = details
        self.headers = headers or {}


# --- 400: the request is not one the gateway can read --------------------------------------------

class InvalidBody(GatewayError):
    """The body is not JSON, not the route's shape, or a parameter is not one the route takes."""

    status, code = 400, "invalid_body"


class UnknownColumn(GatewayError):
    """A column the table does not have (in a filter, the fields, the order, a body)."""

    status, code = 400, "unknown_column"


class UnknownRelation(UnknownColumn):
    """An embedded or filtered-by relation (`customer(...)`, `?customer.country=`) the table does not
    have: no foreign key between it and an exposed table goes by that name."""

    status, code = 400, "unknown_relation"


class AmbiguousRelation(GatewayError):
    """A relation's name that selects several foreign keys (two keys to one table): the answer lists
    a `name!hint` for each."""

    status, code = 400, "ambiguous_relation"


class InvalidFilter(GatewayError):
    """A filter, an operator, a limit, an offset or an order that cannot be read."""

    status, code = 400, "invalid_filter"


class WhereRequired(GatewayError):
    """An update or delete with an empty filter (every row): refused."""

    status, code = 400, "where_required"


class InvalidAggregate(GatewayError):
    """An aggregate that does not make sense: an unknown function, a sum over text, a `having` or
    `order` naming no result column."""

    status, code = 400, "invalid_aggregate"


class InvalidCursor(GatewayError):
    """A cursor the gateway did not make, or made for another order."""

    status, code = 400, "invalid_cursor"


class InvalidPosition(GatewayError):
    """A change feed's position (`after=`, `Last-Event-ID`) that is not one the feed gives: file:offset:index."""

    status, code = 400, "invalid_position"


class InvalidCsv(GatewayError):
    """A CSV file that cannot be read (a quote that never ends, not UTF-8), or no file name."""

    status, code = 400, "invalid_csv"


class InvalidHeader(GatewayError):
    """A file's header (or a JSON file's first object) that does not fit the table: unknown,
    duplicate or missing required columns."""

    status, code = 400, "invalid_header"


class InvalidSpreadsheet(GatewayError):
    """A spreadsheet that cannot be read: corrupt, protected, no such sheet, an empty sheet."""

    status, code = 400, "invalid_spreadsheet"


class InvalidJson(GatewayError):
    """A JSON or JSON Lines file that is not an array of objects, or one object a line."""

    status, code = 400, "invalid_json"


class InvalidParquet(GatewayError):
    """A Parquet file that cannot be read (not Parquet, corrupt, or a row group that cannot be decoded)."""

    status, code = 400, "invalid_parquet"


class InvalidSchema(GatewayError):
    """A table's rules that are not a Draft 2020-12 JSON Schema for its rows."""

    status, code = 400, "invalid_schema"


class InvalidSource(GatewayError):
    """A job's `source` that is not a URL the gateway reads (s3://bucket/key)."""

    status, code = 400, "invalid_source"


class UploadInterrupted(GatewayError):
    """An async upload that stopped before the whole file arrived (a job's error)."""

    status, code = 400, "upload_interrupted"


# --- 401, 403, 429: who calls -----------------------------------------------------------------------

class Unauthorized(GatewayError):
    """No valid credentials."""

    status, code = 401, "unauthorized"

    def __init__(self, message: str, details: Any = None):
        super().__init__(message, details, {"WWW-Authenticate": "Bearer"})


class Forbidden(GatewayError):
    """The credentials lack the scope (`action:table`)."""

    status, code = 403, "forbidden"


class SourceNotAllowed(GatewayError):
    """A job's bucket is not in GATEWAY_S3_BUCKETS."""

    status, code = 403, "source_not_allowed"


class RateLimited(GatewayError):
    """Over the caller's rate for the action (Retry-After says when)."""

    status, code = 429, "rate_limited"


# --- 404, 405, 409: what is asked for ------------------------------------------------------------

class TableNotFound(GatewayError):
    """No such table, or not exposed."""

    status, code = 404, "table_not_found"


class RowNotFound(GatewayError):
    """No row with that key."""

    status, code = 404, "row_not_found"


class RoutineNotFound(GatewayError):
    """No such stored procedure or function, or not exposed."""

    status, code = 404, "routine_not_found"


class RouteNotFound(GatewayError):
    """No such route (or a table whose name the gateway's routes take: the message names the path
    to use)."""

    status, code = 404, "not_found"


class SchemaNotFound(GatewayError):
    """The table has no rules."""

    status, code = 404, "schema_not_found"


class JobNotFound(GatewayError):
    """No such job, or not one the caller may see."""

    status, code = 404, "job_not_found"


class SourceNotFound(GatewayError):
    """A job's object is not in the bucket."""

    status, code = 404, "source_not_found"


class MethodNotAllowed(GatewayError):
    """The path exists, the method does not (Allow says which do)."""

    status, code = 405, "method_not_allowed"


class NotAcceptable(GatewayError):
    """A read whose Accept header takes none of JSON, CSV and JSON Lines (details.available)."""

    status, code = 406, "not_acceptable"


class Conflict(GatewayError):
    """A duplicate key or a foreign key conflict; two changes of a table's rules at once."""

    status, code = 409, "conflict"


class JobEnded(GatewayError):
    """Cancelling a job that has ended."""

    status, code = 409, "job_ended"


class PreconditionFailed(GatewayError):
    """A write by key with `If-Match` whose ETag is not the row's current one: the row changed since
    it was read (details.etag is the current one). Nothing was written."""

    status, code = 412, "precondition_failed"


# --- 413, 415, 422: the content ---------------------------------------------------------------------

class PayloadTooLarge(GatewayError):
    """A body, a file, a bulk request or an export past its limit."""

    status, code = 413, "payload_too_large"


class UnsupportedMediaType(GatewayError):
    """An upload that is not multipart/form-data, or a file that is not what its name says."""

    status, code = 415, "unsupported_media_type"


class InvalidValue(GatewayError):
    """A value that does not fit its column (the column and the reason are named), or that breaks
    the table's rules (the rule is named)."""

    status, code = 422, "invalid_value"


class MissingColumn(GatewayError):
    """A required column (NOT NULL, no default) left out of a row."""

    status, code = 422, "missing_column"


class ImportRolledBack(GatewayError):
    """An atomic import with bad rows: nothing was written; the report says which and why."""

    status, code = 422, "import_rolled_back"


class IdempotencyKeyReused(GatewayError):
    """An Idempotency-Key sent again with another request."""

    status, code = 422, "idempotency_key_reused"


# --- 5xx: the database or a source is away --------------------------------------------------------

class InternalError(GatewayError):
    """An error the gateway did not expect: nothing internal is shown, it is logged."""

    status, code = 500, "internal_error"


class PositionGone(GatewayError):
    """The binlog no longer holds the change feed's position (purged past its retention): re-read
    the table, then follow the feed from `details.position`, taken before the re-read."""

    status, code = 410, "position_gone"


class SourceUnavailable(GatewayError):
    """The object store refused the gateway's credentials or did not answer (a job's source)."""

    status, code = 502, "source_unavailable"


class ServiceUnavailable(GatewayError):
    """The database could not be reached through the whole retry schedule (Retry-After), or refuses
    the gateway's own setup."""

    status, code = 503, "service_unavailable"


class FeedUnavailable(GatewayError):
    """The change feed cannot read the database's binlog: off, not ROW with full images and column
    metadata, or the grants are missing (`details.reason`; /health/ready says the same)."""

    status, code = 503, "feed_unavailable"


class GatewayTimeout(GatewayError):
    """The database did not answer in time, through the whole retry schedule."""

    status, code = 504, "gateway_timeout"


class CommitOutcomeUnknown(GatewayError):
    """A COMMIT (or a write that commits by itself) got no answer: the write may or may not have
    applied (with an Idempotency-Key the gateway finds out instead)."""

    status, code = 504, "commit_outcome_unknown"


# Every public error, by status: what clients may meet.
ERRORS: tuple[type[GatewayError], ...] = (
    InvalidBody, UnknownColumn, UnknownRelation, AmbiguousRelation, InvalidFilter, WhereRequired,
    InvalidAggregate, InvalidCursor, InvalidPosition, InvalidCsv,
    InvalidHeader, InvalidSpreadsheet, InvalidJson, InvalidParquet, InvalidSchema, InvalidSource, UploadInterrupted,
    Unauthorized, Forbidden, SourceNotAllowed, TableNotFound, RowNotFound, RoutineNotFound,
    RouteNotFound, SchemaNotFound,
    JobNotFound, SourceNotFound, MethodNotAllowed, NotAcceptable, Conflict, JobEnded, PositionGone,
    PreconditionFailed, PayloadTooLarge,
    UnsupportedMediaType, InvalidValue, MissingColumn, ImportRolledBack, IdempotencyKeyReused, RateLimited,
    InternalError, SourceUnavailable, ServiceUnavailable, FeedUnavailable, GatewayTimeout, CommitOutcomeUnknown,
)


def meaning(error: type[GatewayError]) -> str:
    """When the error happens, in one line (its docstring)."""
    return " ".join((error.__doc__ or "").split())


def by_status() -> dict[int, list[type[GatewayError]]]:
    found: dict[int, list[type[GatewayError]]] = {}
    for error in ERRORS:
        found.setdefault(error.status, []).append(error)
    return dict(sorted(found.items()))


class DatabaseError(Exception):
    """A server or connection error, translated from whatever the driver raised.

    `code` is the MySQL error number (1062, 2013, ...); app/db/driver.py is the only module that
    knows the driver's own exception classes.
    """

    def __init__(self, code: int, message: str):
        super().__init__(code, message)
        self.code = code
        self.message = message
        self.at_commit = False  # answered to COMMIT (the transaction was rolled back)


class PoolExhausted(Exception):
    """No pooled connection became free within the attempt."""
