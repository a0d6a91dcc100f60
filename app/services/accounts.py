"""Accounts and API keys kept by the gateway, in `_gateway_credentials` (never served as a table).

A row is a *user* (a login and a password: `POST /token`, password grant) or a *key* (`gw_<id>_<secret>`,
sent as a bearer token or X-API-Key, or exchanged at `POST /token`, client-credentials grant). Each has
scopes (`action:table`, and the bare `admin`, `audit`), claims (what row policies read), an optional
expiry, and a version that every rotation or revocation bumps. Secrets are stored as Argon2 hashes.

Argon2 is slow on purpose (tens of ms), so it never runs per request: a key names its row by id, is
verified once in a thread (the event loop never waits on it), and the verified key is remembered by
its SHA-256 while its row keeps the same version. Every instance reads the live rows again when its
copy is older than `ttl_s` (GATEWAY_ACCOUNTS_TTL_S, 1 s): a key revoked or rotated anywhere stops
working everywhere within that, and at once on the instance that changed it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from app.core.auth import Principal, parse_scopes
from app.core.errors import Conflict, InvalidBody, RateLimited, RowNotFound, TableNotFound, Unauthorized
from app.core.ratelimit import Rate, RateLimiter
from app.db.copies import SharedCopy
from app.db.database import Database, Session

log = logging.getLogger("gateway.accounts")
TABLE = "`_gateway_credentials`"
CREATE = (
    f"CREATE TABLE IF NOT EXISTS {TABLE} ("
    " `id` VARCHAR(32) NOT NULL PRIMARY KEY,"
    " `kind` VARCHAR(8) NOT NULL,"  # user | key
    " `name` VARCHAR(190) NOT NULL,"  # the subject: a user's login, a key's label
    " `login` VARCHAR(190) NULL UNIQUE,"  # a live user's login (NULL for keys and revoked users)
    " `secret` VARCHAR(255) NOT NULL,"  # Argon2 hash of the password or of the key's secret part
    " `scopes` TEXT NOT NULL,"
    " `claims` TEXT NOT NULL,"
    " `expires_at` DATETIME(3) NULL,"
    " `revoked_at` DATETIME(3) NULL,"
    " `version` INT NOT NULL DEFAULT 1,"
    " `created_at` DATETIME(3) NOT NULL, `created_by` VARCHAR(255) NOT NULL,"
    " `updated_at` DATETIME(3) NOT NULL, `updated_by` VARCHAR(255) NOT NULL"
    ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"
)
COLUMNS = "`id`, `kind`, `name`, `secret`, `scopes`, `claims`, `expires_at`, `version`"
LIVE = f"SELECT {COLUMNS} FROM {TABLE} WHERE `revoked_at` IS NULL"
LISTED = (
    "SELECT `id`, `kind`, `name`, `scopes`, `claims`, `expires_at`, `revoked_at`, `version`, `created_at`,"
    f" `created_by`, `updated_at` FROM {TABLE} WHERE `kind` = %s ORDER BY `created_at`, `id` LIMIT %s OFFSET %s"
)
INSERT = (
    f"INSERT INTO {TABLE} (`id`, `kind`, `name`, `login`, `secret`, `scopes`, `claims`, `expires_at`,"
    " `created_at`, `created_by`, `updated_at`, `updated_by`)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, UTC_TIMESTAMP(3), %s, UTC_TIMESTAMP(3), %s)"
)
KEY_PREFIX = "gw_"
ID_BYTES = 8  # 16 hex characters
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,189}$")
MAX_VERIFIED = 10_000  # verified keys remembered; all forgotten past this (each is verified again once)

# RFC 9106's second recommended profile (64 MiB, 3 passes): about 50 ms on a server core.
_hasher = PasswordHasher()


def hash_secret(secret: str) -> str:
    return _hasher.hash(secret)


def verify_secret(stored: str, secret: str) -> bool:
    """Argon2 verification (constant time in the secret): False for a mismatch or a broken hash."""
    try:
        return _hasher.verify(stored, secret)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)  # the table's DATETIMEs are UTC, naive


@dataclass(frozen=True, slots=True)
class Credential:
    id: str
    kind: str  # user | key
    name: str
    secret: str = field(repr=False)
    scopes: str
    claims: Mapping[str, Any]
    expires_at: datetime | None
    version: int

    def live(self, at: datetime | None = None) -> bool:
        return self.expires_at is None or self.expires_at > (at or now())

    def principal(self, scopes: str | None = None) -> Principal:
        return Principal(self.name, parse_scopes(self.scopes if scopes is None else scopes), dict(self.claims))


def _credential(row: tuple) -> Credential:
    id_, kind, name, secret, scopes, claims, expires_at, version = row
    return Credential(id_, kind, name, secret, scopes, json.loads(claims or "{}"), expires_at, int(version))


def split_key(key: str) -> tuple[str, str] | None:
    """`gw_<id>_<secret>` -> (id, secret); None for anything else."""
    if not key.startswith(KEY_PREFIX):
        return None
    _, id_, secret = (key.split("_", 2) + ["", ""])[:3]
    if len(id_) != 2 * ID_BYTES or not secret or any(c not in "0123456789abcdef" for c in id_):
        return None
    return id_, secret


def check_name(name: str, what: str) -> str:
    if not NAME.match(name):
        raise InvalidBody(f"{what}: 1 to 190 letters, digits and . _ @ + - (starting with a letter or digit)")
    return name


def expiry(expires_in_s: int | None) -> datetime | None:
    return None if expires_in_s is None else now() + timedelta(seconds=expires_in_s)


# The audit trail's writer: (session, subject, action, count), in the change's own transaction.
Audit = Callable[[Session, str, str, int], Awaitable[None]]


class CredentialStore:
    """The live credentials, read again when the copy is older than `ttl_s`; keys verified once."""

    MISS_S = 0.2  # a key id not in the copy reads the table again when the copy is older than this

    def __init__(self, db: Database, ttl_s: float = 1.0, verify_rate: Rate = Rate(10, 1.0)):
        self.db, self.ttl_s = db, ttl_s
        self._copy: SharedCopy[dict[str, Credential]] = SharedCopy(self._read, {}, ttl_s, "credentials")
        self._verified: dict[bytes, tuple[str, int]] = {}  # sha256(key) -> (id, version)
        self._pending: dict[bytes, asyncio.Future[bool]] = {}  # checks under way, by sha256(key)
        # Argon2 for a key whose secret is wrong is CPU spent: at most this many a second per key id.
        self._failures = RateLimiter({"verify": verify_rate})
        self.audit: Audit | None = None  # app/main.py: the audit trail, written in each change's transaction
        self.tables = [CREATE]  # what a change needs (app/main.py adds the audit trail's table)

    async def ensure_table(self) -> None:
        for create in self.tables:
            await self.db.fetch(create)

    # --- reading -------------------------------------------------------------------------------

    async def live(self, max_age_s: float | None = None) -> dict[str, Credential]:
        """Every live credential by id, as read at most `ttl_s` (or `max_age_s`) ago (a shared copy,
        app/db/copies.py: a stale one serves for a while when the database is away)."""
        return await self._copy.get(max_age_s)

    async def _read(self) -> dict[str, Credential]:
        try:
            rows = (await self.db.fetch(LIVE)).rows
        except TableNotFound:  # never made: no credential stored yet
            rows = []
        return {row[0]: _credential(row) for row in rows}

    def changed(self) -> None:
        """This instance sees its own change from the next request."""
        self._copy.forget()

    async def principal(self, credential: str) -> Principal | None:
        """A `gw_` key's caller (401 for a key unknown, revoked, expired or wrong); None for other credentials."""
        if not credential.startswith(KEY_PREFIX):
            return None
        found = await self.key(credential)
        return found.principal()

    async def key(self, key: str) -> Credential:
        parts = split_key(key)
        row = (await self.live()).get(parts[0]) if parts is not None else None
        if parts is not None and row is None:  # made on another instance a moment ago? (made-up ids: 5 reads/s)
            row = (await self.live(self.MISS_S)).get(parts[0])
        if parts is None or row is None or row.kind != "key" or not row.live():
            raise Unauthorized("unknown API key")
        fast = hashlib.sha256(key.encode()).digest()
        if self._verified.get(fast) == (row.id, row.version):
            return row
        # Requests arriving together with one new key (a client's pool opening) share one check.
        pending = self._pending.get(fast)
        if pending is None:
            try:
                self._failures.take(row.id, "verify")
            except RateLimited as exc:
                raise RateLimited("too many attempts with this key id; retry later", None, exc.headers) from None
            check = asyncio.to_thread(verify_secret, row.secret, parts[1])
            pending = self._pending[fast] = asyncio.ensure_future(check)
            pending.add_done_callback(lambda _: self._pending.pop(fast, None))
        if not await asyncio.shield(pending):
            raise Unauthorized("unknown API key")
        if len(self._verified) >= MAX_VERIFIED:
            self._verified.clear()
        self._verified[fast] = (row.id, row.version)
        return row

    async def user(self, login: str) -> Credential | None:
        """A live user by login, read now (a login is not the hot path; a revocation shows at once)."""
        try:
            rows = (await self.db.fetch(f"SELECT {COLUMNS} FROM {TABLE} WHERE `login` = %s AND `revoked_at` IS NULL",
                                        (login,))).rows
        except TableNotFound:
            return None
        return _credential(rows[0]) if rows else None

    async def get(self, session: Session, id_: str) -> Credential | None:
        """A live credential, read in a transaction (FOR UPDATE: a refresh against a revocation)."""
        rows = (await session.execute(f"SELECT {COLUMNS} FROM {TABLE} WHERE `id` = %s AND `revoked_at` IS NULL"
                                      " FOR UPDATE", (id_,))).rows
        return _credential(rows[0]) if rows else None

    async def listed(self, kind: str, limit: int, offset: int) -> list[dict]:
        try:
            rows = (await self.db.fetch(LISTED, (kind, limit, offset))).rows
        except TableNotFound:
            return []
        return [describe(row) for row in rows]

    # --- changes: each one transaction with its audit row --------------------------------------

    async def _change(self, work: Callable[[Session], Awaitable[Any]], who: str, action: str) -> Any:
        async def run(session: Session) -> Any:
            result = await work(session)
            if self.audit is not None:
                await self.audit(session, who, action, 1)
            return result

        try:
            result = await self.db.transaction(run)
        except TableNotFound:
            await self.ensure_table()
            result = await self.db.transaction(run)
        self.changed()
        return result

    async def create(self, id_: str, kind: str, name: str, secret: str, scopes: str, claims: Mapping[str, Any],
                     expires_at: datetime | None, who: str) -> str:
        hashed = await asyncio.to_thread(hash_secret, secret)
        params = (id_, kind, name, name if kind == "user" else None, hashed, scopes, json.dumps(claims),
                  expires_at, who, who)
        try:
            await self._change(lambda session: session.execute(INSERT, params), who, f"create_{kind}")
        except Conflict:
            raise Conflict(f"a user called '{name}' exists", {"name": name}) from None
        return id_

    async def rotate(self, kind: str, ref: str, secret: str, who: str, also: Callable[[Session, str], Awaitable[Any]],
                     allowed: Callable[[str], Any]) -> str:
        """A new secret for a live credential (the old one fails at once here, within `ttl_s` elsewhere);
        `also` runs in the same transaction (a user's refresh tokens revoked); `allowed(scopes)` refuses
        (403) a caller that does not hold every scope of the credential. Its id."""
        hashed = await asyncio.to_thread(hash_secret, secret)

        async def work(session: Session) -> str:
            id_ = await self._find(session, kind, ref, allowed)
            await session.execute(
                f"UPDATE {TABLE} SET `secret` = %s, `version` = `version` + 1, `updated_at` = UTC_TIMESTAMP(3),"
                " `updated_by` = %s WHERE `id` = %s", (hashed, who, id_))
            await also(session, id_)
            return id_

        return str(await self._change(work, who, f"rotate_{kind}"))

    async def revoke(self, kind: str, ref: str, who: str, also: Callable[[Session, str], Awaitable[Any]],
                     allowed: Callable[[str], Any]) -> str:
        """Revoked for good (a user's login is free again); `also` in the same transaction; as `rotate`,
        only by a caller holding every scope of the credential."""
        async def work(session: Session) -> str:
            id_ = await self._find(session, kind, ref, allowed)
            await session.execute(
                f"UPDATE {TABLE} SET `revoked_at` = UTC_TIMESTAMP(3), `login` = NULL, `version` = `version` + 1,"
                " `updated_at` = UTC_TIMESTAMP(3), `updated_by` = %s WHERE `id` = %s", (who, id_))
            await also(session, id_)
            return id_

        return str(await self._change(work, who, f"revoke_{kind}"))

    async def _find(self, session: Session, kind: str, ref: str, allowed: Callable[[str], Any]) -> str:
        """A live key by id, a live user by login (404 otherwise), that the caller may change: one
        holding fewer scopes would take over a stronger credential by rotating it (403)."""
        column = "`login`" if kind == "user" else "`id`"
        rows = (await session.execute(
            f"SELECT `id`, `scopes` FROM {TABLE} WHERE {column} = %s AND `kind` = %s AND `revoked_at` IS NULL"
            " FOR UPDATE", (ref, kind))).rows
        if not rows:
            raise RowNotFound(f"no live {kind} '{ref}'", {kind: ref})
        allowed(str(rows[0][1] or ""))
        return str(rows[0][0])


def describe(row: tuple) -> dict:
    """A listed credential: never its secret."""
    id_, kind, name, scopes, claims, expires_at, revoked_at, version, created_at, created_by, updated_at = row
    return {
        "id": id_, "kind": kind, "name": name, "scopes": scopes.split(), "claims": json.loads(claims or "{}"),
        "expires_at": _iso(expires_at), "revoked_at": _iso(revoked_at), "version": version,
        "created_at": _iso(created_at), "created_by": created_by, "updated_at": _iso(updated_at),
    }


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat(timespec="milliseconds") + "Z"


def new_key(id_: str | None = None) -> tuple[str, str, str]:
    """(id, secret, the key as given out once)."""
    id_ = id_ or secrets.token_hex(ID_BYTES)
    secret = secrets.token_urlsafe(32)
    return id_, secret, f"{KEY_PREFIX}{id_}_{secret}"
