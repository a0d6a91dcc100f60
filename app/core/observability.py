"""What the gateway is doing: Prometheus metrics (prometheus-client) and one JSON log line a request.

Metrics live in a registry per app (so tests and several apps in one process stay apart). Counters
that other modules already keep (retries, kills, catalog loads, pool sizes) are read at scrape time
by a collector, so the hot path pays only for the request counter and the latency histogram.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily as CounterFamily
from prometheus_client.core import GaugeMetricFamily as GaugeFamily
from prometheus_client.registry import Collector

from app.core import tracing

access_log = logging.getLogger("gateway.access")

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 6, 10, 30)


class Metrics:
    def __init__(self, app_state: Any):
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "gateway_requests", "HTTP requests", ["method", "route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "gateway_request_duration_seconds", "HTTP request latency", ["method", "route"],
            buckets=LATENCY_BUCKETS, registry=self.registry,
        )
        self.registry.register(_StateCollector(app_state))
        # The labelled children, found once: `labels()` validates and hashes its arguments on every
        # call, a real share of a fast request's own cost.
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        children = self._children.get((method, route, status))
        if children is None:
            children = self.requests.labels(method, route, str(status)), self.latency.labels(method, route)
            self._children[method, route, status] = children
        children[0].inc()
        children[1].observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _StateCollector(Collector):
    """Reads the counters the database, wrapper, catalog and CSV service keep, at scrape time."""

    def __init__(self, state: Any):
        self.state = state

    def collect(self) -> Iterator[Any]:
        db, catalog, imports, runner = self.state.db, self.state.catalog, self.state.imports, self.state.job_runner
        yield _family(CounterFamily, "gateway_db_retries", "Database attempts retried, by what failed", ["cause"],
                      sorted(db.retries.items()))
        yield _family(CounterFamily, "gateway_db_gave_up", "Database calls that ended in an error, by code", ["code"],
                      sorted(db.gave_up.items()))
        yield CounterFamily("gateway_db_kills", "Timed-out statements killed on the server", value=db.kills)
        if db.nodes.clustered:
            nodes = db.nodes.all
            yield _family(GaugeFamily, "gateway_db_node_usable", "Galera nodes in use (1) or left out (0)", ["node"],
                          [(n.name, int(n.usable)) for n in nodes])
            yield _family(CounterFamily, "gateway_db_node_attempts", "Database attempts sent to each node", ["node"],
                          [(n.name, n.attempts) for n in nodes])
            yield _family(CounterFamily, "gateway_db_node_left_out", "Times a node was left out", ["node"],
                          [(n.name, n.left_out) for n in nodes])
        yield _family(GaugeFamily, "gateway_db_pool_connections", "Pooled connections", ["pool", "state"], [
            ((name, state), stats[state])
            for name, stats in db.pool_stats_by_pool().items()
            for state in ("size", "free", "used", "waiting", "max")
        ])
        yield CounterFamily("gateway_catalog_loads", "Catalog loads from INFORMATION_SCHEMA", value=catalog.refreshes)
        yield GaugeFamily("gateway_catalog_tables", "Tables exposed", value=len(catalog.tables()))
        yield _family(CounterFamily, "gateway_import_batches", "CSV import batches, by how they were written", ["path"],
                      sorted(imports.batches_by_path.items()))
        yield _family(CounterFamily, "gateway_csv_rows", "CSV rows imported and exported", ["direction", "table"],
                      sorted(self.state.rows_moved.items()))
        yield _family(GaugeFamily, "gateway_jobs", "Import jobs in the database by state (as this instance last"
                      " counted)", ["state"], [(s, runner.states.get(s, 0)) for s in JOB_STATES])
        yield GaugeFamily("gateway_jobs_running_here", "Import jobs this instance is running",
                          value=len(runner.running))
        yield _family(CounterFamily, "gateway_jobs_ended", "Import jobs this instance ended, by final state", ["state"],
                      [(s, runner.ended.get(s, 0)) for s in JOB_STATES[-3:]])
        yield _family(CounterFamily, "gateway_job_rows", "Rows of the jobs this instance ended, written or failed",
                      ["outcome"], sorted(runner.rows.items()))
        streams = sorted(self.state.streams.counters().items())
        yield _family(CounterFamily, "gateway_stream_messages", "WebSocket stream messages by outcome",
                      ["table", "mode", "outcome"], [
                          ((table, mode, outcome), count)
                          for (table, mode), counters in streams
                          for outcome, count in counters.messages.items()
                      ])
        yield _family(CounterFamily, "gateway_stream_rows", "Rows written from WebSocket streams", ["table", "mode"],
                      [(key, counters.rows) for key, counters in streams])
        feed = self.state.feed
        if feed.running:
            yield GaugeFamily("gateway_feed_lag_seconds", "Now less the commit time of the last change the feed read"
                              " (a cached answer is never older than this)", value=feed.lag_s or 0.0)
            yield GaugeFamily("gateway_feed_subscribers", "Change feed subscribers here", value=feed.subscribers)
        yield CounterFamily("gateway_feed_changes", "Row changes the feed read", value=feed.metrics_changes)
        yield CounterFamily("gateway_feed_transactions", "Transactions the feed read", value=feed.metrics_transactions)
        yield CounterFamily("gateway_feed_cut", "Subscribers the feed let go (too slow, reader lost)",
                            value=feed.metrics_cut)
        cache = getattr(self.state, "cache", None)
        if cache is not None and cache.enabled:
            counts = cache.counts
            yield _family(CounterFamily, "gateway_cache_reads", "Cacheable reads: from the cache (hit), from the"
                          " database (miss), or not looked up (bypass: cache paused, a view, an invalidation owed)",
                          ["outcome"], [(o, counts.get(o, 0)) for o in ("hit", "miss", "bypass")])
            yield _family(CounterFamily, "gateway_cache_stores", "Answers kept (stored) or not (skipped: a change"
                          " came since the read began, too large, or it read other tables)", ["outcome"],
                          [(o, counts.get(o, 0)) for o in ("stored", "skipped")])
            yield CounterFamily("gateway_cache_local_hits", "Cache hits served from this instance's own memory (no"
                                " round trip)", value=counts.get("hit_local", 0))
            yield CounterFamily("gateway_cache_invalidations", "Tables' cached answers dropped (or all tables')",
                                value=counts.get("invalidated", 0))
            yield _family(CounterFamily, "gateway_cache_errors", "Calls to Redis that failed or timed out (the"
                          " database answered)", ["op"],
                          [(o, counts.get(f"error_{o}", 0)) for o in ("lookup", "store", "invalidate")])


JOB_STATES = ("uploading", "queued", "running", "succeeded", "failed", "cancelled")  # the last three: ended


def _family(
    kind: type[CounterFamily] | type[GaugeFamily], name: str, documentation: str, labels: list[str],
    samples: Iterable[tuple[str | tuple[str, ...], float]],
) -> CounterFamily | GaugeFamily:
    """A metric family from (label value or values, value) pairs."""
    family = kind(name, documentation, labels=labels)
    for values, value in samples:
        family.add_metric([values] if isinstance(values, str) else list(values), value)
    return family


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, and the record's `fields` if any."""

    _second: tuple[int, str] = (-1, "")  # the last second formatted, and its text

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": f"{self._timestamp(record.created)}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        line.update(getattr(record, "fields", {}))
        if tracing.tracer is not None and (trace_id := tracing.trace_id()) is not None:
            line["trace_id"] = trace_id
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        try:
            return orjson.dumps(line, default=str).decode()
        except TypeError:  # what orjson will not write (an integer past 64 bits): the json module does
            return json.dumps(line, default=str)

    def _timestamp(self, created: float) -> str:
        second = int(created)
        if self._second[0] != second:  # strftime is a real share of a line's cost: once a second
            self._second = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
        return self._second[1]


class BunchedStreamHandler(logging.StreamHandler):
    """A StreamHandler that writes its lines in bunches: at most `flush_s` after the first line
    waiting (a timer writes them), at once when 64 Ki characters wait or a record is a warning or
    worse, and at the app's shutdown (`flush_logs`) and exit. One write a bunch instead of one write and
    flush a line, which cost a fast request a fifth of its CPU. A process killed with SIGKILL loses
    at most `flush_s` of lines. `flush_s` 0: every line written at once (StreamHandler)."""

    MAX_WAITING = 64 * 1024

    def __init__(self, stream: Any = None, flush_s: float = 0.1):
        super().__init__(stream)
        self.flush_s = flush_s
        self._waiting: list[str] = []
        self._size = 0
        self._timer: threading.Timer | None = None

    def emit(self, record: logging.LogRecord) -> None:  # called with self.lock held (Handler.handle)
        if not self.flush_s:
            super().emit(record)
            return
        try:
            line = self.format(record) + self.terminator
        except Exception:
            self.handleError(record)
            return
        self._waiting.append(line)
        self._size += len(line)
        if self._size >= self.MAX_WAITING or record.levelno >= logging.WARNING:
            self._write()
        elif self._timer is None:
            self._timer = threading.Timer(self.flush_s, self.flush)
            self._timer.daemon = True
            self._timer.start()

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]  # Handler.__init__ made it
            self._write()
            super().flush()

    def _write(self) -> None:
        waiting, self._waiting, self._size = self._waiting, [], 0
        if self._timer is not None:
            self._timer.cancel()  # a no-op from the timer's own thread
            self._timer = None
        if waiting:
            try:
                self.stream.write("".join(waiting))
                self.stream.flush()
            except Exception:  # as StreamHandler: reported by logging, never raised into a request
                self.handleError(logging.makeLogRecord({"msg": "the log stream refused a write"}))


class RepeatedWarning:
    """A failure that repeats (a background loop's, every poll while the database is away) said
    once, not once a poll: the first time and whenever its reason changes, then at most every
    `every_s` with how many times it came meanwhile, and once more when it stops."""

    def __init__(self, logger: logging.Logger, what: str, every_s: float = 60.0, clock: Any = time.monotonic):
        self.logger, self.what, self.every_s, self.clock = logger, what, every_s, clock
        self.reason: str | None = None
        self.unsaid = 0  # times seen since the last line
        self.failures = 0  # times seen since it started
        self.said_at = 0.0

    def seen(self, reason: str) -> None:
        now = self.clock()
        self.failures += 1
        if reason != self.reason or now - self.said_at >= self.every_s:
            again = (
                f" (and {self.unsaid} time(s) more since the last line)"
                if self.unsaid and reason == self.reason
                else ""
            )
            self.logger.warning("%s: %s%s", self.what, reason, again)
            self.reason, self.said_at, self.unsaid = reason, now, 0
        else:
            self.unsaid += 1

    def cleared(self) -> None:
        if self.reason is not None:
            self.logger.warning("%s: works again, after %d failure(s)", self.what, self.failures)
            self.reason, self.unsaid, self.failures = None, 0, 0


def flush_logs() -> None:
    """Write what every handler holds (the lines BunchedStreamHandler keeps waiting)."""
    for handler in logging.getLogger().handlers:
        handler.flush()


def logging_config(fmt: str, level: str, flush_ms: int = 100) -> dict:
    """A dictConfig for uvicorn's `log_config`, so every worker process applies it: `json` (the
    default) or `text` on the root logger, which uvicorn's own loggers feed; lines written in
    bunches at most `flush_ms` apart (BunchedStreamHandler)."""
    formatter = (
        {"()": "app.core.observability.JsonFormatter"}
        if fmt == "json"
        else {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"main": formatter},
        "handlers": {
            "main": {
                "()": "app.core.observability.BunchedStreamHandler",
                "formatter": "main",
                "flush_s": flush_ms / 1000,
            }
        },
        "root": {"handlers": ["main"], "level": level.upper()},
        "loggers": {name: {"handlers": [], "propagate": True} for name in ("uvicorn", "uvicorn.error")},
    }
