"""SIGTERM on a real gateway process: it stops taking requests and finishes the ones in flight."""

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
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


def test_every_access_line_is_written_at_a_graceful_stop(schema, test_db, tmp_path):
    """Lines wait in BunchedStreamHandler (here up to a minute); uvicorn ends a SIGTERMed worker by
    the signal, with no atexit, so the app's shutdown writes them."""
    run_sql(schema, "INSERT INTO users (id, name) VALUES (1, 'one')")
    port = free_port()
    env = os.environ | {"DATABASE_URL": test_db, "PORT": str(port), "GATEWAY_WORKERS": "2", "GATEWAY_LOG_FLUSH_MS": "60000"}
    log = tmp_path / "gateway.log"
    with log.open("wb") as sink:
        server = subprocess.Popen([sys.executable, "-m", "app"], cwd=ROOT, env=env, stdout=sink, stderr=sink)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while not responds(f"{base}/health/live"):
            assert time.monotonic() < deadline and server.poll() is None, log.read_text()
            time.sleep(0.1)
        with httpx.Client(timeout=10) as client:
            assert all(client.get(f"{base}/api/users/1").status_code == 200 for _ in range(40))
        assert access_lines(log) == 0  # waiting, a minute at most
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
        assert access_lines(log) == 40
    finally:
        if server.poll() is None:
            server.kill()


def access_lines(log: Path) -> int:
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    return sum(1 for line in lines if line.get("logger") == "gateway.access" and line.get("route") == "/api/{table}/{key}")
