"""`python -m app ingest`: the broker streams of GATEWAY_INGEST_SOURCES into their tables.

A process of its own (same code, same image, same DATABASE_URL and settings as the gateway), with
one consumer task per source and a small HTTP server on GATEWAY_INGEST_PORT:

    GET /health/live    the process answers
    GET /health/ready   the database answers and every source is running (503 otherwise), with
                        each source's state, counts and lag
    GET /metrics        Prometheus: messages by outcome, rows, dead letters and lag per source

Run as many as you like: Kafka shares partitions through the consumer group, RabbitMQ hands each
message to one consumer, NATS's durable consumer hands each to one puller; positions recorded with
the rows make every message apply once whatever crashes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.responses import Response

from app.core.collector import tune_for_bulk
from app.core.config import Settings
from app.core.errors import GatewayError, ServiceUnavailable
from app.core.observability import flush_logs
from app.db.catalog import catalog_of
from app.db.database import Database
from app.http.app import Gateway
from app.http.dispatch import Dispatcher
from app.http.envelope import error, success
from app.http.route import Call, Route
from app.services.policies import PolicyStore
from app.services.rules_store import RulesStore
from app.streams import positions
from app.streams.applier import StreamApplier
from app.streams.brokers.amqp import AmqpSource
from app.streams.brokers.kafka import KafkaSource
from app.streams.brokers.nats import NatsSource
from app.streams.consumer import Consumer
from app.streams.sources import SourceConfig, parse_sources

log = logging.getLogger("gateway.ingest")
KINDS: dict[str, type[Consumer]] = {"kafka": KafkaSource, "amqp": AmqpSource, "nats": NatsSource}
SWEEP_S = 3600  # how often ids past their retention are dropped


def consumer_for(
    config: SourceConfig, db: Database, catalog: Any, rules: RulesStore, settings: Settings,
    policies: PolicyStore | None = None,
) -> Consumer:
    applier = StreamApplier(
        db,
        catalog,
        rules,
        config.table,
        config.name,
        mode=config.mode,
        dead_letters=True,
        load_data=settings.import_load_data,
        policies=policies,
    )
    return KINDS[config.kind](config, applier, settings.stream_group_rows, settings.stream_group_ms)


def create_ingest_app(settings: Settings | None = None) -> Gateway:
    settings = settings or Settings()
    sources = parse_sources(settings.ingest_sources)
    if not sources:
        raise ValueError("GATEWAY_INGEST_SOURCES names no source: see the README's Streams section")
    db = Database(settings)
    catalog = catalog_of(db, settings)
    rules = RulesStore(db, settings.rules_ttl_s)
    policies = PolicyStore(db, settings.policies_ttl_s)
    consumers = [consumer_for(config, db, catalog, rules, settings, policies) for config in sources]
    stopping = asyncio.Event()

    @asynccontextmanager
    async def lifespan(app: Gateway) -> AsyncIterator[None]:
        await db.open()
        try:
            await positions.ensure_tables(db)
            await rules.ensure_table()
            await catalog.reload()
        except GatewayError as exc:  # the consumers wait for it (paused), readiness says so
            log.error("database not usable at start: %s (%s)", exc.message, exc.code)
        tune_for_bulk()
        tasks = [asyncio.create_task(c.run(stopping), name=c.config.name) for c in consumers]
        tasks.append(asyncio.create_task(_sweep(db, settings.stream_id_retention_s, stopping)))
        for c in consumers:
            log.info("source %s: %s into %s (%s)", c.config.name, c.config.shown, c.config.table, c.config.mode)
        yield
        stopping.set()  # each consumer finishes the group it holds, then stops
        _, pending = await asyncio.wait(tasks, timeout=10)
        for task in pending:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await db.close()
        flush_logs()  # as the gateway's (app/main.py): a SIGTERMed uvicorn runs no atexit

    app = Gateway(lifespan, title="MySQL REST gateway: ingest", version="0.1.0")
    registry = CollectorRegistry(auto_describe=True)
    registry.register(_IngestCollector(consumers))

    async def live(call: Call) -> Response:
        return success({"status": "alive"})

    async def ready(call: Call) -> Response:
        described = [c.describe() for c in consumers]
        try:
            await db.ping()
        except GatewayError as exc:
            return error(ServiceUnavailable("not ready: " + exc.message, {"cause": exc.code, "sources": described}))
        if any(c.state != "running" for c in consumers):
            return error(ServiceUnavailable("not ready: a source is not running", {"sources": described}))
        return success({"status": "ready", "sources": described})

    async def metrics(call: Call) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    app.state.consumers = consumers
    app.serve(
        Dispatcher(
            [
                Route("GET", "/health/live", live, "The process answers", "open", "live"),
                Route("GET", "/health/ready", ready, "The database answers and every source runs", "open", "ready"),
                Route("GET", "/metrics", metrics, "Prometheus metrics", "open", "metrics"),
            ]
        )
    )
    return app


async def _sweep(db: Database, retention_s: int, stopping: asyncio.Event) -> None:
    while not stopping.is_set():
        with contextlib.suppress(GatewayError):
            while await positions.forget_ids(db, retention_s) > 0:
                pass
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), SWEEP_S)


class _IngestCollector(Collector):
    def __init__(self, consumers: list[Consumer]):
        self.consumers = consumers

    def collect(self) -> Iterator[Any]:
        messages = CounterMetricFamily(
            "gateway_ingest_messages", "Stream messages by outcome", labels=["source", "outcome"]
        )
        rows = CounterMetricFamily("gateway_ingest_rows", "Rows written from streams", labels=["source", "table"])
        dead = CounterMetricFamily(
            "gateway_ingest_dead_letters", "Messages sent to the dead letters", labels=["source"]
        )
        lag = GaugeMetricFamily(
            "gateway_ingest_lag", "Messages not yet consumed, as the broker tells", labels=["source", "part"]
        )
        up = GaugeMetricFamily("gateway_ingest_running", "1 when the source is consuming", labels=["source", "state"])
        for c in self.consumers:
            name, counters = c.config.name, c.applier.counters
            for outcome, count in counters.messages.items():
                messages.add_metric([name, outcome], count)
            rows.add_metric([name, c.config.table], counters.rows)
            dead.add_metric([name], counters.messages["rejected"])
            for part, behind in c.lag.items():
                lag.add_metric([name, part], behind)
            up.add_metric([name, c.state], 1 if c.state == "running" else 0)
        yield from (messages, rows, dead, lag, up)
