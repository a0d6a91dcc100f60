"""Shared route dependencies: the services live on app.state, created once by create_app."""

from __future__ import annotations

from fastapi import Request

from app.services.crud_service import CrudService


def crud(request: Request) -> CrudService:
    return request.app.state.crud
