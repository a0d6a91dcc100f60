"""Catalog routes: what is exposed, with columns, types and keys."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from app.http.access import CanRead, Caller, crud
from app.http.envelope import success
from app.services.crud import CrudService

router = APIRouter(prefix="/api/tables", tags=["catalog"])
Service = Annotated[CrudService, Depends(crud)]


@router.get("", summary="List exposed tables (those the caller may read)")
async def list_tables(service: Service, who: Caller):
    tables = [t for t in await service.describe_tables() if who.may("read", t["name"])]
    return success(tables, f"{len(tables)} table(s)")


@router.get("/{table}", summary="Describe one table")
async def describe_table(table: str, service: Service, _: CanRead):
    return success(await service.describe_table(table))
