"""POST /token: OAuth2 (RFC 6749) as FastAPI's OAuth2 helpers and Swagger UI send it, form-encoded.

- `grant_type=password`, `username`, `password` (a user): an access token and a refresh token;
- `grant_type=client_credentials`, `client_id` (the key's id) and `client_secret` (the whole
  `gw_...` key), in the form or as HTTP Basic: an access token;
- `grant_type=refresh_token`, `refresh_token`: the next pair (the one sent is used up).

`scope` (optional) narrows the token to some of the credential's scopes. Brute force: every attempt
takes from a bucket per account and per client address (GATEWAY_TOKEN_RATE_LIMITS: 429 past it);
an unknown user is checked against a hash as slow as a real one, and a wrong password, an unknown,
expired or revoked user all get the same 401. The answer is RFC 6749's JSON (no envelope); errors
are the gateway's envelope.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import Response

from app.core.errors import Forbidden, InvalidBody, RouteNotFound, Unauthorized
from app.http.envelope import JSON
from app.http.route import Call
from app.services.accounts import Credential, hash_secret, verify_secret

MAX_FIELD = 4096
FIELDS = ("grant_type", "username", "password", "client_id", "client_secret", "refresh_token", "scope")
NO_STORE = {"Pragma": "no-cache"}  # Cache-Control: no-store is on every answer (middleware)
_unknown_user_hash: str | None = None  # a hash to verify against for a login nobody has (same time)


async def read_form(request: Request) -> dict[str, str]:
    """The form's fields (400: not a form, a field twice, too long, not UTF-8)."""
    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise InvalidBody("POST /token takes a form: content-type application/x-www-form-urlencoded")
    try:
        pairs = parse_qsl((await request.body()).decode("utf-8"), keep_blank_values=True, max_num_fields=20,
                          errors="strict")
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidBody(f"the form cannot be read: {str(exc)[:100]}") from None
    form: dict[str, str] = {}
    for name, value in pairs:
        if name in form:
            raise InvalidBody(f"'{name[:40]}' is given twice", {"field": name[:40]})
        if len(value) > MAX_FIELD:
            raise InvalidBody(f"'{name[:40]}' is over {MAX_FIELD} characters", {"field": name[:40]})
        form[name] = value
    return form


def _needed(form: dict[str, str], name: str) -> str:
    value = form.get(name, "")
    if not value:
        raise InvalidBody(f"'{name}' is required for grant_type={form.get('grant_type')}", {"field": name})
    return value


def _basic(request: Request) -> tuple[str, str] | None:
    header = request.headers.get("authorization", "")
    if header[:6].lower() != "basic ":
        return None
    try:
        user, colon, password = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise InvalidBody("the Basic credentials cannot be read") from None
    return (user, password) if colon else None


def narrowed(credential: Credential, asked: str | None) -> str:
    """The token's scope: the credential's, or the part of it asked for (403 for a scope not held)."""
    held = credential.scopes.split()
    if not asked:
        return " ".join(held)
    wanted = asked.split()
    missing = [s for s in wanted if s not in held]
    if missing:
        named = missing[0][:100]
        raise Forbidden(f"'{credential.name}' does not hold the scope '{named}'", {"scope": named})
    return " ".join(dict.fromkeys(wanted))


async def _unknown_hash() -> str:
    global _unknown_user_hash
    if _unknown_user_hash is None:
        _unknown_user_hash = await asyncio.to_thread(hash_secret, "no user has this password")
    return _unknown_user_hash


async def token(call: Call) -> Response:
    state = call.state
    issuer = state.tokens
    if issuer is None:
        raise RouteNotFound("this gateway issues no tokens: it needs GATEWAY_TOKEN_SECRET (or an HS256"
                            " GATEWAY_JWT_SECRET) and an auth mode other than none")
    request = call.request
    form = await read_form(request)
    address = request.client.host if request.client else "?"
    limiter = state.token_limiter
    limiter.take(address, "address")
    grant = form.get("grant_type", "")
    if grant == "password":
        username, password = _needed(form, "username"), _needed(form, "password")
        limiter.take(username, "account")
        credential = await state.accounts.user(username)
        stored = credential.secret if credential is not None else await _unknown_hash()
        right = await asyncio.to_thread(verify_secret, stored, password)
        if credential is None or not right or not credential.live():
            raise Unauthorized("invalid username or password")
        issued = await issuer.issue(credential, narrowed(credential, form.get("scope")), refresh=True)
    elif grant == "client_credentials":
        client_id, secret = _basic(request) or (form.get("client_id", ""), _needed(form, "client_secret"))
        limiter.take(client_id or secret[:19], "account")
        try:
            key = await state.accounts.key(secret)
        except Unauthorized:
            raise Unauthorized("invalid client credentials") from None
        if client_id and client_id != key.id:
            raise Unauthorized("invalid client credentials")
        issued = await issuer.issue(key, narrowed(key, form.get("scope")), refresh=False)
    elif grant == "refresh_token":
        issued = await issuer.refresh(_needed(form, "refresh_token"))
    else:
        raise InvalidBody("grant_type is password, client_credentials or refresh_token", {"field": "grant_type"})
    return JSON(issued.answer(), headers=NO_STORE)
