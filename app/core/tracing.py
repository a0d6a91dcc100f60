"""OpenTelemetry traces, off unless OTEL_EXPORTER_OTLP_ENDPOINT is set.

Off, nothing of OpenTelemetry is imported and each hook costs one check of `tracer is None`. On,
the ASGI app is instrumented (a server span per request; an incoming W3C `traceparent` is its parent),
each database attempt is a span (`db.attempt`, with `db.attempt.number` and `db.retry`: 0 for the
first), each import batch (`import.batch`) and each stream group (`stream.group`), and every JSON
log line written inside a span carries its `trace_id`. Spans go to the OTLP/HTTP exporter, which
reads the standard OTEL_* variables (endpoint, headers, OTEL_SERVICE_NAME), in batches off the
request path; tests hand `setup` an exporter of their own (the SDK's InMemorySpanExporter).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

tracer: Any = None  # the gateway's tracer while tracing is on; None: off


def wanted() -> bool:
    return bool(os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"))


def setup(exporter: Any = None) -> Any:
    """Tracing on: its TracerProvider (the ASGI middleware is given it). Not the global provider, so
    a test's instance and its exporter stay its own."""
    global tracer
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    service = os.environ.get("OTEL_SERVICE_NAME", "mysql-rest-gateway")
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    if exporter is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    else:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("gateway")
    return provider


def teardown(provider: Any) -> None:
    """Tracing off again (at the app's shutdown): spans waiting are exported first."""
    global tracer
    tracer = None
    provider.shutdown()


def middleware(provider: Any) -> tuple[type, dict[str, Any]]:
    """The ASGI instrumentation, as app/http/app.py's middleware list takes it."""
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

    return OpenTelemetryMiddleware, {
        "tracer_provider": provider, "excluded_urls": "health/live,metrics", "exclude_spans": ["receive", "send"],
    }


@contextlib.contextmanager
def span(name: str, **attributes: Any) -> Iterator[None]:
    """A span around a block while tracing is on (import batches, stream groups); nothing otherwise."""
    if tracer is None:
        yield
        return
    with tracer.start_as_current_span(name, attributes=attributes):
        yield


def trace_id() -> str | None:
    """The current span's trace id (32 hex digits), for log lines."""
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    return f"{context.trace_id:032x}" if context.is_valid else None
