"""Every route the gateway serves, declared once: the dispatcher (app/http/dispatch.py) serves them,
and the OpenAPI document and /docs (app/http/openapi.py) describe them, from this table alone.

Adding a route is one entry here and a handler: a path's literal segments are the gateway's own
names, so a table can never be taken for one of them (a table called like one is served under
/api/tables/{table}/...). The access a route declares is checked before its handler runs.
"""

from __future__ import annotations

from app.api import (
    admin,
    catalog,
    changes,
    console,
    dead_letters,
    docs,
    files,
    health,
    jobs,
    policies,
    rows,
    rules,
    streams,
    token,
)
from app.http import schemas as shape
from app.http.bodies import (
    AggregateBody,
    CallBody,
    CreateBody,
    DeleteBody,
    ExportBody,
    JobBody,
    KeyBody,
    PasswordBody,
    PolicyBody,
    QueryBody,
    UpdateBody,
    UpdateByKeyBody,
    UpdateManyBody,
    UserBody,
)
from app.http.idempotent import IDEMPOTENCY_KEY
from app.http.route import Param, Route
from app.http.validators import IF_MATCH, IF_NONE_MATCH, NOT_MODIFIED
from app.imports.uploads import EXTENSIONS
from app.query.aggregates import FUNCTIONS
from app.query.lists import MAX_ROWS

FORMATS = sorted(set(EXTENSIONS.values()))
LIST = ("limit", "offset", "order", "fields", "cursor", "count")  # the list options (components/parameters)
UPLOAD = (
    Param("table", {"type": "string"}, "the table, when not the file's name", tables="import"),
    Param("mode", {"type": "string", "enum": ["insert", "ignore", "upsert"]}, "what a duplicate key does", "insert"),
    Param(
        "null", {"type": "string", "maxLength": 64},
        "the cell text that means NULL (CSV, TSV, spreadsheets); without it, CSV's standard convention: an unquoted "
        "empty cell or \\N is NULL, a quoted \"\" the empty string (spreadsheets: \\N)",
    ),
    Param("sheet", {"type": "string"}, "spreadsheets: the sheet to read (the first by default)"),
    Param("format", {"type": "string", "enum": FORMATS}, "the file's format, when its extension does not say",
          key="file_format"),
)
AGGREGATE = tuple(
    Param(name, {"type": "string"}, description, parsed=False) for name, description in (
        ("group_by", "comma-separated columns"),
        *((f, "* (rows) or comma-separated columns" if f == "count" else "comma-separated columns") for f in FUNCTIONS),
        ("having", "result.op.value: count.gt.10, sum_salary.gte.1000"),
        ("order", "result names: count.desc,department"),
    )
) + (
    Param("limit", {"type": "integer", "minimum": 1}, parsed=False),
    Param("offset", {"type": "integer", "minimum": 0, "maximum": MAX_ROWS}, parsed=False),
)
EXPORT_FILE = (
    Param("format", {"type": "string", "enum": ["csv", "jsonl", "xlsx", "parquet"]},
          "csv (the default), jsonl, xlsx or parquet", "csv",
          key="export_format"),
    Param("null", {"type": "string", "maxLength": 64},
          "CSV: the text NULL is written as (\\N for MySQL's tools); without it an empty cell, and '' as \"\""),
)
EXPORT = (
    *EXPORT_FILE,
    Param("limit", {"type": "integer", "minimum": 1, "maximum": MAX_ROWS}, parsed=False),
    Param("offset", {"type": "integer", "minimum": 0, "maximum": MAX_ROWS}, parsed=False),
    Param("order", {"type": "string"}, "col.asc,other.desc", parsed=False),
    Param("fields", {"type": "string"}, "a,b", parsed=False),
)
FILE_MEDIA = (
    "text/csv", "application/x-ndjson", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.apache.parquet",
)
JOB_STATES = ["uploading", "queued", "running", "succeeded", "failed", "cancelled"]
PREFER = Param(
    "Prefer", {"type": "string"},
    "return=minimal (or headers-only): no row read back, 204 (POST: 201 and, for one row, its Location)",
    where="header", parsed=False,
)
PREFER_CREATE = Param(
    "Prefer", {"type": "string"},
    "return=minimal (or headers-only): 201 with no body and, for one row, its Location; "
    "resolution=merge-duplicates: a row whose key (any unique key) exists updates the columns given; "
    "resolution=ignore-duplicates: it is left as it is, and answered as stored",
    where="header", parsed=False,
)
KEYED = (IDEMPOTENCY_KEY, PREFER)
BY_KEY = (*KEYED, IF_MATCH)  # a write by key may be conditional on the row's ETag
PAGE = (
    Param("limit", {"type": "integer", "minimum": 1, "maximum": 1000}, default=100),
    Param("offset", {"type": "integer", "minimum": 0, "maximum": 1_000_000}, default=0),
)
NO_CONTENT = ((204, None),)  # Prefer: return=minimal

# Each entry: method, path, handler, summary, access, operation name; then what it takes and answers.
ROUTES: tuple[Route, ...] = (
    # --- a table's rows ---
    Route("GET", "/api/{table}/query", rows.list_rows,
          "List rows (query-string filters)", "read", "list",
          options=LIST, filters=True, params=(IF_NONE_MATCH,), answer=shape.rows, listing=True, negotiated=True,
          also=NOT_MODIFIED, errors=(406,)),
    Route("POST", "/api/{table}/query", rows.query_rows,
          "List rows (JSON filter)", "read", "query",
          body=QueryBody, params=(IF_NONE_MATCH,), request=shape.named("Query"), answer=shape.rows, listing=True,
          negotiated=True, also=NOT_MODIFIED, errors=(406,)),
    Route("GET", "/api/{table}/aggregate", rows.aggregate_rows,
          "Aggregates by group (query-string filters)", "read", "aggregate",
          params=AGGREGATE, filters=True, answer=shape.named("Groups"), listing=True),
    Route("POST", "/api/{table}/aggregate", rows.aggregate_query,
          "Aggregates by group (JSON filter)", "read", "aggregate_query",
          body=AggregateBody, request=shape.named("Aggregate"), answer=shape.named("Groups"), listing=True),
    Route("POST", "/api/{table}", rows.create_rows,
          "Create one row or many", "write", "create",
          body=CreateBody, params=(IDEMPOTENCY_KEY, PREFER_CREATE), status=201, request=shape.new_rows,
          answer=shape.row_or_rows,
          errors=(409, 413, 422)),
    Route("PUT", "/api/{table}", rows.update_rows,
          "Update the rows matching a filter", "write", "update",
          body=UpdateBody, params=KEYED, request=shape.changes, answer=shape.affected,
          also=NO_CONTENT, errors=(409, 413, 422)),
    Route("PATCH", "/api/{table}", rows.update_many,
          "Update rows by their keys, each with its own values, in one transaction", "write", "update_many",
          body=UpdateManyBody, params=KEYED, request=shape.keyed_changes, answer=shape.named("Patched"),
          also=NO_CONTENT, errors=(409, 413, 422)),
    Route("DELETE", "/api/{table}", rows.delete_rows,
          "Delete the rows matching a filter", "write", "delete",
          body=DeleteBody, params=KEYED, request=shape.named("Delete"), answer=shape.affected,
          also=NO_CONTENT, errors=(409, 422)),
    Route("GET", "/api/{table}/{key}", rows.get_row,
          "Get one row by primary key (a,b for composite keys)", "read", "get",
          params=(Param("fields", {"type": "string"}, "a,b", parsed=False), IF_NONE_MATCH), answer=shape.row,
          negotiated=True, also=NOT_MODIFIED, errors=(406, 422)),
    Route("PUT", "/api/{table}/{key}", rows.update_row,
          "Update one row by primary key", "write", "update_by_key",
          body=UpdateByKeyBody, params=BY_KEY, request=shape.changes_by_key, answer=shape.row,
          also=NO_CONTENT, errors=(409, 412, 422)),
    Route("PATCH", "/api/{table}/{key}", rows.update_row,
          "Update one row by primary key (as PUT by key)", "write", "patch_by_key",
          body=UpdateByKeyBody, params=BY_KEY, request=shape.changes_by_key, answer=shape.row,
          also=NO_CONTENT, errors=(409, 412, 422)),
    Route("DELETE", "/api/{table}/{key}", rows.delete_row,
          "Delete one row by primary key", "write", "delete_by_key",
          params=BY_KEY, answer=shape.affected, also=NO_CONTENT, errors=(409, 412, 422)),
    Route("WS", "/api/{table}/ws", streams.stream,
          "Rows into the table as messages, each answered once committed, an id applied once", "import", "stream",
          params=(Param("mode", {"type": "string", "enum": ["insert", "upsert"]}, parsed=False),)),
    Route("GET", "/api/{table}/changes", changes.changes,
          "The table's committed changes as they happen (Server-Sent Events from the binlog), filtered as /query",
          "read", "changes", tag="changes", filters=True, media=("text/event-stream",), params=(
              Param("after", {"type": "string"}, "the position to go on after (an event's id: file:offset:index)",
                    parsed=False),
              Param("Last-Event-ID", {"type": "string"}, "as after= (what EventSource sends when it reconnects)",
                    where="header", parsed=False),
          ), errors=(410,)),
    Route("WS", "/api/{table}/changes/ws", changes.changes_ws,
          "The table's committed changes as they happen, as WebSocket messages", "read", "changes_ws",
          params=(Param("after", {"type": "string"}, parsed=False),)),
    # --- row policies ---
    Route("GET", "/api/policies/{table}", policies.get_policy,
          "The table's row policy: the column each caller sees its own rows by", "admin", "get_policy",
          answer=shape.named("Policy"), errors=(404,)),
    Route("PUT", "/api/policies/{table}", policies.put_policy,
          "Bind a column to a claim of the caller: reads see, and writes touch, only the rows holding it",
          "admin", "put_policy", body=PolicyBody, answer=shape.named("Policy")),
    Route("DELETE", "/api/policies/{table}", policies.remove_policy,
          "Remove the table's row policy", "admin", "remove_policy", errors=(404,)),
    # --- stored procedures and functions ---
    Route("POST", "/api/rpc/{name}", rows.call_routine,
          "Call a stored procedure (its result sets as rows) or function (its value) with named arguments",
          "caller", "call", tag="rpc", body=CallBody,
          request=shape.inline("Call", {"type": "object", "properties": {"input": {
              "type": "object", "description": "the arguments by name (GET /api/tables lists each routine's)"}},
              "additionalProperties": False}),
          answer=shape.inline("Called", {"description": "a function's value, or a procedure's first result set's rows "
                                                        "(meta.more: the others; meta.out: OUT and INOUT values)"}),
          errors=(403, 404, 409, 422)),
    # --- the catalog and the rules ---
    Route("GET", "/api/tables", catalog.list_tables,
          "List exposed tables (those the caller may read)", "caller", "list_tables",
          tag="catalog", answer=shape.inline("Tables", {"type": "array", "items": {"type": "object"}})),
    Route("GET", "/api/tables/{table}", catalog.describe_table,
          "Describe one table: columns, types, keys", "read", "describe",
          answer=shape.named("Table")),
    Route("GET", "/api/schemas/{table}", rules.get_rules,
          "The table's current rules (a JSON Schema) and its versions", "read", "get_rules",
          answer=shape.named("Rules")),
    Route("PUT", "/api/schemas/{table}", rules.put_rules,
          "Store a JSON Schema (Draft 2020-12) for the table's rows, as a new version", "write", "put_rules",
          request=shape.inline("JsonSchema", {"type": "object", "description": "a JSON Schema for the table's rows"}),
          answer=shape.named("Rules"), errors=(409,)),
    Route("DELETE", "/api/schemas/{table}", rules.remove_rules,
          "Remove the current version: the one before is current again (none left: no rules)", "write", "remove_rules",
          answer=shape.maybe("Rules")),
    # --- files ---
    Route("POST", "/api/batch/import", files.import_file,
          "Import a file (CSV, TSV, XLSX, XLS, ODS, JSON Lines, JSON, Parquet) into the table named after it"
          " (or ?table=)",
          "caller", "import_file",
          tag="batch", checks="import", params=(
              *UPLOAD,
              Param("atomic", {"type": "boolean"}, "all rows or none", False),
              Param("async", {"type": "boolean"},
                    "store the file and answer 202 with a job to follow (also: Prefer: respond-async)", False,
                    key="asynchronous"),
              Param("Idempotency-Key", IDEMPOTENCY_KEY.schema,
                    "with atomic=true: the import applies once; a resend replays its report",
                    where="header", parsed=False),
              Param("Prefer", {"type": "string"}, "respond-async: as ?async=true", where="header", parsed=False),
          ), request=shape.upload, answer=shape.named("ImportReport"),
          also=((202, shape.named("Job")),), errors=(409, 413, 415, 422)),
    Route("POST", "/api/batch/validate", files.validate_file,
          "Check a file as an import would, writing nothing", "caller", "validate_file",
          tag="batch", checks="import", params=UPLOAD, request=shape.upload, answer=shape.named("ImportReport"),
          errors=(413, 415)),
    Route("GET", "/api/batch/{table}/export", files.export_table,
          "Stream a table out as CSV, JSON Lines, XLSX or Parquet (same filters as /query)", "export", "export",
          params=EXPORT, filters=True, media=FILE_MEDIA, errors=(413, 422)),
    Route("POST", "/api/batch/{table}/export", files.export_query,
          "Stream a table out, its rows picked by a JSON filter (as POST /query: `or` and `and` groups)",
          "export", "export_query", body=ExportBody, params=EXPORT_FILE, request=shape.named("ExportQuery"),
          media=FILE_MEDIA, errors=(413, 422)),
    # --- import jobs ---
    Route("POST", "/api/batch/jobs", jobs.create_job,
          "Start an import job that reads its file from S3-compatible storage (allowed buckets only)",
          "caller", "create_job",
          tag="jobs", checks="import", body=JobBody, status=202, answer=shape.named("Job"), errors=(502,)),
    Route("GET", "/api/batch/jobs", jobs.list_jobs,
          "Jobs on the tables the caller may import into, newest first", "caller", "list_jobs",
          tag="jobs", checks="import", params=(
              Param("state", {"type": "string", "enum": JOB_STATES}, "only jobs in this state"),
              Param("table", {"type": "string"}, "only jobs on this table"),
              Param("limit", {"type": "integer", "minimum": 1, "maximum": 1000}, default=100),
          ), answer=shape.inline("Jobs", {"type": "array", "items": shape.ref("Job")})),
    Route("GET", "/api/batch/jobs/{job_id}", jobs.get_job,
          "A job's state, progress, errors so far, and its report when it ends", "caller", "get_job",
          tag="jobs", checks="import", answer=shape.named("Job")),
    Route("DELETE", "/api/batch/jobs/{job_id}", jobs.cancel_job,
          "Cancel a job: committed batches stay and are reported", "caller", "cancel_job",
          tag="jobs", checks="import", answer=shape.named("Job"), errors=(409,)),
    Route("GET", "/api/batch/jobs/{job_id}/events", jobs.job_events,
          "A job's progress as Server-Sent Events (`progress`, then `end`)", "caller", "job_events",
          tag="jobs", checks="import", media=("text/event-stream",)),
    # --- what broker streams could not apply ---
    Route("GET", "/api/batch/dead-letters", dead_letters.list_dead_letters,
          "Messages a broker stream could not apply, with the reason, newest first", "caller", "dead_letters",
          tag="streams", checks="import", params=(
              Param("table", {"type": "string"}, "only this table's", tables="import"),
              Param("source", {"type": "string"}, "only this source's (kafka:GROUP:TOPIC, amqp:QUEUE, nats:...)"),
              Param("before", {"type": "integer", "minimum": 1}, "ids below this one (next page: the last id)"),
              Param("limit", {"type": "integer", "minimum": 1, "maximum": 1000}, default=100),
          ), answer=shape.inline("DeadLetters", {"type": "array", "items": {"type": "object"}})),
    # --- accounts, keys and tokens (scope `admin`) ---
    Route("POST", "/token", token.token,
          "OAuth2 token endpoint (form-encoded): password, client_credentials and refresh_token grants",
          "open", "token", tag="accounts", request=shape.token_form, answer=shape.token_answer, raw=True,
          errors=(400, 401, 403, 404, 429)),
    Route("POST", "/api/admin/keys", admin.create_key,
          "Create an API key (`gw_...`): answered once, only its Argon2 hash is kept", "manage", "create_key",
          tag="accounts", body=KeyBody, status=201, answer=shape.named("Credential"), errors=(403,)),
    Route("GET", "/api/admin/keys", admin.list_keys,
          "API keys, live and revoked (never a secret)", "manage", "list_keys",
          tag="accounts", params=PAGE, answer=shape.inline("Credentials", {"type": "array", "items": shape.ref(
              "Credential")})),
    Route("DELETE", "/api/admin/keys/{key_id}", admin.revoke_key,
          "Revoke an API key: every instance refuses it within GATEWAY_ACCOUNTS_TTL_S", "manage", "revoke_key",
          tag="accounts", errors=(404,)),
    Route("POST", "/api/admin/keys/{key_id}/rotate", admin.rotate_key,
          "A new secret for the key (answered once); the old one ends", "manage", "rotate_key",
          tag="accounts", answer=shape.named("Credential"), errors=(404,)),
    Route("POST", "/api/admin/users", admin.create_user,
          "Create a user who logs in at POST /token (password grant)", "manage", "create_user",
          tag="accounts", body=UserBody, status=201, answer=shape.named("Credential"), errors=(403, 409)),
    Route("GET", "/api/admin/users", admin.list_users,
          "Users, live and revoked", "manage", "list_users",
          tag="accounts", params=PAGE, answer=shape.inline("Credentials", {"type": "array", "items": shape.ref(
              "Credential")})),
    Route("DELETE", "/api/admin/users/{user}", admin.revoke_user,
          "Revoke a user: its access and refresh tokens end", "manage", "revoke_user",
          tag="accounts", errors=(404,)),
    Route("POST", "/api/admin/users/{user}/rotate", admin.rotate_user,
          "Set a user's new password: its access and refresh tokens end", "manage", "rotate_user",
          tag="accounts", body=PasswordBody, errors=(404,)),
    Route("GET", "/api/admin/audit", admin.read_audit,
          "The audit trail: who changed which rows, rules, policies and keys, newest first", "audit", "read_audit",
          tag="accounts", params=(
              Param("table", {"type": "string", "maxLength": 64}, "only this table's entries"),
              Param("subject", {"type": "string", "maxLength": 255}, "only this caller's entries"),
              Param("since", {"type": "string", "format": "date-time", "maxLength": 40}, "from this time (UTC)"),
              Param("until", {"type": "string", "format": "date-time", "maxLength": 40}, "before this time (UTC)"),
              *PAGE,
          ), answer=shape.inline("AuditEntries", {"type": "array", "items": shape.ref("AuditEntry")}), errors=(404,)),
    # --- the service ---
    Route("GET", "/health/live", health.live,
          "The process answers", "open", "live",
          tag="health", answer=shape.inline("Live", {"type": "object"})),
    Route("GET", "/health/ready", health.ready,
          "The database answers and the catalog is loaded", "open", "ready",
          tag="health", answer=shape.inline("Ready", {"type": "object"}), errors=(503,)),
    Route("GET", "/metrics", health.metrics,
          "Prometheus metrics (text format)", "open", "metrics",
          tag="health", media=("text/plain",)),
    Route("GET", "/openapi.json", docs.openapi, "This document, for the caller", "caller", "openapi", documented=False),
    Route("GET", "/docs", docs.page, "Swagger UI", "open", "docs", documented=False),
    Route("GET", "/console", console.page, "The web console (it calls this API)", "open", "console", documented=False),
)
