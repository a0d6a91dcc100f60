"""Request bodies. Unknown keys are refused, so a typo ("filter" for "input") is a 400, not a no-op.

Two spellings are taken where users reach for both: a DELETE's filter in `input` (the contract) or
`where` (as in PUT), and a query's `order_by` or `order` (as in the query string). Both at once is
a 400, never a silent choice.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Filter = dict[str, Any]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


def one_of(data: Any, first: str, second: str) -> Any:
    """Let `second` stand for `first` (a before-validator); both given is an error."""
    if isinstance(data, dict) and second in data:
        if first in data:
            raise ValueError(f"give '{first}' or '{second}', not both")
        data = {first if k == second else k: v for k, v in data.items()}
    return data


class CreateBody(Body):
    input: dict[str, Any] | list[dict[str, Any]]


class ExportBody(Body):
    """POST /api/batch/{table}/export: the rows as POST /query picks them (no cursor, no count)."""

    input: Filter | None = None
    order_by: str | list[str] | None = None
    fields: str | list[str | dict[str, Any]] | None = None  # columns, and relations to embed (app/query/embeds.py)
    limit: int | None = None
    offset: int | None = None

    @model_validator(mode="before")
    @classmethod
    def _order(cls, data: Any) -> Any:
        return one_of(data, "order_by", "order")


class QueryBody(ExportBody):
    """POST /api/{table}/query: an export's choice of rows, a page of them (cursor) and a count."""

    cursor: str | None = None
    count: str | None = None


class UpdateBody(Body):
    input: dict[str, Any]
    where: Filter | None = None


class UpdateByKeyBody(Body):
    input: dict[str, Any]


class PolicyBody(Body):
    """PUT /api/policies/{table}: the column bound to a claim of the caller."""

    column: str
    claim: str


MAX_EXPIRY_S = 10 * 366 * 86400


class KeyBody(Body):
    """POST /api/admin/keys: a new API key (its secret is answered once)."""

    name: str = Field(min_length=1, max_length=190, description="a label: the key's callers are named so")
    scopes: list[str] = Field([], max_length=200, description="`action:table` and the bare `admin`, `audit`")
    claims: dict[str, Any] = Field({}, description="what row policies compare a table's column with")
    expires_in_s: int | None = Field(None, ge=1, le=MAX_EXPIRY_S, description="none: it never expires")


class UserBody(Body):
    """POST /api/admin/users: an account that logs in at POST /token (password grant)."""

    username: str = Field(min_length=1, max_length=190)
    password: str = Field(min_length=8, max_length=1024)
    scopes: list[str] = Field([], max_length=200)
    claims: dict[str, Any] = {}
    expires_in_s: int | None = Field(None, ge=1, le=MAX_EXPIRY_S)


class PasswordBody(Body):
    """POST /api/admin/users/{user}/rotate: the user's new password (its tokens end)."""

    password: str = Field(min_length=8, max_length=1024)


class CallBody(Body):
    """POST /api/rpc/{name}: the named arguments."""

    input: dict[str, Any] = {}


class UpdateManyBody(Body):
    """PATCH /api/{table}: rows, each holding its primary key and its new values."""

    input: list[dict[str, Any]]


class DeleteBody(Body):
    input: Filter | None = None

    @model_validator(mode="before")
    @classmethod
    def _where(cls, data: Any) -> Any:
        return one_of(data, "input", "where")


class AggregateBody(Body):
    """POST /api/{table}/aggregate (app/query/aggregates.py)."""

    input: Filter | None = None
    group_by: str | list[str] | None = None
    aggregates: dict[str, str | list[str]] | None = None
    having: dict[str, Any] | None = None
    order_by: str | list[str] | None = None
    limit: int | None = None
    offset: int | None = None

    @model_validator(mode="before")
    @classmethod
    def _order(cls, data: Any) -> Any:
        return one_of(data, "order_by", "order")


class JobBody(Body):
    """POST /api/batch/jobs: an import that reads its file from S3-compatible storage."""

    source: str
    table: str | None = None
    mode: Literal["insert", "ignore", "upsert"] = "insert"
    format: Literal["csv", "tsv", "xlsx", "xls", "ods", "jsonl", "json", "parquet"] | None = None
    atomic: bool = False
    null: str | None = None  # None: CSV's standard convention (see docs/data.md)
    sheet: str | None = None
