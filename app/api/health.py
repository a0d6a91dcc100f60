"""Liveness (the process answers), readiness (the database answers through the wrapper; with several
Galera nodes, each node's state as the probe last read it) and the Prometheus metrics."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.responses import Response

from app.core.errors import GatewayError, ServiceUnavailable
from app.http.envelope import error, success
from app.http.route import Call


async def live(call: Call) -> Response:
    return success({"status": "alive"})


async def ready(call: Call) -> Response:
    db, catalog = call.state.db, call.state.catalog
    try:
        await db.ping()
        if not catalog.loaded:
            await catalog.reload()
    except GatewayError as exc:
        return error(ServiceUnavailable("not ready: " + exc.message, {"cause": exc.code}))
    auth = call.state.auth.mode
    data = {"status": "ready", "tables": len(catalog.tables()), "pool": db.pool_stats(), "auth": auth,
            "feed": call.state.feed.describe() | (
                {"sinks": [sink.describe() for sink in call.state.sinks]} if call.state.sinks else {})}
    if db.nodes.clustered:
        data["nodes"] = [node.describe() for node in db.nodes.all]
    if auth == "none":
        data["warning"] = "authentication is off: anyone who reaches the gateway may read and write"
    return success(data)


async def metrics(call: Call) -> Response:
    return Response(call.state.metrics.render(), media_type=CONTENT_TYPE_LATEST)
