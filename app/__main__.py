"""`python -m app`: serve the gateway with uvicorn on HOST:PORT."""

import os

import uvicorn

from app.core.config import Settings
from app.observability import logging_config

if __name__ == "__main__":
    settings = Settings()
    uvicorn.run(
        "app.main:app",
        host=settings.host,
        port=settings.port,
        workers=int(os.environ.get("GATEWAY_WORKERS", "1")),
        loop="uvloop",
        http="httptools",
        log_level=settings.log_level,
        log_config=logging_config(settings.log_format, settings.log_level),
        # On SIGTERM: stop taking requests, give those in flight the retry budget to finish.
        timeout_graceful_shutdown=int(os.environ.get("GATEWAY_GRACEFUL_SHUTDOWN_S", "10")),
        access_log=False,  # the gateway writes its own access line (app/middleware.py)
    )
