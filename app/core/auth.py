"""Who is calling, and what they may do (no HTTP here: routes hand in the presented credential).

Modes (GATEWAY_AUTH_MODE):
- `none`: everyone may do everything (the gateway warns loudly at start; /health/ready says so);
- `api-key`: keys are configured as SHA-256 hashes with their scopes (GATEWAY_API_KEYS as JSON, or
  GATEWAY_API_KEYS_FILE), so the configuration holds no secret;
- `jwt`: HS256 with GATEWAY_JWT_SECRET, or RS256/ES256 with GATEWAY_JWT_PUBLIC_KEY_FILE or an identity
  provider's keys (GATEWAY_JWT_JWKS_URL: fetched at start, kept, fetched again when a token names a
  key id not held, at most once per GATEWAY_JWT_JWKS_MIN_REFRESH_S); `exp` is
  required, `nbf`, `aud` (GATEWAY_JWT_AUDIENCE) and `iss` (GATEWAY_JWT_ISSUER) are checked; scopes come
  from the `scope` claim (space-separated) or `scopes` (a list).

A scope is `action:table`, with action in read, write, import, export and table a name or a glob
(`read:*`, `write:orders`, `import:order_*`), or `execute:routine` for a stored procedure or function.
Two scopes are the gateway's own, bare words: `admin` (accounts and keys, /api/admin/...) and `audit`
(the audit trail); `admin:*` (every table's row policy) does not hold `admin`.

In `api-key` and `jwt` modes, the credentials the gateway keeps itself (keys and accounts in the
database, tokens it issued: app/services/accounts.py, tokens.py) are tried first, by `sources`, each of
which answers only for a credential of its own form (`gw_...`, a token whose header names the
gateway's `kid`); every other credential goes the mode's way, as before.
"""

from __future__ import annotations

import asyncio
import fnmatch
import hashlib
import hmac
import json
import logging
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import jwt

from app.core.errors import Forbidden, Unauthorized

log = logging.getLogger("gateway.auth")
# execute: a stored procedure or function; admin: a table's row policy (PUT /api/policies/{table})
ACTIONS = ("read", "write", "import", "export", "execute", "admin")
BARE = ("admin", "audit")  # the gateway's own scopes: held as (word, "")


@dataclass(frozen=True)
class Principal:
    name: str
    scopes: frozenset[tuple[str, str]]  # (action, table glob)
    # A token's claims, an API key's `claims`: what row policies compare a table's column with.
    claims: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def may(self, action: str, table: str) -> bool:
        return any(a == action and fnmatch.fnmatchcase(table, glob) for a, glob in self.scopes)

    def require(self, action: str, table: str) -> None:
        if not self.may(action, table):
            raise Forbidden(f"'{self.name}' may not {action} table '{table}'", {"needs": f"{action}:{table}"})

    def holds(self, scope: str) -> bool:
        """A bare scope (`admin`, `audit`): never implied by a glob."""
        return (scope, "") in self.scopes

    def require_scope(self, scope: str) -> None:
        if not self.holds(scope):
            raise Forbidden(f"'{self.name}' does not hold the scope '{scope}'", {"needs": scope})


EVERYONE = Principal("anonymous", frozenset((action, "*") for action in ACTIONS))
NOBODY = Principal("unauthenticated", frozenset())  # the caller of an open route: credentials are not read


def parse_scopes(scopes: Any) -> frozenset[tuple[str, str]]:
    items = scopes.split() if isinstance(scopes, str) else list(scopes or [])
    parsed = set()
    for item in items:
        action, colon, table = str(item).partition(":")
        if action in ACTIONS and table:
            parsed.add((action, table))
        elif action in BARE and not colon:
            parsed.add((action, ""))
    return frozenset(parsed)


def scope_text(scopes: frozenset[tuple[str, str]]) -> list[str]:
    """Scopes as they are written (`read:*`, `admin`), sorted."""
    return sorted(f"{a}:{t}" if t else a for a, t in scopes)


class CredentialSource(Protocol):
    """Credentials the gateway keeps itself: None for a credential not of its form (the next source,
    or the mode's own way, reads it), a Principal, or 401."""

    async def principal(self, credential: str) -> Principal | None: ...


class Jwks:
    """An identity provider's signing keys (a JWKS document), by key id. Fetched in a thread (the
    event loop never waits on the provider); a token naming a key id not held fetches them again,
    at most once per `min_refresh_s`, so a rotated key is taken up and a storm of made-up key ids
    costs one fetch a minute."""

    def __init__(self, url: str, min_refresh_s: float = 60.0, timeout_s: float = 5.0):
        self.url, self.min_refresh_s, self.timeout_s = url, min_refresh_s, timeout_s
        self._keys: dict[str | None, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()
        self.fetches = 0

    async def refresh(self) -> None:
        async with self._lock:
            if self._fetched_at is not None and time.monotonic() - self._fetched_at < self.min_refresh_s:
                return
            self._fetched_at = time.monotonic()  # a failed fetch counts too: the provider is not hammered
            self.fetches += 1
            document = await asyncio.to_thread(self._get)
            keys = jwt.PyJWKSet.from_dict(document).keys
            self._keys = {k.key_id: k for k in keys if k.public_key_use in (None, "sig")}

    def _get(self) -> Any:
        with urllib.request.urlopen(self.url, timeout=self.timeout_s) as answer:  # noqa: S310 (configured URL)
            return json.loads(answer.read())

    async def key(self, token: str) -> jwt.PyJWK:
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"invalid token: {exc}") from None
        if kid not in self._keys:
            try:
                await self.refresh()
            except Exception as exc:  # the provider away: the keys held still serve
                log.error("JWKS fetch from %s failed: %r", self.url, exc)
        found = self._keys.get(kid)
        if found is None and kid is None and len(self._keys) == 1:
            found = next(iter(self._keys.values()))  # one key, and a token that names none
        if found is None:
            raise Unauthorized("invalid token: signed with a key the identity provider does not publish")
        return found


class Authenticator:
    """Turns a presented credential (or its absence) into a Principal, or raises 401."""

    def __init__(self, settings: Any):
        self.mode = settings.auth_mode
        self.sources: list[CredentialSource] = []  # app/main.py adds the database's keys and issued tokens
        self._keys: dict[bytes, Principal] = {}
        if self.mode == "api-key":
            entries = json.loads(
                Path(settings.api_keys_file).read_text() if settings.api_keys_file else settings.api_keys or "[]"
            )
            for entry in entries:
                digest = bytes.fromhex(entry["sha256"])
                claims = entry.get("claims") or {}
                if not isinstance(claims, dict):
                    raise ValueError(f"API key '{entry['name']}': claims is an object of names and values")
                self._keys[digest] = Principal(entry["name"], parse_scopes(entry.get("scopes", [])), claims)
            if not self._keys:
                raise ValueError("GATEWAY_AUTH_MODE=api-key needs GATEWAY_API_KEYS or GATEWAY_API_KEYS_FILE")
        elif self.mode == "jwt":
            self._algorithm = settings.jwt_algorithm
            self._jwks = Jwks(settings.jwt_jwks_url, settings.jwt_jwks_min_refresh_s) if settings.jwt_jwks_url else None
            self._key: Any = ""  # with a JWKS, each token's key is its provider's
            if self._jwks is None and self._algorithm == "HS256":
                if not settings.jwt_secret:
                    raise ValueError("HS256 needs GATEWAY_JWT_SECRET")
                self._key = settings.jwt_secret
            elif self._jwks is None:
                if not settings.jwt_public_key_file:
                    raise ValueError(f"{self._algorithm} needs GATEWAY_JWT_PUBLIC_KEY_FILE or GATEWAY_JWT_JWKS_URL")
                self._key = Path(settings.jwt_public_key_file).read_text()
            self._audience, self._issuer = settings.jwt_audience, settings.jwt_issuer
        elif self.mode == "none":
            log.warning(
                "AUTHENTICATION IS OFF (GATEWAY_AUTH_MODE=none): anyone who reaches the gateway may read and write "
                "every exposed table"
            )

    async def start(self) -> None:
        """Fetch the identity provider's keys now (best effort: a first token fetches them too)."""
        if self.mode == "jwt" and self._jwks is not None:
            try:
                await self._jwks.refresh()
            except Exception as exc:
                log.error("JWKS fetch from %s failed at start: %r", self._jwks.url, exc)

    async def authenticate(self, credential: str | None) -> Principal:
        if self.mode == "none":
            return EVERYONE
        if not credential:
            raise Unauthorized("credentials required: Authorization: Bearer <token or key>, or X-API-Key")
        for source in self.sources:
            found = await source.principal(credential)
            if found is not None:
                return found
        if self.mode == "api-key":
            digest = hashlib.sha256(credential.encode()).digest()
            for known, principal in self._keys.items():
                if hmac.compare_digest(known, digest):
                    return principal
            raise Unauthorized("unknown API key")
        key: Any = self._key
        algorithms = [self._algorithm]
        if self._jwks is not None:
            signing = await self._jwks.key(credential)
            key, algorithms = signing.key, [signing.algorithm_name]
        try:
            claims = jwt.decode(
                credential,
                key,
                algorithms=algorithms,
                audience=self._audience,
                issuer=self._issuer,
                options={"require": ["exp"]},
                leeway=5,
            )
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"invalid token: {exc}") from None
        return Principal(
            str(claims.get("sub", "token")), parse_scopes(claims.get("scope") or claims.get("scopes")), claims
        )
