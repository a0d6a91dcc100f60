"""A private MariaDB writing the binlog the change feed reads (the machine's own server has it off),
one per test module; each test has a database of its own on it, and a reader to follow SSE."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pymysql

from tests.mariadb_servers import FEED_FLAGS, PrivateServer

COUNTER = iter(range(1, 1_000_000))


@contextmanager
def binlog_server() -> Iterator[PrivateServer]:
    base = Path(tempfile.mkdtemp(prefix="gateway-feed-"))
    server = PrivateServer(base, 11, FEED_FLAGS)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


def fresh_database(server: PrivateServer, statements: list[str]) -> tuple[str, pymysql.Connection]:
    """A new database on `server` with these tables: its URL, and an autocommit connection to it."""
    name = f"feed_{next(COUNTER)}"
    server.sql(f"CREATE DATABASE {name}")
    conn = pymysql.connect(unix_socket=server.socket, user="root", database=name, autocommit=True)
    with conn.cursor() as cur:
        for statement in statements:
            cur.execute(statement)
    return server.url(name), conn


class Events:
    """A Server-Sent Events stream, read event by event."""

    def __init__(self, response: httpx.Response):
        self.response = response
        self._lines = response.aiter_lines()

    async def next(self) -> tuple[str, str | None, Any]:
        kind, ident, data = "message", None, []
        async for line in self._lines:
            if line == "":
                if data:
                    return kind, ident, json.loads("\n".join(data))
                kind, ident = "message", None
                continue
            if line.startswith(":"):
                continue
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "event":
                kind = value
            elif field == "id":
                ident = value
            elif field == "data":
                data.append(value)
        raise EOFError("the stream ended")

    async def changes(self, n: int) -> list[dict]:
        found = []
        while len(found) < n:
            kind, ident, data = await self.next()
            assert kind == "change", (kind, data)
            assert ident == data["position"]
            found.append(data)
        return found


@asynccontextmanager
async def following(client: httpx.AsyncClient, path: str, **headers: str) -> AsyncIterator[Events]:
    async with client.stream("GET", path, headers=headers, timeout=30) as response:
        assert response.status_code == 200, (await response.aread()).decode()
        yield Events(response)
