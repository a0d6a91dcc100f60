"""OpenAPI that describes the real tables: each exposed table gets its own paths and schemas, built
from its columns (types, nullability, lengths, enums), for what the caller may do. Pure: the
catalog's tables and the caller in, a document out; /openapi.json builds it per request, so it
follows the catalog as it reloads.
"""

from __future__ import annotations

from typing import Any

from app.core.auth import Principal
from app.db.catalog import Column, Table
from app.query.aggregates import AGGREGATE_PARAMS, NUMERIC_KINDS
from app.query.filters import MAX_ROWS, RESERVED_PARAMS

OPERATORS = "eq ne gt gte lt lte like in nin between is_null"
ERRORS = {
    "400": "Bad request: unknown column, bad filter, empty where, malformed body",
    "401": "No valid credentials",
    "403": "The credentials lack the scope",
    "404": "Table or row not found, or not exposed",
    "409": "Duplicate key or foreign key conflict",
    "405": "Method not allowed on this path",
    "413": "Body too large",
    "415": "The upload is not multipart/form-data, or the file is not UTF-8 text",
    "422": "A value does not fit its column, or a required column is missing",
    "429": "Rate limited",
    "502": "The object store (an import job's S3 source) refused the gateway or did not answer",
    "503": "Database unavailable through the retry schedule",
    "504": "Timed out through the retry schedule, or COMMIT outcome unknown",
}


def column_schema(column: Column) -> dict:
    """The JSON form of a column's values, as the gateway writes them in responses."""
    kind = column.kind
    if kind in ("int", "bool", "bit", "year"):
        schema: dict[str, Any] = {"type": "integer"}
        if column.int_range is not None:
            schema |= {"minimum": column.int_range[0], "maximum": column.int_range[1]}
    elif kind == "float":
        schema = {"type": "number"}
    elif kind == "decimal":
        schema = {"type": "string", "pattern": r"^-?\d+(\.\d+)?$", "description": f"DECIMAL({column.precision},{column.scale}), exact"}
    elif kind == "json":
        schema = {"description": "any JSON value"}
    elif kind == "enum":
        schema = {"type": "string", "enum": list(column.members)}
    elif kind == "binary":
        schema = {"type": "string", "contentEncoding": "base64"}
    elif kind == "date":
        schema = {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$"}
    elif kind in ("datetime", "timestamp"):
        schema = {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?$", "description": "ISO 8601, UTC"}
    else:  # string, set, time, and the rest
        schema = {"type": "string"}
        if column.max_length and column.length_in_chars:
            schema["maxLength"] = column.max_length
    schema["title"] = column.column_type
    if column.nullable:
        return {"anyOf": [schema, {"type": "null"}]}
    return schema


def input_schema(column: Column) -> dict:
    """What a request may send for a column: the response form, plus what conversion accepts."""
    if column.kind == "bool":
        return {"anyOf": [{"type": "boolean"}, column_schema(column)]}
    if column.kind == "int":  # an integer, or its digits as text (3.5 is refused, so no "number")
        return {"anyOf": [column_schema(column), {"type": "string", "pattern": r"^\s*[+-]?\d+\s*$"}]}
    if column.kind == "decimal":
        return {"anyOf": [column_schema(column), {"type": "number"}]}
    if column.kind == "set":
        return {"anyOf": [column_schema(column), {"type": "array", "items": {"type": "string", "enum": list(column.members)}}]}
    return column_schema(column)


def table_schemas(table: Table) -> dict[str, dict]:
    writable = [c for c in table.columns if not c.generated]
    return {
        f"{table.name}.row": {
            "type": "object",
            "properties": {c.name: column_schema(c) for c in table.columns},
        },
        f"{table.name}.input": {
            "type": "object",
            "properties": {c.name: input_schema(c) for c in writable},
            "required": [c.name for c in writable if c.required],
            "additionalProperties": False,
        },
        f"{table.name}.patch": {
            "type": "object",
            "properties": {c.name: input_schema(c) for c in writable},
            "minProperties": 1,
            "additionalProperties": False,
        },
    }


def ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def envelope(data: dict, *, listing: bool = False) -> dict:
    properties = {
        "timestamp": {"type": "string"},
        "message": {"type": "string"},
        "data": data,
        "retry_count": {"type": "integer", "minimum": 0},
    }
    if listing:
        properties["meta"] = ref("Meta")
    return {"type": "object", "properties": properties, "required": list(properties)}


def responses(ok: str, schema: dict | None, *, media: str = "application/json") -> dict:
    result: dict[str, Any] = {
        ok: {"description": "OK", "content": {media: {"schema": schema}}} if schema else {"description": "OK"},
    }
    for status, description in ERRORS.items():
        result[status] = {"description": description, "content": {"application/json": {"schema": ref("Error")}}}
    return result


def body(schema: dict) -> dict:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def aggregate_path(table: Table, filters: list[dict], filter_schema: dict, max_limit: int) -> dict:
    """GET/POST /api/{table}/aggregate with the table's own columns (core/aggregates.py)."""
    names = [c.name for c in table.columns]
    numeric = [c.name for c in table.columns if c.kind in NUMERIC_KINDS]
    columns = {"type": "string", "description": f"comma-separated, of: {', '.join(names)}"}
    functions = {
        "count": {"type": "string", "description": f"* (rows) or columns (their non-NULL values): {', '.join(names)}"},
        "count_distinct": columns, "sum": {"type": "string", "description": f"numeric columns: {', '.join(numeric)}"},
        "avg": {"type": "string", "description": f"numeric columns: {', '.join(numeric)}"}, "min": columns, "max": columns,
    }
    parameters = [
        {"name": "group_by", "in": "query", "schema": columns},
        *({"name": f, "in": "query", "schema": schema} for f, schema in functions.items()),
        {"name": "having", "in": "query", "schema": {"type": "string"}, "description": "result.op.value: count.gt.10, sum_salary.gte.1000"},
        {"name": "order", "in": "query", "schema": {"type": "string"}, "description": "result names: count.desc,department"},
        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": max_limit}},
        {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0, "maximum": MAX_ROWS}},
        *(f for f in filters if f["name"] not in AGGREGATE_PARAMS),
    ]
    names_list = {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string", "enum": names}}]}
    groups = envelope({"type": "array", "items": {"type": "object", "description": "group columns by name; count, sum_<col>, avg_<col>, ..."}}, listing=True)
    return {
        "get": {"operationId": f"aggregate_{table.name}", "tags": [table.name], "parameters": parameters, "responses": responses("200", groups)},
        "post": {
            "operationId": f"aggregate_query_{table.name}", "tags": [table.name],
            "requestBody": body({"type": "object", "properties": {
                "input": filter_schema, "group_by": names_list,
                "aggregates": {"type": "object", "properties": {f: names_list for f in functions}, "additionalProperties": False},
                "having": {"type": "object", "description": "{result: value} or {result: {op: value}}, and/or lists"},
                "order_by": names_list, "order": names_list,
                "limit": {"type": "integer", "minimum": 1, "maximum": max_limit},
                "offset": {"type": "integer", "minimum": 0, "maximum": MAX_ROWS},
            }, "additionalProperties": False}),
            "responses": responses("200", groups),
        },
    }


def table_paths(table: Table, who: Principal, max_limit: int) -> dict[str, dict]:
    name, row = table.name, ref(f"{table.name}.row")
    affected = envelope({"type": "object", "properties": {"affected": {"type": "integer"}}, "required": ["affected"]})
    filter_schema = {"type": "object", "description": f"FILTER: {{col: value}}, {{col: {{op: value}}}} with op in {OPERATORS}, or/and lists"}
    paths: dict[str, dict] = {}
    if who.may("read", name):
        parameters = [
            {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": max_limit}},
            {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0, "maximum": MAX_ROWS}},
            {"name": "order", "in": "query", "schema": {"type": "string"}, "description": "col.asc,other.desc"},
            {"name": "fields", "in": "query", "schema": {"type": "string"}, "description": "a,b"},
            {"name": "cursor", "in": "query", "schema": {"type": "string"}, "description": "meta.next_cursor of the page before"},
            {"name": "count", "in": "query", "schema": {"type": "string", "enum": ["exact"]}, "description": "exact: meta.total"},
        ]
        filters = [
            {"name": c.name, "in": "query", "schema": {"type": "string"}, "description": f"value or op.value ({OPERATORS})"}
            for c in table.columns
            if c.name not in RESERVED_PARAMS
        ]
        parameters += filters
        listing = envelope({"type": "array", "items": row}, listing=True)
        paths[f"/api/{name}/query"] = {
            "get": {"operationId": f"list_{name}", "tags": [name], "parameters": parameters, "responses": responses("200", listing)},
            "post": {
                "operationId": f"query_{name}", "tags": [name],
                "requestBody": body({"type": "object", "properties": {
                    "input": filter_schema, "order_by": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
                    "fields": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
                    "order": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
                    "limit": {"type": "integer", "minimum": 1, "maximum": max_limit},
                    "offset": {"type": "integer", "minimum": 0, "maximum": MAX_ROWS},
                    "cursor": {"type": "string"}, "count": {"type": "string", "enum": ["exact"]},
                }, "additionalProperties": False}),
                "responses": responses("200", listing),
            },
        }
        paths[f"/api/{name}/aggregate"] = aggregate_path(table, filters, filter_schema, max_limit)
    if who.may("write", name):
        idempotency = [{"name": "Idempotency-Key", "in": "header", "schema": {"type": "string", "minLength": 1, "maxLength": 255}}]
        paths[f"/api/{name}"] = {
            "post": {
                "operationId": f"create_{name}", "tags": [name], "parameters": idempotency,
                "requestBody": body({"type": "object", "properties": {"input": {"anyOf": [
                    ref(f"{name}.input"), {"type": "array", "items": ref(f"{name}.input"), "minItems": 1}]}},
                    "required": ["input"], "additionalProperties": False}),
                "responses": responses("201", envelope({"anyOf": [row, {"type": "array", "items": row}]})),
            },
            "put": {
                "operationId": f"update_{name}", "tags": [name], "parameters": idempotency,
                "requestBody": body({"type": "object", "properties": {"input": ref(f"{name}.patch"), "where": filter_schema},
                                     "required": ["input", "where"], "additionalProperties": False}),
                "responses": responses("200", affected),
            },
            "delete": {
                "operationId": f"delete_{name}", "tags": [name], "parameters": idempotency,
                "requestBody": body({"type": "object", "properties": {"input": filter_schema, "where": filter_schema},
                                     "minProperties": 1, "maxProperties": 1, "additionalProperties": False}),
                "responses": responses("200", affected),
            },
        }
    if table.primary_key and (who.may("read", name) or who.may("write", name)):
        key_names = ",".join(c.name for c in table.primary_key)
        key = [{"name": "key", "in": "path", "required": True, "schema": {"type": "string"},
                "description": f"the primary key ({key_names}; comma-separated when composite)"}]
        item: dict[str, Any] = {}
        if who.may("read", name):
            item["get"] = {"operationId": f"get_{name}", "tags": [name], "parameters": key, "responses": responses("200", envelope(row))}
        if who.may("write", name):
            item["put"] = {"operationId": f"update_{name}_by_key", "tags": [name], "parameters": key,
                           "requestBody": body({"type": "object", "properties": {"input": ref(f"{name}.patch")}, "required": ["input"], "additionalProperties": False}),
                           "responses": responses("200", envelope(row))}
            item["delete"] = {"operationId": f"delete_{name}_by_key", "tags": [name], "parameters": key, "responses": responses("200", affected)}
        paths[f"/api/{name}/{{key}}"] = item
    if who.may("read", name):
        paths[f"/api/tables/{name}"] = {"get": {
            "operationId": f"describe_{name}", "tags": [name], "responses": responses("200", envelope({"type": "object"})),
        }}
    if who.may("export", name):
        paths[f"/api/batch/{name}/export"] = {"get": {
            "operationId": f"export_{name}", "tags": [name],
            "parameters": [
                {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ROWS}},
                {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0, "maximum": MAX_ROWS}},
                {"name": "order", "in": "query", "schema": {"type": "string"}, "description": "col.asc,other.desc"},
                {"name": "fields", "in": "query", "schema": {"type": "string"}, "description": "a,b"},
                {"name": "format", "in": "query", "schema": {"type": "string", "enum": ["csv", "jsonl", "xlsx"]},
                 "description": "csv (the default), jsonl or xlsx"},
            ],
            "responses": {**responses("200", None), "200": {"description": "the rows as a file", "content": {
                media: {"schema": {"type": "string"}} for media in (
                    "text/csv", "application/x-ndjson", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")}}},
        }}
    rules: dict[str, Any] = {}
    if who.may("read", name):
        rules["get"] = {"operationId": f"get_rules_{name}", "tags": [name], "responses": responses("200", envelope(ref("Rules")))}
    if who.may("write", name):
        rules["put"] = {"operationId": f"put_rules_{name}", "tags": [name],
                        "requestBody": body({"type": "object", "description": "a JSON Schema (Draft 2020-12) for the table's rows"}),
                        "responses": responses("200", envelope(ref("Rules")))}
        rules["delete"] = {"operationId": f"delete_rules_{name}", "tags": [name],
                           "responses": responses("200", envelope({"anyOf": [ref("Rules"), {"type": "null"}]}))}
    if rules:
        paths[f"/api/schemas/{name}"] = rules
    return paths


RANGES = {"type": "array", "items": {"type": "array", "items": {"type": "integer"}}}
# Positions are named for what the format counts: lines (CSV, TSV, JSON Lines), rows (sheets), indexes (JSON arrays).
REPORT = {"type": "object", "properties": {
    "table": {"type": "string"}, "mode": {"type": "string"}, "atomic": {"type": "boolean"},
    "source": {"type": "object", "properties": {"format": {"type": "string"}, "sheet": {"type": "string"}}},
    "validated_only": {"type": "boolean"}, "rules_version": {"type": ["integer", "null"]},
    **{k: {"type": "integer", "minimum": 0} for k in (
        "rows_read", "rows_inserted", "rows_updated", "rows_skipped", "rows_failed", "rows_not_applied",
        "rows_outcome_unknown", "rows_valid", "errors_total")},
    "errors": {"type": "array", "items": {"type": "object", "properties": {
        "line": {"type": "integer"}, "row": {"type": "integer"}, "index": {"type": "integer"},
        "column": {"type": ["string", "null"]}, "reason": {"type": "string"}, "rule": {"type": "string"},
        "key": {"type": "object"}}, "required": ["column", "reason"]}},
    **{f"{state}_{unit}": RANGES for state in ("committed", "not_committed", "outcome_unknown") for unit in ("lines", "rows", "indexes")},
    "elapsed_s": {"type": "number"}, "rows_per_s": {"type": ["integer", "null"]},
}, "required": ["table", "mode", "atomic", "rows_read", "rows_inserted", "rows_updated", "rows_skipped",
                "rows_failed", "rows_not_applied", "rows_outcome_unknown", "errors", "errors_total"]}
RULES = {"type": "object", "properties": {
    "table": {"type": "string"}, "version": {"type": "integer"}, "schema": {"type": "object"},
    "versions": {"type": "array", "items": {"type": "object", "properties": {
        "version": {"type": "integer"}, "created_at": {"type": "string"}, "created_by": {"type": "string"},
        "removed": {"type": "boolean"}, "removed_at": {"type": "string"}, "removed_by": {"type": ["string", "null"]}}}},
}, "required": ["table", "version", "schema", "versions"]}
UPLOAD_FORMATS = ["csv", "tsv", "xlsx", "xls", "ods", "jsonl", "json"]


def import_path(importable: list[str], *, validate: bool = False) -> dict:
    """POST /api/batch/import (or /validate): a multipart upload into the table named by the file or by ?table=."""
    parameters = [
        {"name": "table", "in": "query", "schema": {"type": "string", "enum": importable},
         "description": "the table, when not the file's name"},
        {"name": "mode", "in": "query", "schema": {"type": "string", "enum": ["insert", "ignore", "upsert"]},
         "description": "what a duplicate key does"},
        {"name": "null", "in": "query", "schema": {"type": "string"}, "description": "the cell text that means NULL (default \\N)"},
        {"name": "sheet", "in": "query", "schema": {"type": "string"}, "description": "spreadsheets: the sheet (the first by default)"},
        {"name": "format", "in": "query", "schema": {"type": "string", "enum": UPLOAD_FORMATS},
         "description": "the file's format, when its extension does not say"},
    ]
    if not validate:
        parameters += [
            {"name": "atomic", "in": "query", "schema": {"type": "boolean"}, "description": "all rows or none"},
            {"name": "Idempotency-Key", "in": "header", "schema": {"type": "string", "minLength": 1, "maxLength": 255},
             "description": "with atomic=true: the import applies once; a resend replays its report"},
            {"name": "async", "in": "query", "schema": {"type": "boolean"},
             "description": "store the file and answer 202 with a job to follow (also: Prefer: respond-async)"},
            {"name": "Prefer", "in": "header", "schema": {"type": "string"}, "description": "respond-async: as ?async=true"},
        ]
    return {"post": {
        "operationId": "validate_file" if validate else "import_file", "tags": ["batch"],
        "summary": ("Check a file as an import would, writing nothing" if validate else
                    "Import a file (CSV, TSV, XLSX, XLS, ODS, JSON Lines, JSON) into the table named after it (or ?table=)"),
        "parameters": parameters,
        "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
            "type": "object", "properties": {"file": {"type": "string", "format": "binary"}}, "required": ["file"]}}}},
        "responses": responses("200", envelope(ref("ImportReport"))) | ({} if validate else {
            "202": {"description": "Accepted: the import is a job (?async=true)", "content": {"application/json": {"schema": envelope(ref("Job"))}}},
        }),
    }}


JOB_STATES = ["uploading", "queued", "running", "succeeded", "failed", "cancelled"]
JOB = {"type": "object", "properties": {
    "id": {"type": "string"}, "state": {"type": "string", "enum": JOB_STATES}, "table": {"type": "string"},
    "source": {"type": "string"}, "format": {"type": ["string", "null"]}, "mode": {"type": ["string", "null"]},
    "atomic": {"type": "boolean"}, "rows_read": {"type": "integer"}, "rows_written": {"type": "integer"},
    "rows_failed": {"type": "integer"}, "bytes_done": {"type": "integer"}, "bytes_total": {"type": ["integer", "null"]},
    "rows_per_s": {"type": ["integer", "null"]}, "eta_s": {"type": ["number", "null"]},
    "errors": {"type": "array", "items": {"type": "object"}}, "attempt": {"type": "integer"},
    "owner": {"type": ["string", "null"]}, "cancel_requested": {"type": "boolean"},
    "created_at": {"type": "string"}, "started_at": {"type": ["string", "null"]}, "updated_at": {"type": "string"},
    "ended_at": {"type": ["string", "null"]}, "error": {"type": ["object", "null"]},
    "report": {"anyOf": [ref("ImportReport"), {"type": "null"}]}, "links": {"type": "object"},
}, "required": ["id", "state", "table", "source", "rows_read", "rows_written", "rows_failed", "bytes_done", "errors", "report"]}
JOB_ID = {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}


def job_paths(importable: list[str]) -> dict[str, dict]:
    """Import jobs (app/jobs): from S3-compatible storage, or an upload sent with ?async=true."""
    job = envelope(ref("Job"))
    return {
        "/api/batch/jobs": {
            "post": {
                "operationId": "create_job", "tags": ["jobs"],
                "summary": "Start an import job that reads its file from S3-compatible storage (allowed buckets only)",
                "requestBody": body({"type": "object", "properties": {
                    "source": {"type": "string", "description": "s3://bucket/path/file.csv"},
                    "table": {"type": "string", "enum": importable, "description": "the object's file name by default"},
                    "mode": {"type": "string", "enum": ["insert", "ignore", "upsert"]},
                    "format": {"type": "string", "enum": UPLOAD_FORMATS}, "atomic": {"type": "boolean"},
                    "null": {"type": "string"}, "sheet": {"type": "string"},
                }, "required": ["source"], "additionalProperties": False}),
                "responses": responses("202", job),
            },
            "get": {
                "operationId": "list_jobs", "tags": ["jobs"], "summary": "Jobs on the tables the caller may import into, newest first",
                "parameters": [
                    {"name": "state", "in": "query", "schema": {"type": "string", "enum": JOB_STATES}},
                    {"name": "table", "in": "query", "schema": {"type": "string"}},
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}},
                ],
                "responses": responses("200", envelope({"type": "array", "items": ref("Job")})),
            },
        },
        "/api/batch/jobs/{job_id}": {
            "get": {"operationId": "get_job", "tags": ["jobs"], "summary": "A job's state, progress and report",
                    "parameters": [JOB_ID], "responses": responses("200", job)},
            "delete": {"operationId": "cancel_job", "tags": ["jobs"], "summary": "Cancel a job (committed batches stay)",
                       "parameters": [JOB_ID], "responses": responses("200", job)},
        },
        "/api/batch/jobs/{job_id}/events": {"get": {
            "operationId": "job_events", "tags": ["jobs"], "summary": "Progress as Server-Sent Events: `progress`, then `end`",
            "parameters": [JOB_ID], "responses": responses("200", {"type": "string"}, media="text/event-stream"),
        }},
    }


STREAM_ANSWER = {"type": "object", "properties": {
    "id": {"type": ["string", "null"]}, "status": {"type": "string", "enum": ["applied", "duplicate", "rejected", "failed"]},
    "rows_written": {"type": "integer"}, "code": {"type": "string", "description": "failed: the error code"},
    "errors": {"type": "array", "items": {"type": "object", "properties": {
        "index": {"type": ["integer", "null"]}, "column": {"type": ["string", "null"]}, "reason": {"type": "string"}}}},
}, "required": ["id", "status", "rows_written", "errors"]}


def websockets(importable: list[str]) -> dict[str, dict]:
    """The WebSocket streams (routes/streams.py). OpenAPI has no WebSocket operations, so they are an
    `x-websockets` extension (tools that do not know it pass it by; /api/{table}/ws is no HTTP path)."""
    return {
        f"/api/{name}/ws": {
            "summary": f"Rows into {name} as messages, each answered once committed, an id applied once",
            "parameters": [{"name": "mode", "in": "query", "schema": {"type": "string", "enum": ["insert", "upsert"]}}],
            "message": {"oneOf": [
                ref(f"{name}.input"),
                {"type": "array", "items": ref(f"{name}.input")},
                {"type": "object", "properties": {"id": {"type": ["string", "integer"]}, "rows": {
                    "type": "array", "items": ref(f"{name}.input")}}, "required": ["rows"]},
            ]},
            "answer": STREAM_ANSWER,
            "close_codes": {"1008": "credentials, scope, rate, table or mode refused", "1009": "a message over the size limit"},
        }
        for name in importable
    }


def service_paths() -> dict[str, dict]:
    text = {"text/plain": {"schema": {"type": "string"}}}
    return {
        "/api/tables": {"get": {"operationId": "list_tables", "tags": ["catalog"], "responses": responses("200", envelope({"type": "array"}))}},
        "/health/live": {"get": {"operationId": "live", "tags": ["health"], "responses": {"200": {"description": "the process answers"}}}},
        "/health/ready": {"get": {"operationId": "ready", "tags": ["health"], "responses": {
            "200": {"description": "the database answers and the catalog is loaded"},
            "503": {"description": "not ready: the reason", "content": {"application/json": {"schema": ref("Error")}}}}}},
        "/metrics": {"get": {"operationId": "metrics", "tags": ["health"], "responses": {"200": {"description": "Prometheus text format", "content": text}}}},
    }


def document(tables: list[Table], who: Principal, *, title: str, version: str, max_limit: int = 1000) -> dict:
    schemas: dict[str, dict] = {
        "Error": {"type": "object", "properties": {
            "timestamp": {"type": "string"}, "status": {"type": "integer"}, "error": {"type": "string"},
            "message": {"type": "string"}, "details": {}, "retry_count": {"type": "integer"},
            "request_id": {"type": "string"},
        }, "required": ["timestamp", "status", "error", "message", "details", "retry_count", "request_id"]},
        "Meta": {"type": "object", "properties": {
            "count": {"type": "integer"}, "limit": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
            "offset": {"type": "integer"}, "next": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
            "next_cursor": {"anyOf": [{"type": "string"}, {"type": "null"}]}, "total": {"type": "integer"},
        }, "required": ["count", "limit", "offset", "next"]},
    }
    paths: dict[str, dict] = {}
    visible = [t for t in tables if any(who.may(a, t.name) for a in ("read", "write", "import", "export"))]
    for table in visible:
        schemas |= table_schemas(table)
        paths |= table_paths(table, who, max_limit)
    schemas["ImportReport"] = REPORT
    schemas["Rules"] = RULES
    schemas["Job"] = JOB
    importable = [t.name for t in visible if who.may("import", t.name)]
    if importable:
        paths["/api/batch/import"] = import_path(importable)
        paths["/api/batch/validate"] = import_path(importable, validate=True)
        paths |= job_paths(importable)
    paths |= service_paths()
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version, "description": "Generated from the database's tables, for this caller."
                 " WebSocket streams (/api/{table}/ws) are described under x-websockets."},
        "paths": paths,
        "x-websockets": websockets(importable),
        "components": {"schemas": schemas, "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }
