"""Accounts and API keys, managed while the gateway runs (scope `admin`): create, list, revoke,
rotate. A key's secret is answered once, when it is made or rotated; only its Argon2 hash is kept.

An admin grants only scopes it holds itself (a glob it holds covers a narrower one: `read:*` covers
`read:orders`), so `admin` alone cannot make a key that reads everything.
"""

from __future__ import annotations

import fnmatch
from datetime import UTC, datetime
from typing import Any

from starlette.responses import Response

from app.core.auth import Principal, parse_scopes, scope_text
from app.core.errors import Forbidden, InvalidBody, RouteNotFound
from app.http.envelope import success
from app.http.route import Call
from app.services.accounts import check_name, expiry, new_key
from app.services.tokens import revoke_refresh


def granted(who: Principal, scopes: list[str]) -> str:
    """The scopes as stored (space-separated): each one readable (400) and held by `who` (403)."""
    parsed: set[tuple[str, str]] = set()
    for item in scopes:
        one = parse_scopes([item]) if isinstance(item, str) and item.strip() == item and item else frozenset()
        if len(one) != 1:
            raise InvalidBody(f"scope '{str(item)[:100]}' is not `action:table` (read, write, import, export, execute,"
                              " admin) nor one of `admin`, `audit`", {"scope": str(item)[:100]})
        parsed |= one
    for action, glob in sorted(parsed):
        covered = (action, glob) in who.scopes or (glob != "" and any(
            a == action and g != "" and fnmatch.fnmatchcase(glob, g) for a, g in who.scopes))
        if not covered:
            text = f"{action}:{glob}" if glob else action
            raise Forbidden(f"'{who.name}' may grant only scopes it holds: not '{text}'", {"scope": text})
    return " ".join(scope_text(frozenset(parsed)))


def _claims(claims: dict[str, Any]) -> dict[str, Any]:
    if len(claims) > 50 or any(len(k) > 64 for k in claims):
        raise InvalidBody("claims: at most 50, each name at most 64 characters")
    return claims


def _page(call: Call) -> tuple[int, int]:
    return call.query.get("limit") or 100, call.query.get("offset") or 0


async def create_key(call: Call) -> Response:
    body = call.body
    name = check_name(body.name, "name")
    scopes = granted(call.who, body.scopes)
    id_, secret, key = new_key()
    await call.state.accounts.create(id_, "key", name, secret, scopes, _claims(body.claims),
                                     expiry(body.expires_in_s), call.who.name)
    data = _made(id_, "key", name, scopes, body) | {"key": key}
    return success(data, "key created: it is shown this once", status=201)


async def create_user(call: Call) -> Response:
    body = call.body
    name = check_name(body.username, "username")
    scopes = granted(call.who, body.scopes)
    id_ = new_key()[0]
    await call.state.accounts.create(id_, "user", name, body.password, scopes, _claims(body.claims),
                                     expiry(body.expires_in_s), call.who.name)
    return success(_made(id_, "user", name, scopes, body), "user created", status=201)


def _made(id_: str, kind: str, name: str, scopes: str, body: Any) -> dict:
    return {"id": id_, "kind": kind, "name": name, "scopes": scopes.split(), "claims": body.claims,
            "expires_in_s": body.expires_in_s}


async def list_keys(call: Call) -> Response:
    found = await call.state.accounts.listed("key", *_page(call))
    return success(found, f"{len(found)} key(s)")


async def list_users(call: Call) -> Response:
    found = await call.state.accounts.listed("user", *_page(call))
    return success(found, f"{len(found)} user(s)")


def _stronger(call: Call) -> Any:
    """The check that the caller holds every scope of the credential it changes."""
    return lambda scopes: granted(call.who, scopes.split())


async def revoke_key(call: Call) -> Response:
    id_ = await call.state.accounts.revoke("key", call.path["key_id"], call.who.name, revoke_refresh, _stronger(call))
    return success({"id": id_, "revoked": True}, "key revoked")


async def revoke_user(call: Call) -> Response:
    id_ = await call.state.accounts.revoke("user", call.path["user"], call.who.name, revoke_refresh, _stronger(call))
    return success({"id": id_, "revoked": True}, "user revoked: its tokens end")


async def rotate_key(call: Call) -> Response:
    key_id = call.path["key_id"]
    _, secret, key = new_key(key_id)  # the same id: a 404 below when no live key has it
    await call.state.accounts.rotate("key", key_id, secret, call.who.name, revoke_refresh, _stronger(call))
    return success({"id": key_id, "key": key}, "key rotated: the new key is shown this once, the old one ends")


def _instant(text: str | None, name: str) -> datetime | None:
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text.removesuffix("Z"))
    except ValueError:
        raise InvalidBody(f"query.{name}: an ISO 8601 time (UTC), as 2026-01-31T12:00:00Z", {"field": name}) from None
    return when.astimezone(UTC).replace(tzinfo=None) if when.tzinfo is not None else when


async def read_audit(call: Call) -> Response:
    trail = call.state.audit
    if trail is None:
        raise RouteNotFound("the audit trail is off (GATEWAY_AUDIT)")
    query = call.query
    found = await trail.read(query.get("table"), query.get("subject"), _instant(query.get("since"), "since"),
                             _instant(query.get("until"), "until"), *_page(call))
    return success(found, f"{len(found)} entr{'y' if len(found) == 1 else 'ies'}")


async def rotate_user(call: Call) -> Response:
    id_ = await call.state.accounts.rotate("user", call.path["user"], call.body.password, call.who.name,
                                           revoke_refresh, _stronger(call))
    return success({"id": id_}, "password changed: the user's tokens end")
