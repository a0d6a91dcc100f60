"""`python -m app`: serve the gateway with uvicorn on HOST:PORT."""

import os

import uvicorn

from app.core.config import Settings

if __name__ == "__main__":
    settings = Settings()
    uvicorn.run(
        "app.main:app",
        host=settings.host,
        port=settings.port,
        workers=int(os.environ.get("GATEWAY_WORKERS", "1")),
        loop="uvloop",
        http="httptools",
        log_level=os.environ.get("GATEWAY_LOG_LEVEL", "info"),
        access_log=False,
    )
