"""The web console at /console: one page and its assets (app/console), served by the gateway itself
with no build step and nothing fetched from elsewhere. The page's scripts call the same public API
any client calls, with the credential the person signs in with, so the console can never do what
the API would refuse; a strict Content-Security-Policy allows only the gateway's own scripts and
styles (no inline script, no other origin)."""

from __future__ import annotations

import html
from pathlib import Path

from starlette.responses import HTMLResponse, Response
from starlette.staticfiles import StaticFiles

from app.http.route import Call

HERE = Path(__file__).resolve().parent.parent / "console"
ASSETS_PATH = "/console/assets"
assets = StaticFiles(directory=HERE / "assets")
PAGE = (HERE / "index.html").read_text("utf-8")
POLICY = "; ".join((
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "form-action 'self'",
    "base-uri 'none'",
    "frame-ancestors 'none'",
))


async def page(call: Call) -> Response:
    title = html.escape(call.request.app.title)
    return HTMLResponse(PAGE.format(assets=ASSETS_PATH, title=title), headers={"Content-Security-Policy": POLICY})
