"""Shared route dependencies: the services live on app.state, created once by create_app."""

from __future__ import annotations

from fastapi import Request

from app.services.crud_service import CrudService
from app.services.csv_service import CsvService


async def crud(request: Request) -> CrudService:
    # async: FastAPI runs a plain `def` dependency in a worker thread, on every request.
    return request.app.state.crud


async def csv_service(request: Request) -> CsvService:
    return request.app.state.csv
