"""The application factory: `uvicorn app.main:app` serves `create_app()`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.middleware.cors import CORSMiddleware

from app.api import console, docs
from app.api.routes import ROUTES
from app.core import tracing
from app.core.auth import Authenticator
from app.core.collector import tune_for_bulk
from app.core.config import Settings
from app.core.errors import GatewayError
from app.core.observability import Metrics, flush_logs
from app.core.ratelimit import RateLimiter, parse_rates
from app.db.catalog import catalog_of
from app.db.database import Database
from app.db.routines import routines_of
from app.feed.hub import GAP, Feed
from app.feed.invalidation import CacheFollower
from app.feed.sinks import Sink, parse_sinks
from app.http.app import Gateway
from app.http.dispatch import Dispatcher
from app.http.middleware import RequestMiddleware
from app.http.openapi import OpenAPI
from app.imports.engine import ImportEngine
from app.jobs.runner import JobRunner
from app.jobs.s3 import ObjectStore
from app.jobs.service import JobService
from app.jobs.store import JobStore
from app.services.accounts import CredentialStore
from app.services.audit import CREATE as AUDIT_TABLE
from app.services.audit import AuditTrail
from app.services.cache import ReadCache
from app.services.crud import CrudService
from app.services.exports import ExportService
from app.services.idempotency import IdempotencyStore
from app.services.policies import PolicyStore
from app.services.rpc import RpcService
from app.services.rules_store import RulesStore
from app.services.tokens import GatewayTokens, TokenIssuer
from app.streams import positions
from app.streams.registry import Streams

log = logging.getLogger("gateway")
TITLE, VERSION = "MySQL REST gateway", "0.1.0"


def create_app(settings: Settings | None = None, span_exporter: Any = None) -> Gateway:
    """The gateway. `span_exporter` (tests): tracing on, spans to it, as OTEL_EXPORTER_OTLP_ENDPOINT
    turns it on with the OTLP exporter."""
    settings = settings or Settings()
    traces = tracing.setup(span_exporter) if span_exporter is not None or tracing.wanted() else None
    db = Database(settings)
    catalog = catalog_of(db, settings)

    @asynccontextmanager
    async def lifespan(app: Gateway) -> AsyncIterator[None]:
        await db.open()
        try:
            await catalog.reload()
            await state.idempotency.ensure_table()
            await state.rules.ensure_table()
            await state.job_store.ensure_tables()
            await positions.ensure_tables(db)
            if state.audit is not None:
                await state.audit.ensure_table()
        except GatewayError as exc:
            # Start anyway: readiness reports it, and the first request loads the catalog.
            log.error("database not usable at start: %s (%s); serving, not ready", exc.message, exc.code)
        await state.auth.start()
        tune_for_bulk()
        state.job_runner.start()
        if settings.s3_buckets:
            await state.objects.warm()
        if state.cache.enabled:
            state.cache_follower.start()
        for sink in state.sinks:
            sink.start()
        yield
        for sink in state.sinks:
            await sink.stop()
        await state.cache_follower.stop()
        await state.feed.stop()
        await state.job_runner.stop()
        await state.streams.stop()
        if state.audit is not None:
            await state.audit.stop()
        await state.objects.close()
        await state.cache.close()
        await db.close()
        if traces is not None:
            tracing.teardown(traces)
        # uvicorn ends a SIGTERMed process by the signal itself, after this: no atexit, so the
        # access lines still waiting in BunchedStreamHandler are written now.
        flush_logs()

    app = Gateway(lifespan, title=TITLE, version=VERSION)
    state: Any = app.state
    state.settings, state.db, state.catalog, state.title = settings, db, catalog, TITLE
    state.rules = RulesStore(db, settings.rules_ttl_s)
    state.cache = ReadCache(
        settings.cache_url, namespace=f"{settings.cache_namespace}:{settings.db.database}", ttl_s=settings.cache_ttl_s,
        timeout_ms=settings.cache_timeout_ms, max_entry_bytes=settings.cache_max_entry_bytes,
        local_entries=settings.cache_local_entries,
    )
    state.policies = PolicyStore(db, settings.policies_ttl_s)
    state.crud = CrudService(
        db, catalog, state.rules,
        default_limit=settings.default_limit, max_limit=settings.max_limit, max_bulk_rows=settings.max_bulk_rows,
        single_statement_writes=settings.single_statement_writes, policies=state.policies,
    )
    state.rows_moved = {}  # (import|export, table) -> rows, for metrics
    state.imports = ImportEngine(
        db, catalog, state.rules, state.rows_moved,
        batch_rows=settings.import_batch_rows, batch_bytes=settings.import_batch_bytes, writers=settings.import_writers,
        max_errors=settings.import_max_errors, load_data=settings.import_load_data, policies=state.policies,
    )
    state.imports.changed = state.cache.invalidate
    state.exports = ExportService(
        db, state.crud, state.rows_moved, batch_rows=settings.export_batch_rows, spool_dir=settings.spool_dir
    )
    state.rpc = RpcService(db, routines_of(db, settings), max_rows=settings.max_limit)
    state.idempotency = IdempotencyStore(db, settings.idempotency_ttl_s)
    state.job_store = JobStore(db)
    state.objects = ObjectStore()
    # The job workers' idle sweep also drops WebSocket message ids past their retention.
    state.job_runner = JobRunner(
        state.job_store,
        state.imports,
        state.objects,
        settings,
        sweeps=[lambda: positions.forget_ids(db, settings.stream_id_retention_s)],
    )
    state.jobs = JobService(state.job_store, state.job_runner, state.objects, catalog, settings, state.policies)
    state.streams = Streams(db, catalog, state.rules, settings, state.policies)
    state.feed = Feed(settings, db)
    state.feed.listen(lambda tx: catalog_follows(catalog, tx))
    state.cache_follower = CacheFollower(state.feed, state.cache, catalog)
    state.sinks = [Sink(config, state.feed, db, catalog) for config in parse_sinks(settings.feed_sinks)]
    state.auth = Authenticator(settings)
    state.limiter = RateLimiter(parse_rates(settings.rate_limits))
    accounts(state, settings)
    state.metrics = Metrics(state)
    dispatcher = Dispatcher(ROUTES, mounts={docs.ASSETS_PATH: docs.assets, console.ASSETS_PATH: console.assets})
    state.openapi = OpenAPI(ROUTES, dispatcher, title=TITLE, version=VERSION, max_limit=settings.max_limit)
    middleware: list[tuple[type, dict[str, Any]]] = [
        (
            RequestMiddleware,
            {
                "max_body_bytes": settings.max_body_bytes,
                "metrics": state.metrics,
                "access_log": settings.access_log,
                "unlimited_prefixes": ("/api/batch/",),
            },
        )
    ]
    if traces is not None:  # outermost: the access line and every span are inside the request's span
        middleware.insert(0, tracing.middleware(traces))
    if settings.cors_origins:
        middleware.append(
            (
                CORSMiddleware,
                {
                    "allow_origins": list(settings.cors_origins),
                    "allow_methods": ["GET", "POST", "PUT", "DELETE"],
                    "allow_headers": ["content-type", "idempotency-key", "x-request-id", "authorization", "if-match",
                                      "if-none-match"],
                    "expose_headers": ["x-request-id", "idempotent-replayed", "retry-after", "etag"],
                },
            )
        )
    app.serve(dispatcher, middleware)
    return app


def catalog_follows(catalog: Any, tx: Any) -> None:
    """A table defined anew in the binlog (CREATE, ALTER, DROP, RENAME) is looked at again at once,
    from any writer, rather than at the catalog's next refresh."""
    names = {"*"} if tx is GAP else tx.defined
    looks = [catalog.refreshed()] if "*" in names else [catalog.look(name) for name in names]
    for look in looks:
        asyncio.ensure_future(look).add_done_callback(_looked)


def _looked(future: asyncio.Future[None]) -> None:
    if not future.cancelled() and future.exception() is not None:  # the timer's refresh catches up
        log.warning("the catalog could not look again after a change in the binlog: %s", future.exception())


def accounts(state: Any, settings: Settings) -> None:
    """Keys and accounts in the database, and the tokens the gateway issues: only with auth on (with
    `none` nobody holds `admin`, and POST /token answers 404)."""
    state.accounts = CredentialStore(db=state.db, ttl_s=settings.accounts_ttl_s)
    on = settings.audit if settings.audit is not None else settings.auth_mode != "none"
    state.audit = AuditTrail(state.db) if on else None
    if state.audit is not None:
        state.accounts.audit = state.audit.in_transaction
        state.accounts.tables.append(AUDIT_TABLE)
    state.token_limiter = RateLimiter(parse_rates(settings.token_rate_limits))
    secret = settings.token_secret or (
        settings.jwt_secret if settings.auth_mode == "jwt" and settings.jwt_algorithm == "HS256" else None
    )
    state.tokens = None
    if settings.auth_mode == "none":
        return
    state.auth.sources.append(state.accounts)
    if secret:
        state.tokens = TokenIssuer(
            state.db, state.accounts, secret, settings.access_token_ttl_s, settings.refresh_token_ttl_s
        )
        state.auth.sources.append(GatewayTokens(state.accounts, secret))


app = create_app()
