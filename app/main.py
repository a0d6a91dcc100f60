"""The application factory: `uvicorn app.main:app` serves `create_app()`."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

from app.core.auth import Authenticator
from app.db.catalog import catalog_of
from app.core.ratelimit import RateLimiter, parse_rates
from app.core.collector import tune_for_bulk
from app.core.config import Settings
from app.db.database import Database
from app.core.errors import GatewayError
from app.http.middleware import RequestMiddleware
from app.core.observability import Metrics, flush_logs
from app.imports.engine import ImportEngine
from app.jobs.runner import JobRunner
from app.jobs.s3 import ObjectStore
from app.jobs.service import JobService
from app.jobs.store import JobStore
from app.routes import batch, crud, docs, fast, health, jobs, metrics, rules, streams
from app.routes import catalog as catalog_routes
from app.services.crud import CrudService
from app.services.exports import ExportService
from app.services.idempotency import IdempotencyStore
from app.services.rules_store import RulesStore
from app.streams import positions
from app.streams.registry import Streams
from app.http import failures

log = logging.getLogger("gateway")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    db = Database(settings)
    catalog = catalog_of(db, settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # type: ignore[no-untyped-def]
        await db.open()
        try:
            await catalog.reload()
            await app.state.idempotency.ensure_table()
            await app.state.rules.ensure_table()
            await app.state.job_store.ensure_tables()
            await positions.ensure_tables(db)
        except GatewayError as exc:
            # Start anyway: readiness reports it, and the first request loads the catalog.
            log.error("database not usable at start: %s (%s); serving, not ready", exc.message, exc.code)
        tune_for_bulk()
        app.state.job_runner.start()
        if settings.s3_buckets:
            await app.state.objects.warm()
        yield
        await app.state.job_runner.stop()
        await app.state.streams.stop()
        await app.state.objects.close()
        await db.close()
        # uvicorn ends a SIGTERMed process by the signal itself, after this: no atexit, so the
        # access lines still waiting in BunchedStreamHandler are written now.
        flush_logs()

    app = FastAPI(
        title="MySQL REST gateway",
        version="0.1.0",
        lifespan=lifespan,
        description="Every permitted table of one MySQL/MariaDB database as a REST resource.",
        # /openapi.json and /docs describe the real tables, per caller (routes/docs.py).
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
        # FastAPI's built-in OpenTelemetry hooks ask the global providers on every request; the
        # gateway's telemetry is its own (Prometheus metrics, JSON access log).
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings, app.state.db, app.state.catalog = settings, db, catalog
    app.state.rules = RulesStore(db, settings.rules_ttl_s)
    app.state.crud = CrudService(
        db,
        catalog,
        app.state.rules,
        default_limit=settings.default_limit,
        max_limit=settings.max_limit,
        max_bulk_rows=settings.max_bulk_rows,
    )
    app.state.rows_moved = {}  # (import|export, table) -> rows, for metrics
    app.state.imports = ImportEngine(
        db,
        catalog,
        app.state.rules,
        app.state.rows_moved,
        batch_rows=settings.import_batch_rows,
        batch_bytes=settings.import_batch_bytes,
        writers=settings.import_writers,
        max_errors=settings.import_max_errors,
        load_data=settings.import_load_data,
    )
    app.state.exports = ExportService(
        db, app.state.crud, app.state.rows_moved, batch_rows=settings.export_batch_rows, spool_dir=settings.spool_dir
    )
    app.state.idempotency = IdempotencyStore(db, settings.idempotency_ttl_s)
    app.state.job_store = JobStore(db)
    app.state.objects = ObjectStore()
    # The job workers' idle sweep also drops WebSocket message ids past their retention.
    app.state.job_runner = JobRunner(
        app.state.job_store, app.state.imports, app.state.objects, settings,
        sweeps=[lambda: positions.forget_ids(db, settings.stream_id_retention_s)],
    )
    app.state.jobs = JobService(app.state.job_store, app.state.job_runner, app.state.objects, catalog, settings)
    app.state.streams = Streams(db, catalog, app.state.rules, settings)
    app.state.auth = Authenticator(settings)
    app.state.limiter = RateLimiter(parse_rates(settings.rate_limits))
    failures.install(app)
    app.include_router(crud.router)  # first: most requests are CRUD (its table names exclude the others')
    app.include_router(health.router)
    app.include_router(docs.router)
    app.mount(docs.ASSETS_PATH, docs.assets, name="docs-assets")
    # CRUD table names exclude batch, tables and schemas, so these never meet its routes.
    app.include_router(catalog_routes.router)
    app.include_router(jobs.router)  # before batch: /api/batch/jobs/x is not /api/batch/{t}/export
    app.include_router(batch.router)
    app.include_router(rules.router)
    app.include_router(streams.router)
    fast.install(app)  # the hottest CRUD routes, ahead of FastAPI's router (routes/fast.py)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "PUT", "DELETE"],
            allow_headers=["content-type", "idempotency-key", "x-request-id", "authorization"],
            expose_headers=["x-request-id", "idempotent-replayed", "retry-after"],
        )
    app.state.metrics = Metrics(app.state)
    app.include_router(metrics.router)
    app.add_middleware(
        RequestMiddleware,
        max_body_bytes=settings.max_body_bytes,
        metrics=app.state.metrics,
        access_log=settings.access_log,
        unlimited_prefixes=("/api/batch/",),
    )
    return app


app = create_app()
