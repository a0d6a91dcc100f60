"""The API description of the real tables, for the caller: /openapi.json and /docs (Swagger UI)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html

from app.routes.deps import Caller
from app.schemas.envelope import JSON
from app.schemas.openapi import document

router = APIRouter(include_in_schema=False)


@router.get("/openapi.json")
async def openapi(request: Request, who: Caller):
    catalog = request.app.state.catalog
    if not catalog.loaded:
        await catalog.reload()
    return JSON(document(catalog.tables(), who, title=request.app.title, version=request.app.version))


@router.get("/docs")
async def docs(request: Request):
    return get_swagger_ui_html(openapi_url="/openapi.json", title=f"{request.app.title}: tables")
