"""Test harness: one throwaway database per run on the server DATABASE_URL points at.

`make test` provides DATABASE_URL (reachable, or a private MariaDB it started). Integration tests
get a fresh schema per test and an in-process gateway (real pool, real server) through httpx.
"""

from __future__ import annotations

import os
import uuid
from contextlib import asynccontextmanager
from urllib.parse import urlencode, urlsplit, urlunsplit

import httpx
import pymysql
import pytest

from app.core.config import DatabaseAddress, Settings
from app.main import create_app

SCHEMA = [
    """CREATE TABLE users (
        id INT AUTO_INCREMENT PRIMARY KEY,
        name VARCHAR(50) NOT NULL,
        email VARCHAR(100) UNIQUE,
        age INT,
        balance DECIMAL(10,2) NOT NULL DEFAULT 0,
        active TINYINT(1) NOT NULL DEFAULT 1,
        meta JSON,
        created DATETIME DEFAULT CURRENT_TIMESTAMP
    )""",
    """CREATE TABLE orders (
        id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY,
        user_id INT NOT NULL,
        total DECIMAL(12,2) NOT NULL,
        status ENUM('new','paid','shipped') NOT NULL DEFAULT 'new',
        CONSTRAINT fk_user FOREIGN KEY (user_id) REFERENCES users(id)
    )""",
    """CREATE TABLE types (
        id INT PRIMARY KEY,
        i TINYINT, u SMALLINT UNSIGNED, b BIGINT, f DOUBLE, d DECIMAL(8,3),
        s VARCHAR(10), t TEXT, bin VARBINARY(16), dt DATETIME(6), da DATE, tm TIME, y YEAR,
        e ENUM('red','green'), st SET('a','b','c'), j JSON, flag TINYINT(1), bits BIT(4),
        gen INT AS (id * 2) STORED
    )""",
    """CREATE TABLE pairs (
        a INT NOT NULL, b VARCHAR(10) NOT NULL, v INT,
        PRIMARY KEY (a, b)
    )""",
    "CREATE TABLE nokey (x INT, y INT)",
    "CREATE TABLE secret_stuff (id INT PRIMARY KEY)",
]


def _server_url() -> str:
    url = os.environ.get("DATABASE_URL")
    if not url:
        pytest.exit("DATABASE_URL is not set: run the suite with `make test`", returncode=2)
    return url


def connect(address: DatabaseAddress, database: str | None = None) -> pymysql.Connection:
    return pymysql.connect(**address.connect_kwargs(), autocommit=True, database=database)


def with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + database))


@pytest.fixture(scope="session")
def test_db():
    """Create this run's throwaway database; drop it at the end."""
    server = _server_url()
    address = DatabaseAddress.parse(server)
    name = f"gwtest_{uuid.uuid4().hex[:12]}"
    admin = connect(address)
    admin.cursor().execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    try:
        yield with_database(server, name)
    finally:
        admin.ping(reconnect=True)
        admin.cursor().execute(f"DROP DATABASE IF EXISTS `{name}`")
        admin.close()


@pytest.fixture
def sql(test_db):
    """A plain connection to the test database, for setting up and checking from outside the gateway."""
    conn = connect(DatabaseAddress.parse(test_db), DatabaseAddress.parse(test_db).database)
    yield conn
    conn.close()


def run_sql(conn, statement: str, params=()) -> list[tuple]:
    with conn.cursor() as cursor:
        cursor.execute(statement, params)
        return list(cursor.fetchall())


def clear(conn) -> None:
    """Drop every table, view, procedure and function of the test database."""
    for name, kind in run_sql(conn, "SELECT ROUTINE_NAME, ROUTINE_TYPE FROM INFORMATION_SCHEMA.ROUTINES"
                                    " WHERE ROUTINE_SCHEMA = DATABASE()"):
        run_sql(conn, f"DROP {kind} `{name}`")
    run_sql(conn, "SET FOREIGN_KEY_CHECKS = 0")
    for table, kind in run_sql(conn, "SHOW FULL TABLES"):
        run_sql(conn, f"DROP {'VIEW' if kind == 'VIEW' else 'TABLE'} `{table}`")
    run_sql(conn, "SET FOREIGN_KEY_CHECKS = 1")


def only(conn, statements):
    """The test database holding only what `statements` make."""
    clear(conn)
    for statement in statements:
        run_sql(conn, statement)
    return conn


@pytest.fixture
def schema(sql):
    """A fresh set of tables for each test."""
    return only(sql, SCHEMA)


@pytest.fixture
def settings(test_db):
    def make(**overrides) -> Settings:
        # No job workers unless a test asks (tests/integration/test_jobs.py): they would query the
        # database in the background, and fault tests count every query's retries.
        values = {"database_url": test_db, "tables_deny": ("secret_*",), "job_workers": 0} | overrides
        return Settings(**values)

    return make


@asynccontextmanager
async def running(settings: Settings):
    """An in-process gateway with its lifespan run, and an httpx client for it."""
    app = create_app(settings)
    async with app.running():
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            client.app = app  # type: ignore[attr-defined]
            yield client


@pytest.fixture
async def client(schema, settings):
    async with running(settings()) as client:
        yield client


def proxied_url(test_db: str, port: int) -> str:
    """The test database's URL, reached through the fault proxy on 127.0.0.1:port."""
    address = DatabaseAddress.parse(test_db)
    auth = address.user + (f":{address.password}" if address.password else "")
    return f"mysql://{auth}@127.0.0.1:{port}/{address.database}"


__all__ = ["connect", "run_sql", "running", "proxied_url", "urlencode"]


@asynccontextmanager
async def serving(settings: Settings):
    """A real uvicorn server on a free loopback port, in this event loop (for streaming and
    disconnect tests, which an in-process transport cannot show)."""
    import asyncio

    import uvicorn

    app = create_app(settings)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve())
    await eventually(lambda: server.started, timeout=10)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield app, f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def eventually(condition, timeout: float = 5.0, interval: float = 0.02, what: str = "condition"):
    """Wait until `condition()` (or the coroutine it returns) is true; fail the test saying `what`
    if it is not within `timeout` seconds."""
    import asyncio
    import time

    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout}s")
        await asyncio.sleep(interval)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
