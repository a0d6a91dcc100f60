"""OpenTelemetry (issue 29): a retried request's span tree, as the SDK's in-memory exporter collects
it; an incoming W3C traceparent is its parent; every JSON log line inside a request carries the
trace id; and with tracing off, nothing of OpenTelemetry is imported."""

import asyncio
import io
import logging
import subprocess
import sys

import httpx
import pymysql
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from app.core import tracing
from app.core.config import DatabaseAddress
from app.core.observability import JsonFormatter
from app.main import create_app
from tests.conftest import run_sql

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


async def test_the_span_tree_of_a_retried_request(schema, settings, test_db):
    run_sql(schema, "INSERT INTO users (id, name) VALUES (1, 'Ann')")
    exporter = InMemorySpanExporter()
    app = create_app(settings(), span_exporter=exporter)
    lines = io.StringIO()
    handler = logging.StreamHandler(lines)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("gateway")
    logger.addHandler(handler)
    level, logger.level = logger.level, logging.INFO
    address = DatabaseAddress.parse(test_db)
    locker = pymysql.connect(**address.connect_kwargs(), database=address.database, autocommit=False)
    try:
        async with app.running():
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
                # The row is locked: attempt 1 waits past its 200 ms, is killed and retried; attempt 2 finds it free.
                locker.cursor().execute("SELECT * FROM users WHERE id = 1 FOR UPDATE")

                async def release():
                    await asyncio.sleep(0.3)
                    await asyncio.to_thread(locker.rollback)

                releasing = asyncio.ensure_future(release())
                response = await client.put("/api/users/1", json={"input": {"age": 5}},
                                            headers={"traceparent": f"00-{TRACE}-{PARENT}-01"})
                await releasing
                assert response.status_code == 200, response.text
                assert response.json()["retry_count"] >= 1
        spans = exporter.get_finished_spans()
        server = [s for s in spans if s.kind.name == "SERVER"]
        assert len(server) == 1 and server[0].parent.span_id == int(PARENT, 16)
        assert f"{server[0].context.trace_id:032x}" == TRACE  # (the start-up's statements are traces of their own)
        attempts = sorted((s for s in spans if s.name == "db.attempt" and s.parent is not None
                           and s.parent.span_id == server[0].context.span_id),
                          key=lambda s: s.start_time)
        # Each database call of the request is its attempts, children of the request's span: the one
        # that met the lock failed at retry 0 (the attempt timed out) and succeeded at retry 1.
        retries = [(s.attributes["db.retry"], s.status.status_code.name) for s in attempts]
        retried = next(i for i, (retry, _) in enumerate(retries) if retry == 1)
        assert retries[retried - 1] == (0, "ERROR") and retries[retried][1] != "ERROR", retries
        assert attempts[retried].attributes["db.attempt.number"] == 2
        access = [line for line in lines.getvalue().splitlines() if '"gateway.access"' in line]
        assert access and all(f'"trace_id":"{TRACE}"' in line for line in access)
        assert tracing.tracer is None  # off again with the app
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        locker.close()


def test_off_imports_nothing_of_opentelemetry():
    code = ("import sys, os; os.environ.pop('OTEL_EXPORTER_OTLP_ENDPOINT', None); "
            "from app.main import create_app; create_app(); "
            "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env={"PATH": "/usr/bin:/bin", "DATABASE_URL": "mysql://root@127.0.0.1:1/x"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
