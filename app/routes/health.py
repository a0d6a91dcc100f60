"""Liveness (the process answers) and readiness (the database answers through the wrapper; with
several Galera nodes, each node's state as the probe last read it)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from app.core.errors import GatewayError, ServiceUnavailable
from app.http.envelope import error, success

router = APIRouter(prefix="/health", tags=["health"])


@router.get("/live")
async def live():
    return success({"status": "alive"})


@router.get("/ready")
async def ready(request: Request):
    db, catalog = request.app.state.db, request.app.state.catalog
    try:
        await db.ping()
        if not catalog.loaded:
            await catalog.reload()
    except GatewayError as exc:
        return error(ServiceUnavailable("not ready: " + exc.message, {"cause": exc.code}))
    auth = request.app.state.auth.mode
    data = {"status": "ready", "tables": len(catalog.tables()), "pool": db.pool_stats(), "auth": auth}
    if db.nodes.clustered:
        data["nodes"] = [node.describe() for node in db.nodes.all]
    if auth == "none":
        data["warning"] = "authentication is off: anyone who reaches the gateway may read and write"
    return success(data)
