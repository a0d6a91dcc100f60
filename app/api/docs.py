"""The API description of the real tables, for the caller: /openapi.json and /docs (Swagger UI).

Swagger UI's assets are served by the gateway itself from a pinned package (fastapi-offline ships
them), so /docs works on a machine with no internet: nothing is fetched from a CDN."""

from __future__ import annotations

from starlette.responses import HTMLResponse, Response
from starlette.staticfiles import StaticFiles

from app.http.route import Call

ASSETS_PATH = "/docs/assets"
assets = StaticFiles(packages=[("fastapi_offline", "static")])
PAGE = """<!DOCTYPE html>
<html>
<head>
<link type="text/css" rel="stylesheet" href="{assets}/swagger-ui.css">
<link rel="shortcut icon" href="{assets}/favicon.png">
<title>{title}</title>
</head>
<body>
<div id="swagger-ui"></div>
<script src="{assets}/swagger-ui-bundle.js"></script>
<script>
const ui = SwaggerUIBundle({{url: "/openapi.json", dom_id: "#swagger-ui", layout: "BaseLayout", deepLinking: true,
  showExtensions: true, showCommonExtensions: true,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset]}})
</script>
</body>
</html>
"""


async def openapi(call: Call) -> Response:
    catalog = call.state.catalog
    if not catalog.loaded:
        await catalog.reload()
    routines = [r.name for r in await call.state.rpc.routines.all() if call.who.may("execute", r.name)]
    document = call.state.openapi.document(catalog.tables(), call.who, catalog.relations, routines)
    return Response(document, media_type="application/json")


async def page(call: Call) -> Response:
    return HTMLResponse(PAGE.format(assets=ASSETS_PATH, title=f"{call.request.app.title}: tables"))
