"""The API description of the real tables, for the caller: /openapi.json and /docs (Swagger UI).

Swagger UI's assets are served by the gateway itself from a pinned package (fastapi-offline ships
them), so /docs works on a machine with no internet: nothing is fetched from a CDN."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from starlette.staticfiles import StaticFiles

from app.http.access import Caller
from app.http.envelope import JSON
from app.http.openapi import document

router = APIRouter(include_in_schema=False)
ASSETS_PATH = "/docs/assets"
assets = StaticFiles(packages=[("fastapi_offline", "static")])


@router.get("/openapi.json")
async def openapi(request: Request, who: Caller):
    catalog = request.app.state.catalog
    if not catalog.loaded:
        await catalog.reload()
    settings = request.app.state.settings
    return JSON(document(catalog.tables(), who, title=request.app.title, version=request.app.version,
                         max_limit=settings.max_limit))


@router.get("/docs")
async def docs(request: Request):
    return get_swagger_ui_html(
        openapi_url="/openapi.json",
        title=f"{request.app.title}: tables",
        swagger_js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
        swagger_css_url=f"{ASSETS_PATH}/swagger-ui.css",
        swagger_favicon_url=f"{ASSETS_PATH}/favicon.png",
    )
