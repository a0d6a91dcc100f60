"""`python -m app`: serve the gateway with uvicorn on HOST:PORT.
`python -m app ingest`: run the broker streams of GATEWAY_INGEST_SOURCES (app/streams/ingest.py),
with its /health and /metrics on GATEWAY_INGEST_PORT."""

import sys
from typing import Any

import uvicorn

from app.core.config import Settings
from app.core.observability import logging_config

if __name__ == "__main__":
    settings = Settings()
    common: dict[str, Any] = {
        "host": settings.host,
        "loop": "uvloop",
        "http": "httptools",
        "log_level": settings.log_level,
        "log_config": logging_config(settings.log_format, settings.log_level, settings.log_flush_ms),
        "access_log": False,  # the gateway writes its own access line (app/http/middleware.py)
    }
    if sys.argv[1:] == ["ingest"]:
        from app.streams.sources import parse_sources

        try:  # a configuration mistake is one line, not a traceback
            if not parse_sources(settings.ingest_sources):
                sys.exit("python -m app ingest: GATEWAY_INGEST_SOURCES names no source (see the README, streams)")
        except ValueError as exc:
            sys.exit(f"python -m app ingest: GATEWAY_INGEST_SOURCES: {exc}")
        uvicorn.run("app.streams.ingest:create_ingest_app", factory=True, port=settings.ingest_port, **common)
    elif sys.argv[1:]:
        sys.exit(f"usage: python -m app [ingest] (not {' '.join(sys.argv[1:])!r})")
    else:
        uvicorn.run(
            "app.main:app",
            port=settings.port,
            workers=settings.workers,
            # On SIGTERM: stop taking requests, give those in flight the retry budget to finish.
            timeout_graceful_shutdown=settings.graceful_shutdown_s,
            **common,
        )
