"""Tokens the gateway issues (`POST /token`): short-lived access tokens and revocable refresh tokens.

An access token is an HS256 JWT signed with GATEWAY_TOKEN_SECRET (or GATEWAY_JWT_SECRET when that
is the mode's HS256 secret, so any verifier holding it accepts the token too), its header's `kid` is
`gateway`, and it carries `sub`, `scope`, `exp`, `iat`, `jti`, the account's claims, and `gid`/`ver`:
the credential it was issued for and that credential's version. Verifying one (GatewayTokens) also
checks the credential is still live at that version in the store's copy (read at most a second
ago), so revoking an account or rotating its password ends its access tokens within a second too.

A refresh token (`gwr_<id>_<secret>`) is a row of `_gateway_refresh_tokens`: its secret's SHA-256
(256 random bits: a fast hash is enough), its family, its scope, its expiry. It is single use: a
refresh marks it used and issues the next of its family, in one transaction; a used one sent again
(a stolen copy, or the client's) revokes the whole family. Revoking or rotating the credential
revokes its refresh tokens in the same transaction.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

import jwt

from app.core.auth import Principal, parse_scopes
from app.core.errors import DatabaseError, TableNotFound, Unauthorized
from app.db.database import Database, Session
from app.services.accounts import Credential, CredentialStore, now

T = TypeVar("T")
KID = "gateway"
ALGORITHM = "HS256"
RESERVED = ("sub", "scope", "scopes", "exp", "iat", "nbf", "jti", "gid", "ver", "iss", "aud")
TABLE = "`_gateway_refresh_tokens`"
CREATE = (
    f"CREATE TABLE IF NOT EXISTS {TABLE} ("
    " `id` VARCHAR(32) NOT NULL PRIMARY KEY,"
    " `family` VARCHAR(32) NOT NULL,"
    " `credential` VARCHAR(32) NOT NULL,"
    " `digest` BINARY(32) NOT NULL,"
    " `scope` TEXT NOT NULL,"
    " `expires_at` DATETIME(3) NOT NULL,"
    " `used_at` DATETIME(3) NULL,"
    " `revoked_at` DATETIME(3) NULL,"
    " `created_at` DATETIME(3) NOT NULL,"
    " KEY `by_family` (`family`), KEY `by_credential` (`credential`)"
    ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"
)
PREFIX = "gwr_"
REVOKE_CREDENTIAL = (
    f"UPDATE {TABLE} SET `revoked_at` = UTC_TIMESTAMP(3) WHERE `credential` = %s AND `revoked_at` IS NULL"
)
REVOKE_FAMILY = f"UPDATE {TABLE} SET `revoked_at` = UTC_TIMESTAMP(3) WHERE `family` = %s AND `revoked_at` IS NULL"
INVALID = "invalid refresh token"


@dataclass(frozen=True)
class Issued:
    access_token: str
    expires_in: int
    scope: str
    refresh_token: str | None

    def answer(self) -> dict:
        """RFC 6749 section 5.1."""
        answer: dict = {"access_token": self.access_token, "token_type": "bearer", "expires_in": self.expires_in,
                        "scope": self.scope}
        if self.refresh_token is not None:
            answer["refresh_token"] = self.refresh_token
        return answer


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


class TokenIssuer:
    def __init__(self, db: Database, store: CredentialStore, secret: str, access_ttl_s: int, refresh_ttl_s: int):
        self.db, self.store, self.secret = db, store, secret
        self.access_ttl_s, self.refresh_ttl_s = access_ttl_s, refresh_ttl_s

    def access_token(self, credential: Credential, scope: str) -> str:
        issued = int(time.time())
        claims = {k: v for k, v in credential.claims.items() if k not in RESERVED}
        claims |= {"sub": credential.name, "scope": scope, "iat": issued, "exp": issued + self.access_ttl_s,
                   "jti": secrets.token_hex(16), "gid": credential.id, "ver": credential.version}
        return jwt.encode(claims, self.secret, algorithm=ALGORITHM, headers={"kid": KID})

    async def issue(self, credential: Credential, scope: str, refresh: bool) -> Issued:
        token = None
        if refresh:
            family = secrets.token_hex(16)
            token = await self._transaction(lambda session: self._new_refresh(session, credential.id, family, scope))
        return Issued(self.access_token(credential, scope), self.access_ttl_s, scope, token)

    async def _new_refresh(self, session: Session, credential: str, family: str, scope: str) -> str:
        id_, secret = secrets.token_hex(16), secrets.token_urlsafe(32)
        await session.execute(
            f"INSERT INTO {TABLE} (`id`, `family`, `credential`, `digest`, `scope`, `expires_at`, `created_at`)"
            " VALUES (%s, %s, %s, %s, %s, %s, UTC_TIMESTAMP(3))",
            (id_, family, credential, _digest(secret), scope, now() + timedelta(seconds=self.refresh_ttl_s)),
        )
        return f"{PREFIX}{id_}_{secret}"

    async def _transaction(self, work: Callable[[Session], Awaitable[T]]) -> T:
        try:
            return await self.db.transaction(work)
        except TableNotFound:
            await self.db.fetch(CREATE)
            return await self.db.transaction(work)

    async def refresh(self, token: str) -> Issued:
        """The next access and refresh tokens for a live refresh token (401 otherwise, the same words
        for every reason); a used one sent again revokes its family."""
        id_, _, secret = token.removeprefix(PREFIX).partition("_") if token.startswith(PREFIX) else ("", "", "")
        if not id_ or not secret or len(id_) > 32:
            raise Unauthorized(INVALID)

        async def work(session: Session) -> tuple[Credential, str, str] | str:
            rows = (await session.execute(
                f"SELECT `family`, `credential`, `digest`, `scope`, `expires_at`, `used_at`, `revoked_at` FROM {TABLE}"
                " WHERE `id` = %s FOR UPDATE", (id_,))).rows
            if not rows or not hmac.compare_digest(bytes(rows[0][2]), _digest(secret)):
                return INVALID
            family, credential_id, _, scope, expires_at, used_at, revoked_at = rows[0]
            if used_at is not None and revoked_at is None:  # replayed: whoever holds the family loses it
                await session.execute(REVOKE_FAMILY, (family,))
                return "refresh token replayed: its family is revoked"
            if revoked_at is not None or expires_at <= now():
                return INVALID
            credential = await self.store.get(session, credential_id)
            if credential is None or not credential.live():
                await session.execute(REVOKE_FAMILY, (family,))
                return INVALID
            await session.execute(f"UPDATE {TABLE} SET `used_at` = UTC_TIMESTAMP(3) WHERE `id` = %s", (id_,))
            held = credential.scopes.split()
            scope = " ".join(s for s in scope.split() if s in held)  # never more than the credential holds now
            return credential, scope, await self._new_refresh(session, credential_id, family, scope)

        try:
            done = await self.db.transaction(work)  # a refused token's family revocation commits too
        except TableNotFound:
            raise Unauthorized(INVALID) from None
        if isinstance(done, str):
            raise Unauthorized(done)
        credential, scope, next_token = done
        return Issued(self.access_token(credential, scope), self.access_ttl_s, scope, next_token)


async def revoke_refresh(session: Session, credential: str) -> None:
    """Every refresh token of a credential (in the transaction that revokes or rotates it)."""
    try:
        await session.execute(REVOKE_CREDENTIAL, (credential,))
    except DatabaseError as exc:
        if exc.code != 1146:  # no such table: no token was ever issued
            raise


class GatewayTokens:
    """A credential source (app/core/auth.py): the access tokens this gateway issued."""

    def __init__(self, store: CredentialStore, secret: str):
        self.store, self.secret = store, secret

    async def principal(self, credential: str) -> Principal | None:
        if credential.count(".") != 2:
            return None
        try:
            if jwt.get_unverified_header(credential).get("kid") != KID:
                return None
        except jwt.PyJWTError:
            return None  # not a token, or not ours: the mode's own way reads it (a key may hold dots)
        try:
            claims = jwt.decode(credential, self.secret, algorithms=[ALGORITHM],
                                options={"require": ["exp", "sub", "gid", "ver", "jti"]}, leeway=5)
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"invalid token: {exc}") from None
        live = (await self.store.live()).get(str(claims["gid"]))
        if live is None or live.version != claims["ver"] or not live.live():
            raise Unauthorized("invalid token: its account or key was revoked, rotated or has expired")
        return Principal(str(claims["sub"]), parse_scopes(claims.get("scope")), claims)
