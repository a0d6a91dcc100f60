"""Idempotency keys: a keyed write applies once, on whichever instance and however often it is sent.

The key (hashed), a hash of the request and the response are stored in `_gateway_idempotency` in
the same transaction as the write, so they commit or vanish together:
- a replay (same key, same request) returns the stored response, from any instance;
- the same key with another request is 422 `idempotency_key_reused`;
- two requests with one key at once: the second's key row waits on the first's, then fails as a
  duplicate; its transaction (write included) rolls back and it replays the first's response;
- a COMMIT that got no answer: the key row says whether it applied (replay it) or not (run the write
  again: if the first COMMIT lands meanwhile, the key's primary key stops the second, as above).
Keys expire after GATEWAY_IDEMPOTENCY_TTL_S. Successful responses are stored, and one refusal: a
keyed atomic import rolled back for its rows (422 import_rolled_back), whose answer depends on the
table at the time (a second send would also meet the rows a corrected resend wrote, as duplicates).
Any other refusal (4xx) wrote nothing and may be sent again with the same key.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from app.core.errors import CommitOutcomeUnknown, Conflict, DatabaseError, IdempotencyKeyReused, ImportRolledBack
from app.db.database import Database, Session
from app.services.crud import Hook

T = TypeVar("T")
TABLE = "`_gateway_idempotency`"  # the gateway's own: the catalog never exposes _gateway_* tables

CREATE = (
    f"CREATE TABLE IF NOT EXISTS {TABLE} ("
    " `key_hash` BINARY(32) NOT NULL PRIMARY KEY,"
    " `request_hash` BINARY(32) NOT NULL,"
    " `status` SMALLINT NOT NULL,"
    " `response` MEDIUMBLOB NOT NULL,"
    " `expires_at` DATETIME NOT NULL,"
    " KEY `expires_at` (`expires_at`)"
    ") ENGINE=InnoDB"
)
LOOKUP = (
    f"SELECT `request_hash`, `status`, `response`, `expires_at` < UTC_TIMESTAMP() FROM {TABLE} WHERE `key_hash` = %s"
)
FORGET = f"DELETE FROM {TABLE} WHERE `key_hash` = %s AND `expires_at` < UTC_TIMESTAMP()"
REMEMBER = (
    f"INSERT INTO {TABLE} (`key_hash`, `request_hash`, `status`, `response`, `expires_at`)"
    " VALUES (%s, %s, %s, %s, UTC_TIMESTAMP() + INTERVAL %s SECOND)"
)
PURGE = f"DELETE FROM {TABLE} WHERE `expires_at` < UTC_TIMESTAMP() LIMIT 1000"


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    replayed: bool = False


def request_hash(method: str, path: str, query: str, body: bytes) -> bytes:
    return hashlib.sha256(b"\n".join([method.encode(), path.encode(), query.encode(), body])).digest()


class IdempotencyStore:
    def __init__(self, db: Database, ttl_s: int):
        self.db, self.ttl_s = db, ttl_s
        self._ready = False

    async def ensure_table(self) -> None:
        if not self._ready:
            await self.db.fetch(CREATE)
            await self.db.fetch(PURGE)
            self._ready = True

    async def once(
        self,
        key: str,
        fingerprint: bytes,
        write: Callable[[Hook], Awaitable[Any]],
        respond: Callable[[Any], tuple[int, bytes]],
    ) -> Response:
        """Run `write` (a service call that runs the hook inside its transaction) once for `key`."""
        await self.ensure_table()
        key_hash = key_digest(key)
        if (stored := await self._stored(key_hash, fingerprint)) is not None:
            return stored
        made: list[Response] = []

        async def remember(session: Session, result: Any) -> None:
            status, body = respond(result)
            await self.remember(session, key, fingerprint, status, body)
            made.append(Response(status, body))

        for _ in range(2):  # a second run only after a COMMIT that is known not to have applied
            made.clear()
            try:
                await write(remember)
                return made[-1]
            except Conflict:
                # Perhaps the same key, committed meanwhile by another request: then replay it.
                if (stored := await self._stored(key_hash, fingerprint)) is not None:
                    return stored
                raise
            except CommitOutcomeUnknown:
                if (stored := await self._stored(key_hash, fingerprint)) is not None:
                    return stored  # it applied
        raise CommitOutcomeUnknown(
            "the database did not confirm the write, twice; send the request again with the same "
            "Idempotency-Key: it applies at most once"
        )

    async def once_upload(
        self,
        key: str,
        request_parts: list[str],
        chunks: AsyncIterator[bytes],
        run: Callable[[AsyncIterator[bytes], Callable[[Session, dict], Awaitable[None]]], Awaitable[dict]],
        respond: Callable[[dict], tuple[int, bytes]],
        refused: Callable[[ImportRolledBack], tuple[int, bytes]],
    ) -> Response:
        """A keyed upload (an atomic import): `run` reads the upload, which is hashed as it streams,
        and calls its hook inside the import's transaction with the final report, where the key's
        record is stored. A replay must send the same file: it is read and hashed, then the first
        response is returned. The upload is read once, so there is no second run. An import rolled
        back for its rows stores its refusal (`refused` renders it) after the rollback, the rest of
        the upload hashed first (the import stops reading at its first bad batch)."""
        await self.ensure_table()
        key_hash = key_digest(key)
        hasher = hashlib.sha256("\n".join(request_parts).encode())

        async def hashed() -> AsyncIterator[bytes]:
            async for chunk in chunks:
                hasher.update(chunk)
                yield chunk

        if (found := await self.lookup(key_hash)) is not None:
            async for _ in hashed():
                pass
            return check(found, hasher.digest())
        made: list[Response] = []

        async def remember(session: Session, report: dict) -> None:
            status, body = respond(report)
            await self.remember(session, key, hasher.digest(), status, body)
            made.append(Response(status, body))

        try:
            await run(hashed(), remember)
        except ImportRolledBack as exc:
            async for chunk in chunks:  # what the import left unread
                hasher.update(chunk)
            status, body = refused(exc)
            try:
                await self.db.transaction(lambda s: self.remember(s, key, hasher.digest(), status, body))
            except Conflict:
                pass  # the same key was stored meanwhile by another request: this one's answer stands
            raise
        except (Conflict, CommitOutcomeUnknown):
            # Another request with this key committed first, or our COMMIT went unanswered: the key's
            # record says what happened. (The upload is read; a replay compares what was hashed.)
            if (stored := await self._stored(key_hash, hasher.digest())) is not None:
                return stored
            raise
        return made[-1]

    async def _stored(self, key_hash: bytes, fingerprint: bytes) -> Response | None:
        found = await self.lookup(key_hash)
        return None if found is None else check(found, fingerprint)

    async def lookup(self, key_hash: bytes) -> tuple[bytes, Response] | None:
        """The request hash and response stored for a key (unexpired), if any. An expired use of
        the key is deleted here, on its own: a DELETE inside the write's transaction would take a
        gap lock, and two requests with one new key would then deadlock on their INSERTs (each
        waiting for the other's gap) instead of the second waiting for the first."""
        rows = (await self.db.fetch(LOOKUP, (key_hash,))).rows
        if rows and rows[0][3]:
            await self.db.fetch(FORGET, (key_hash,))
            return None
        if not rows:
            return None
        stored_hash, status, body, _ = rows[0]
        return bytes(stored_hash), Response(int(status), bytes(body), replayed=True)

    async def remember(self, session: Session, key: str, fingerprint: bytes, status: int, body: bytes) -> None:
        """Store a key's response inside the write's transaction. A key committed meanwhile by
        another request is a Conflict (the caller then replays that one)."""
        key_hash = key_digest(key)
        try:
            await session.execute(REMEMBER, (key_hash, fingerprint, status, body, self.ttl_s))
        except DatabaseError as exc:
            if exc.code == 1062:
                raise Conflict("this Idempotency-Key is being used by another request") from exc
            raise


def key_digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def check(found: tuple[bytes, Response], fingerprint: bytes) -> Response:
    """The stored response for a replay, or 422 if the key was used for another request."""
    stored_hash, response = found
    if stored_hash != fingerprint:
        raise IdempotencyKeyReused("this Idempotency-Key was used for another request")
    return response
