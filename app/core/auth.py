"""Who is calling, and what they may do (no HTTP here: routes hand in the presented credential).

Modes (GATEWAY_AUTH_MODE):
- `none`: everyone may do everything (the gateway warns loudly at start; /health/ready says so);
- `api-key`: keys are configured as SHA-256 hashes with their scopes (GATEWAY_API_KEYS as JSON, or
  GATEWAY_API_KEYS_FILE), so the configuration holds no secret;
- `jwt`: HS256 with GATEWAY_JWT_SECRET, or RS256/ES256 with GATEWAY_JWT_PUBLIC_KEY_FILE; `exp` is
  required, `nbf`, `aud` (GATEWAY_JWT_AUDIENCE) and `iss` (GATEWAY_JWT_ISSUER) are checked; scopes come
  from the `scope` claim (space-separated) or `scopes` (a list).

A scope is `action:table`, with action in read, write, import, export and table a name or a glob
(`read:*`, `write:orders`, `import:order_*`).
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt

from app.core.errors import Forbidden, Unauthorized

log = logging.getLogger("gateway.auth")
ACTIONS = ("read", "write", "import", "export", "execute")  # execute: a stored procedure or function


@dataclass(frozen=True)
class Principal:
    name: str
    scopes: frozenset[tuple[str, str]]  # (action, table glob)

    def may(self, action: str, table: str) -> bool:
        return any(a == action and fnmatch.fnmatchcase(table, glob) for a, glob in self.scopes)

    def require(self, action: str, table: str) -> None:
        if not self.may(action, table):
            raise Forbidden(f"'{self.name}' may not {action} table '{table}'", {"needs": f"{action}:{table}"})


EVERYONE = Principal("anonymous", frozenset((action, "*") for action in ACTIONS))
NOBODY = Principal("unauthenticated", frozenset())  # the caller of an open route: credentials are not read


def parse_scopes(scopes: Any) -> frozenset[tuple[str, str]]:
    items = scopes.split() if isinstance(scopes, str) else list(scopes or [])
    parsed = set()
    for item in items:
        action, _, table = str(item).partition(":")
        if action in ACTIONS and table:
            parsed.add((action, table))
    return frozenset(parsed)


class Authenticator:
    """Turns a presented credential (or its absence) into a Principal, or raises 401."""

    def __init__(self, settings: Any):
        self.mode = settings.auth_mode
        self._keys: dict[bytes, Principal] = {}
        if self.mode == "api-key":
            entries = json.loads(
                Path(settings.api_keys_file).read_text() if settings.api_keys_file else settings.api_keys or "[]"
            )
            for entry in entries:
                digest = bytes.fromhex(entry["sha256"])
                self._keys[digest] = Principal(entry["name"], parse_scopes(entry.get("scopes", [])))
            if not self._keys:
                raise ValueError("GATEWAY_AUTH_MODE=api-key needs GATEWAY_API_KEYS or GATEWAY_API_KEYS_FILE")
        elif self.mode == "jwt":
            self._algorithm = settings.jwt_algorithm
            if self._algorithm == "HS256":
                if not settings.jwt_secret:
                    raise ValueError("HS256 needs GATEWAY_JWT_SECRET")
                self._key: Any = settings.jwt_secret
            else:
                if not settings.jwt_public_key_file:
                    raise ValueError(f"{self._algorithm} needs GATEWAY_JWT_PUBLIC_KEY_FILE")
                self._key = Path(settings.jwt_public_key_file).read_text()
            self._audience, self._issuer = settings.jwt_audience, settings.jwt_issuer
        elif self.mode == "none":
            log.warning(
                "AUTHENTICATION IS OFF (GATEWAY_AUTH_MODE=none): anyone who reaches the gateway may read and write "
                "every exposed table"
            )

    def authenticate(self, credential: str | None) -> Principal:
        if self.mode == "none":
            return EVERYONE
        if not credential:
            raise Unauthorized("credentials required: Authorization: Bearer <token or key>, or X-API-Key")
        if self.mode == "api-key":
            digest = hashlib.sha256(credential.encode()).digest()
            for known, principal in self._keys.items():
                if hmac.compare_digest(known, digest):
                    return principal
            raise Unauthorized("unknown API key")
        try:
            claims = jwt.decode(
                credential,
                self._key,
                algorithms=[self._algorithm],
                audience=self._audience,
                issuer=self._issuer,
                options={"require": ["exp"]},
                leeway=5,
            )
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"invalid token: {exc}") from None
        return Principal(str(claims.get("sub", "token")), parse_scopes(claims.get("scope") or claims.get("scopes")))
