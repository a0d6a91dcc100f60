"""A small TCP proxy between the gateway and the database that can delay, refuse and cut.

It listens on 127.0.0.1 and forwards to the server's TCP address or unix socket. Faults:
- `delay_s`: every chunk from the server is held this long (a slow database or network);
- `down()` / `up()`: stop / resume listening (connection refused) and cut live connections;
- `cut_on(pattern, forward=...)`: when the client sends `pattern`, drop the connection, either before
  the server gets it (forward=False) or after the server has answered it, swallowing the answer
  (forward=True): the server acted, the client never hears of it. Once.
- `answer_on(pattern, code)`: the server gets the statement and acts on it, but the client is
  answered with error `code` instead (what a Galera node says when it loses quorum during COMMIT:
  1180, whatever became of it). Once; the connection stays.
"""

from __future__ import annotations

import asyncio
import contextlib

from app.core.config import DatabaseAddress


class FaultProxy:
    def __init__(self, upstream: DatabaseAddress):
        self.upstream = upstream
        self.delay_s = 0.0
        self.port = 0
        self._server: asyncio.AbstractServer | None = None
        self._links: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._tasks: set[asyncio.Task] = set()
        self._cut_pattern: bytes | None = None
        self._cut_forward = False
        self._answer: tuple[bytes, int] | None = None  # (pattern, error code)
        self.cuts = 0

    async def up(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def down(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        self.cut_all()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def cut_all(self) -> None:
        for client, server in list(self._links):
            client.transport.abort()
            server.transport.abort()
        self._links.clear()

    def cut_on(self, pattern: bytes, *, forward: bool) -> None:
        self._cut_pattern, self._cut_forward = pattern, forward

    def answer_on(self, pattern: bytes, code: int) -> None:
        self._answer = (pattern, code)

    @staticmethod
    def _error_packet(code: int, sequence: int) -> bytes:
        payload = b"\xff" + code.to_bytes(2, "little") + b"#HY000" + f"error {code} (fault proxy)".encode()
        return len(payload).to_bytes(3, "little") + bytes([sequence]) + payload

    async def _open_upstream(self):
        if self.upstream.unix_socket:
            return await asyncio.open_unix_connection(self.upstream.unix_socket)
        return await asyncio.open_connection(self.upstream.host, self.upstream.port)

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._tasks.add(task)
        try:
            await self._serve(client_r, client_w)
        except asyncio.CancelledError:
            pass
        finally:
            self._tasks.discard(task)

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await self._open_upstream()
        except OSError:
            client_w.transport.abort()
            return
        link = (client_w, server_w)
        self._links.add(link)
        swallow = asyncio.Event()  # set: drop the connection at the server's next reply
        replace: list[int] = []  # an error code to answer instead of the server's next reply
        try:
            await asyncio.gather(
                self._pipe(client_r, server_w, link, swallow, replace, from_client=True),
                self._pipe(server_r, client_w, link, swallow, replace, from_client=False),
            )
        finally:
            self._links.discard(link)
            client_w.transport.abort()
            server_w.transport.abort()

    async def _pipe(self, reader, writer, link, swallow: asyncio.Event, replace: list[int], *, from_client: bool) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError, ConnectionError):
            while chunk := await reader.read(65536):
                if from_client and self._answer and self._answer[0] in chunk:
                    replace.append(self._answer[1])
                    self._answer = None
                if not from_client and replace:
                    chunk = self._error_packet(replace.pop(), chunk[3])  # the reply's own sequence number
                if from_client and self._cut_pattern and self._cut_pattern in chunk:
                    self._cut_pattern = None
                    self.cuts += 1
                    if self._cut_forward:
                        swallow.set()  # the server gets it; its answer is dropped below
                    else:
                        break
                if not from_client and swallow.is_set():
                    break
                if not from_client and self.delay_s:
                    await asyncio.sleep(self.delay_s)
                writer.write(chunk)
                await writer.drain()
        for side in link:
            side.transport.abort()
