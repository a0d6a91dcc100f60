"""SIGTERM on a real gateway process: it stops taking requests and finishes the ones in flight."""

import asyncio
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx

from app.core.config import DatabaseAddress
from tests.conftest import connect, eventually, run_sql

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def responds(url: str) -> bool:
    try:
        return httpx.get(url, timeout=0.5).status_code == 200
    except httpx.HTTPError:
        return False


async def test_sigterm_lets_the_request_in_flight_finish(schema, test_db):
    run_sql(schema, "INSERT INTO users (id, name) VALUES (1, 'before')")
    port = free_port()
    env = os.environ | {
        "DATABASE_URL": test_db,
        "PORT": str(port),
        "GATEWAY_ATTEMPT_TIMEOUTS_MS": "10000,10000",  # long enough to wait on the lock below
        "GATEWAY_RETRY_WAITS_MS": "10",
        "GATEWAY_ACCESS_LOG": "false",
    }
    server = subprocess.Popen([sys.executable, "-m", "app"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    holder = connect(DatabaseAddress.parse(test_db), DatabaseAddress.parse(test_db).database)
    try:
        base = f"http://127.0.0.1:{port}"
        await eventually(lambda: responds(f"{base}/health/live"), timeout=20)
        run_sql(holder, "BEGIN")
        run_sql(holder, "SELECT * FROM users WHERE id = 1 FOR UPDATE")  # the PUT will wait on this
        async with httpx.AsyncClient(timeout=20) as client:
            put = asyncio.create_task(client.put(f"{base}/api/users/1", json={"input": {"name": "after"}}))
            await eventually(
                lambda: run_sql(schema, "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE 'UPDATE `users`%%'")[0][0] == 1
            )
            server.send_signal(signal.SIGTERM)
            await eventually(lambda: not responds(f"{base}/health/live"))  # no new requests taken
            run_sql(holder, "ROLLBACK")  # the lock goes; the request in flight completes
            response = await put
        assert response.status_code == 200 and response.json()["data"]["name"] == "after"
        # uvicorn re-raises the SIGTERM it caught once its graceful shutdown is done.
        assert server.wait(timeout=20) == -signal.SIGTERM
    finally:
        holder.close()
        if server.poll() is None:
            server.kill()
    assert run_sql(schema, "SELECT name FROM users WHERE id = 1") == [("after",)]
