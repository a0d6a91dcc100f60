"""Request bodies. Unknown keys are refused, so a typo ("filter" for "input") is a 400, not a no-op."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

Filter = dict[str, Any]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CreateBody(Body):
    input: dict[str, Any] | list[dict[str, Any]]


class QueryBody(Body):
    input: Filter | None = None
    order_by: str | list[str] | None = None
    fields: str | list[str] | None = None
    limit: int | None = None
    offset: int | None = None


class UpdateBody(Body):
    input: dict[str, Any]
    where: Filter | None = None


class UpdateByKeyBody(Body):
    input: dict[str, Any]


class DeleteBody(Body):
    input: Filter | None = None
