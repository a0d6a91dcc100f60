"""Accounts and API keys kept in the database (issue 29): created, listed, rotated and revoked while
the gateway runs, seen by a second instance within a second; POST /token's OAuth2 grants with
httpx; tokens forged, expired, and replayed after revocation; brute force; and no input a 5xx."""

import asyncio
import base64
import hashlib
import json
import time

import jwt
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from app.main import create_app
from tests.conftest import run_sql, running
from tests.integration.test_crud import assert_error

ROOT_KEY = "root-bootstrap-key"
SECRET = "t" * 40
ENV_KEYS = json.dumps([
    {"name": "root", "sha256": hashlib.sha256(ROOT_KEY.encode()).hexdigest(),
     "scopes": ["admin", "audit", "read:*", "write:*", "admin:*"]},
    {"name": "reader", "sha256": hashlib.sha256(b"reader-key").hexdigest(), "scopes": ["read:*"]},
])
ROOT = {"X-API-Key": ROOT_KEY}
FORM = "application/x-www-form-urlencoded"


def config(settings, **more):
    return settings(auth_mode="api-key", api_keys=ENV_KEYS, token_secret=SECRET, **more)


async def data(response, status=200):
    assert response.status_code == status, response.text
    return response.json()["data"]


async def refused_within(client, headers, seconds=1.5, path="/api/users/query"):
    """The credential stops working on this instance within `seconds` (how long it took)."""
    started = time.monotonic()
    while True:
        response = await client.get(path, headers=headers)
        if response.status_code == 401:
            return time.monotonic() - started
        assert response.status_code == 200, response.text
        assert time.monotonic() - started < seconds, "still accepted"
        await asyncio.sleep(0.05)


async def test_keys_created_rotated_and_revoked_across_two_instances(schema, settings):
    async with running(config(settings)) as first, running(config(settings)) as second:
        made = await data(await first.post("/api/admin/keys", json={
            "name": "etl", "scopes": ["read:users", "write:users"], "claims": {"org": "acme"}}, headers=ROOT), 201)
        key = made["key"]
        assert key.startswith(f"gw_{made['id']}_") and made["scopes"] == ["read:users", "write:users"]
        # The other instance knows it at once (it had never read the table) and both take it either way.
        for client in (first, second):
            assert (await client.get("/api/users/query", headers={"X-API-Key": key})).status_code == 200
            assert (await client.get("/api/users/query", headers={"Authorization": f"Bearer {key}"})).status_code == 200
            assert_error(await client.get("/api/orders/query", headers={"X-API-Key": key}), 403, "forbidden")
        # Stored hashed (Argon2), listed without a secret.
        [(stored,)] = run_sql(schema, "SELECT secret FROM _gateway_credentials WHERE id = %s", (made["id"],))
        assert stored.startswith("$argon2id$") and key.split("_", 2)[2] not in stored
        listed = await data(await second.get("/api/admin/keys", headers=ROOT))
        assert [k["name"] for k in listed] == ["etl"] and "key" not in listed[0] and "secret" not in listed[0]
        # Never served as a table.
        assert_error(await first.get("/api/_gateway_credentials/query", headers=ROOT), 404, "table_not_found")
        # Rotate on the first: the old key fails there at once, on the second within a second.
        rotated = await data(await first.post(f"/api/admin/keys/{made['id']}/rotate", headers=ROOT))
        assert rotated["id"] == made["id"] and rotated["key"] != key
        assert_error(await first.get("/api/users/query", headers={"X-API-Key": key}), 401, "unauthorized")
        assert await refused_within(second, {"X-API-Key": key}) < 1.5
        new = {"X-API-Key": rotated["key"]}
        for client in (first, second):
            assert (await client.get("/api/users/query", headers=new)).status_code == 200
        # Revoke on the second: the first refuses it within a second.
        # A client opening many connections at once with a new key: one Argon2 check, no 429.
        newest = {"X-API-Key": (await data(await first.post(f"/api/admin/keys/{made['id']}/rotate", headers=ROOT)))["key"]}
        answers = await asyncio.gather(*(first.get("/api/users/query", headers=newest) for _ in range(30)))
        assert [a.status_code for a in answers] == [200] * 30
        new = newest
        assert (await data(await second.delete(f"/api/admin/keys/{made['id']}", headers=ROOT)))["revoked"]
        assert_error(await second.get("/api/users/query", headers=new), 401, "unauthorized")
        assert await refused_within(first, new) < 1.5
        assert_error(await first.delete(f"/api/admin/keys/{made['id']}", headers=ROOT), 404, "row_not_found")
        assert_error(await first.post(f"/api/admin/keys/{made['id']}/rotate", headers=ROOT), 404, "row_not_found")
        # Made-up keys of the right shape, and of others: 401, the same words; an environment key may hold dots.
        assert (await first.get("/api/users/query", headers={"X-API-Key": "a.b.c"})).json()["message"] == "unknown API key"
        for fake in (f"gw_{made['id']}_nope", "gw_0123456789abcdef_x", "gw_", "gw_zz_zz"):
            body = assert_error(await first.get("/api/users/query", headers={"X-API-Key": fake}), 401, "unauthorized")
            assert body["message"] == "unknown API key"
        # The environment's keys keep working alongside.
        assert (await first.get("/api/users/query", headers={"X-API-Key": "reader-key"})).status_code == 200


async def test_an_expired_key_and_what_an_admin_may_grant(schema, settings):
    async with running(config(settings)) as client:
        made = await data(await client.post("/api/admin/keys", json={"name": "brief", "scopes": ["read:*"],
                                                                    "expires_in_s": 1}, headers=ROOT), 201)
        assert (await client.get("/api/users/query", headers={"X-API-Key": made["key"]})).status_code == 200
        await asyncio.sleep(1.1)
        assert_error(await client.get("/api/users/query", headers={"X-API-Key": made["key"]}), 401, "unauthorized")
        # Without `admin`: 403 (admin:* is a table's policy, not the accounts).
        keys = await data(await client.post("/api/admin/keys", json={"name": "policy-admin", "scopes": ["admin:*",
                                                                                                      "read:*"]},
                                            headers=ROOT), 201)
        for headers in ({"X-API-Key": "reader-key"}, {"X-API-Key": keys["key"]}):
            assert_error(await client.get("/api/admin/keys", headers=headers), 403, "forbidden")
            assert_error(await client.post("/api/admin/keys", json={"name": "x"}, headers=headers), 403, "forbidden")
        assert_error(await client.get("/api/admin/keys"), 401, "unauthorized")
        # An admin grants only what it holds; a scope that cannot be read is 400.
        assert_error(await client.post("/api/admin/keys", json={"name": "x", "scopes": ["export:*"]}, headers=ROOT),
                     403, "forbidden")
        assert_error(await client.post("/api/admin/keys", json={"name": "x", "scopes": ["root"]}, headers=ROOT),
                     400, "invalid_body")
        assert_error(await client.post("/api/admin/keys", json={"name": "a b", "scopes": []}, headers=ROOT),
                     400, "invalid_body")
        # The OpenAPI document lists the admin routes for an admin only.
        assert "/api/admin/keys" in (await client.get("/openapi.json", headers=ROOT)).json()["paths"]
        paths = (await client.get("/openapi.json", headers={"X-API-Key": "reader-key"})).json()["paths"]
        assert "/api/admin/keys" not in paths
        form = paths["/token"]["post"]["requestBody"]["content"]
        assert list(form) == [FORM] and form[FORM]["schema"]["required"] == ["grant_type"]


async def test_with_auth_off_nobody_manages_accounts_and_no_token_is_issued(schema, settings):
    async with running(settings(token_secret=SECRET)) as client:
        assert_error(await client.get("/api/admin/keys"), 403, "forbidden")
        assert_error(await client.post("/token", data={"grant_type": "password", "username": "a", "password": "b"}),
                     404, "not_found")


def token_form(**fields):
    return {key: value for key, value in fields.items() if value is not None}


async def test_oauth2_password_refresh_and_client_credentials(schema, settings):
    async with running(config(settings)) as first, running(config(settings)) as second:
        user = await data(await first.post("/api/admin/users", json={
            "username": "ann", "password": "correct horse", "scopes": ["read:users", "write:users"],
            "claims": {"org": "acme"}}, headers=ROOT), 201)
        assert_error(await first.post("/api/admin/users", json={"username": "ann", "password": "another one"},
                                      headers=ROOT), 409, "conflict")
        answer = await second.post("/token", data={"grant_type": "password", "username": "ann",
                                                   "password": "correct horse"})
        assert answer.status_code == 200, answer.text
        assert answer.headers["cache-control"] == "no-store"
        issued = answer.json()
        assert issued["token_type"] == "bearer" and issued["expires_in"] == 300
        assert issued["scope"] == "read:users write:users"
        claims = jwt.decode(issued["access_token"], SECRET, algorithms=["HS256"])
        assert claims["sub"] == "ann" and claims["org"] == "acme" and claims["jti"] and claims["exp"] > time.time()
        bearer = {"Authorization": f"Bearer {issued['access_token']}"}
        for client in (first, second):
            assert (await client.get("/api/users/query", headers=bearer)).status_code == 200
        # A narrower scope on request; one not held is 403.
        narrow = (await first.post("/token", data={"grant_type": "password", "username": "ann",
                                                   "password": "correct horse", "scope": "read:users"})).json()
        assert narrow["scope"] == "read:users"
        assert_error(await first.post("/token", data={"grant_type": "password", "username": "ann",
                                                      "password": "correct horse", "scope": "read:*"}), 403, "forbidden")
        # Wrong password and unknown user: the same answer.
        wrong = assert_error(await first.post("/token", data={"grant_type": "password", "username": "ann",
                                                              "password": "wrong horse"}), 401, "unauthorized")
        nobody = assert_error(await first.post("/token", data={"grant_type": "password", "username": "bob",
                                                               "password": "wrong horse"}), 401, "unauthorized")
        assert wrong["message"] == nobody["message"] == "invalid username or password"
        # Refresh: the next pair; the used one replayed revokes the family (the next one too).
        refreshed = (await second.post("/token", data={"grant_type": "refresh_token",
                                                       "refresh_token": issued["refresh_token"]})).json()
        assert refreshed["refresh_token"] != issued["refresh_token"]
        assert_error(await first.post("/token", data={"grant_type": "refresh_token",
                                                      "refresh_token": issued["refresh_token"]}), 401, "unauthorized")
        assert_error(await first.post("/token", data={"grant_type": "refresh_token",
                                                      "refresh_token": refreshed["refresh_token"]}), 401, "unauthorized")
        assert run_sql(schema, "SELECT COUNT(*) FROM _gateway_refresh_tokens WHERE revoked_at IS NULL") == [(1,)]
        # A forged token (another secret, the gateway's kid), an expired one, one for a made-up credential.
        forged = jwt.encode(claims, "x" * 40, algorithm="HS256", headers={"kid": "gateway"})
        expired = jwt.encode(claims | {"exp": int(time.time()) - 60}, SECRET, algorithm="HS256",
                             headers={"kid": "gateway"})
        made_up = jwt.encode(claims | {"gid": "0" * 16}, SECRET, algorithm="HS256", headers={"kid": "gateway"})
        for token in (forged, expired, made_up, "a.b.c"):
            assert_error(await first.get("/api/users/query", headers={"Authorization": f"Bearer {token}"}),
                         401, "unauthorized")
        # A new password ends the user's tokens: access tokens within a second, refresh tokens at once.
        fresh = (await first.post("/token", data={"grant_type": "password", "username": "ann",
                                                  "password": "correct horse"})).json()
        assert (await data(await first.post("/api/admin/users/ann/rotate", json={"password": "battery staple"},
                                            headers=ROOT)))["id"] == user["id"]
        assert_error(await first.get("/api/users/query", headers=bearer), 401, "unauthorized")
        assert await refused_within(second, {"Authorization": f"Bearer {fresh['access_token']}"}) < 1.5
        assert_error(await second.post("/token", data={"grant_type": "refresh_token",
                                                       "refresh_token": fresh["refresh_token"]}), 401, "unauthorized")
        again = (await second.post("/token", data={"grant_type": "password", "username": "ann",
                                                   "password": "battery staple"})).json()
        # Revoked: its tokens end, and it cannot log in.
        assert (await first.delete("/api/admin/users/ann", headers=ROOT)).status_code == 200
        assert_error(await first.post("/token", data={"grant_type": "refresh_token",
                                                      "refresh_token": again["refresh_token"]}), 401, "unauthorized")
        assert_error(await first.post("/token", data={"grant_type": "password", "username": "ann",
                                                      "password": "battery staple"}), 401, "unauthorized")
        assert await refused_within(second, {"Authorization": f"Bearer {again['access_token']}"}) < 1.5
        listed = await data(await first.get("/api/admin/users", headers=ROOT))
        assert [(u["name"], u["revoked_at"] is not None) for u in listed] == [("ann", True)]
        # Client credentials: the key's id and the whole key, in the form or as HTTP Basic; no refresh token.
        key = await data(await first.post("/api/admin/keys", json={"name": "svc", "scopes": ["read:users"]},
                                          headers=ROOT), 201)
        await asyncio.sleep(0.25)  # a key made on another instance a moment ago: read again on a miss (0.2 s)
        by_form = (await second.post("/token", data={"grant_type": "client_credentials", "client_id": key["id"],
                                                     "client_secret": key["key"]})).json()
        assert "refresh_token" not in by_form and by_form.get("scope") == "read:users", by_form
        basic = base64.b64encode(f"{key['id']}:{key['key']}".encode()).decode()
        by_basic = await second.post("/token", data={"grant_type": "client_credentials"},
                                     headers={"Authorization": f"Basic {basic}"})
        assert by_basic.status_code == 200, by_basic.text
        assert (await second.get("/api/users/query",
                                 headers={"Authorization": f"Bearer {by_form['access_token']}"})).status_code == 200
        assert_error(await second.post("/token", data={"grant_type": "client_credentials", "client_id": "other",
                                                       "client_secret": key["key"]}), 401, "unauthorized")
        assert_error(await second.post("/token", data={"grant_type": "client_credentials",
                                                       "client_secret": key["key"] + "x"}), 401, "unauthorized")
        # Bad forms: 400.
        assert_error(await first.post("/token", json={"grant_type": "password"}), 400, "invalid_body")
        assert_error(await first.post("/token", data={"grant_type": "magic"}), 400, "invalid_body")
        assert_error(await first.post("/token", content="grant_type=password&grant_type=password",
                                      headers={"content-type": FORM}), 400, "invalid_body")


async def test_issued_tokens_in_jwt_mode_and_the_existing_path(schema, settings):
    jwt_secret = "j" * 40
    admin = jwt.encode({"sub": "boot", "exp": int(time.time()) + 60, "scope": "admin read:*"}, jwt_secret,
                       algorithm="HS256")
    async with running(settings(auth_mode="jwt", jwt_secret=jwt_secret)) as client:
        bearer = {"Authorization": f"Bearer {admin}"}
        await data(await client.post("/api/admin/users", json={"username": "cy", "password": "long enough",
                                                              "scopes": ["read:users"]}, headers=bearer), 201)
        issued = (await client.post("/token", data={"grant_type": "password", "username": "cy",
                                                    "password": "long enough"})).json()
        # Signed with GATEWAY_JWT_SECRET: any verifier holding it accepts it; this gateway too.
        assert jwt.decode(issued["access_token"], jwt_secret, algorithms=["HS256"])["scope"] == "read:users"
        response = await client.get("/api/users/query", headers={"Authorization": f"Bearer {issued['access_token']}"})
        assert response.status_code == 200, response.text


async def test_brute_force_is_rate_limited_per_account_and_address(schema, settings):
    async with running(config(settings, token_rate_limits="account=3/min,address=5/min")) as client:
        for attempt in range(3):
            assert_error(await client.post("/token", data={"grant_type": "password", "username": "ann",
                                                           "password": f"guess {attempt}"}), 401, "unauthorized")
        limited = assert_error(await client.post("/token", data={"grant_type": "password", "username": "ann",
                                                                 "password": "guess 4"}), 429, "rate_limited")
        assert limited and int((await client.post("/token", data={
            "grant_type": "password", "username": "ann", "password": "x"})).headers["retry-after"]) > 0
        # Other accounts from the same address: the address's bucket (5) ends it too.
        assert_error(await client.post("/token", data={"grant_type": "password", "username": "bob",
                                                       "password": "guess"}), 429, "rate_limited")


FUZZ = hypothesis_settings(max_examples=40, deadline=None, derandomize=True, database=None,
                           suppress_health_check=list(HealthCheck))
text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)
values = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), text),
                      lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(text, inner, max_size=3)),
                      max_leaves=6)


def test_no_input_gives_a_5xx(schema, settings):
    app = create_app(config(settings, token_rate_limits=""))
    with TestClient(app, raise_server_exceptions=False) as client:
        fields = st.sampled_from(["grant_type", "username", "password", "client_id", "client_secret",
                                  "refresh_token", "scope", "x"])
        grants = st.sampled_from(["password", "client_credentials", "refresh_token", "", "x"])

        @FUZZ
        @given(form=st.lists(st.tuples(fields, st.one_of(grants, text, st.just("gwr_ab_cd"), st.just("gw_"))),
                             max_size=5),
               raw=st.binary(max_size=60),
               basic=st.one_of(st.none(), st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=30),
                               st.sampled_from(["Z3dfOmE=", "YTpi", "gA==", "=="])))
        def token(form, raw, basic):
            headers = {"Authorization": f"Basic {basic}"} if basic is not None else {}
            for response in (client.post("/token", data=dict(form), headers=headers),
                             client.post("/token", content=raw, headers={"content-type": FORM})):
                assert response.status_code < 500, response.text
                assert response.status_code in (200, 400, 401, 403, 404, 429), response.text

        @FUZZ
        @given(body=st.one_of(values, st.dictionaries(st.sampled_from(["name", "username", "password", "scopes",
                                                                       "claims", "expires_in_s", "x"]), values,
                                                      max_size=5)),
               path=st.sampled_from(["/api/admin/keys", "/api/admin/users", "/api/admin/users/ann/rotate",
                                     "/api/admin/keys/0123456789abcdef/rotate"]))
        def admin(body, path):
            response = client.post(path, json=body, headers=ROOT)
            assert response.status_code < 500, response.text

        token()
        admin()


async def test_the_audit_trail(schema, settings):
    async with running(config(settings)) as client:
        made = await client.post("/api/users", json={"input": [{"name": "Ann"}, {"name": "Bob"}]}, headers=ROOT)
        assert made.status_code == 201, made.text
        for _ in range(2):  # the replay changed nothing: one entry
            keyed = await client.post("/api/users", json={"input": {"name": "Cy"}},
                                      headers=ROOT | {"Idempotency-Key": "k1"})
            assert keyed.status_code == 201, keyed.text
        assert (await client.put("/api/users", json={"input": {"age": 3}, "where": {"name": "Ann"}},
                                 headers=ROOT)).status_code == 200
        assert (await client.request("DELETE", "/api/users", json={"where": {"name": {"in": ["Ann", "Bob"]}}},
                                     headers=ROOT)).status_code == 200
        assert_error(await client.post("/api/users", json={"input": {"nope": 1}}, headers=ROOT), 400, "unknown_column")
        assert (await client.put("/api/schemas/users", json={"type": "object"}, headers=ROOT)).status_code == 200
        assert (await client.put("/api/policies/orders", json={"column": "user_id", "claim": "uid"},
                                 headers=ROOT)).status_code == 200
        key = await data(await client.post("/api/admin/keys", json={"name": "auditor", "scopes": ["audit"]},
                                           headers=ROOT), 201)
        await data(await client.delete(f"/api/admin/keys/{key['id']}", headers=ROOT))
        trail = await data(await client.get("/api/admin/audit", headers=ROOT))
        assert [(e["subject"], e["table"], e["action"], e["count"]) for e in reversed(trail)] == [
            ("root", "users", "create", 2), ("root", "users", "create", 1), ("root", "users", "update", 1),
            ("root", "users", "delete", 2), ("root", "users", "put_rules", 1), ("root", "orders", "put_policy", 1),
            ("root", "_gateway_credentials", "create_key", 1), ("root", "_gateway_credentials", "revoke_key", 1)]
        assert trail[-1]["request_id"] == made.headers["x-request-id"]
        assert "Ann" not in json.dumps(trail) and key["key"] not in json.dumps(trail)
        only_orders = await data(await client.get("/api/admin/audit", params={"table": "orders"}, headers=ROOT))
        assert [e["action"] for e in only_orders] == ["put_policy"]
        assert await data(await client.get("/api/admin/audit", params={"since": "2999-01-01T00:00:00Z"},
                                           headers=ROOT)) == []
        assert len(await data(await client.get("/api/admin/audit", params={"limit": 2, "offset": 1},
                                               headers=ROOT))) == 2
        assert_error(await client.get("/api/admin/audit", params={"since": "yesterday"}, headers=ROOT),
                     400, "invalid_body")
        assert_error(await client.get("/api/admin/audit", headers={"X-API-Key": "reader-key"}), 403, "forbidden")


async def test_an_admin_cannot_take_over_a_stronger_credential(schema, settings):
    """Rotating (or revoking) a key or a user is granting its scopes again: an admin holding fewer
    scopes than the credential is refused (403), as it is when creating one."""
    async with running(config(settings)) as client:
        weak = await data(await client.post("/api/admin/keys", json={"name": "weak", "scopes": ["admin", "read:users"]},
                                            headers=ROOT), 201)
        strong = await data(await client.post("/api/admin/keys", json={"name": "strong", "scopes": ["read:*", "write:*"]},
                                              headers=ROOT), 201)
        await data(await client.post("/api/admin/users", json={"username": "boss", "password": "boss password 1",
                                                               "scopes": ["admin", "read:*"]}, headers=ROOT), 201)
        as_weak = {"X-API-Key": weak["key"]}
        for method, path, body in (("POST", f"/api/admin/keys/{strong['id']}/rotate", None),
                                   ("DELETE", f"/api/admin/keys/{strong['id']}", None),
                                   ("POST", "/api/admin/users/boss/rotate", {"password": "attacker pw 123"}),
                                   ("DELETE", "/api/admin/users/boss", None)):
            answer = await client.request(method, path, json=body, headers=as_weak)
            assert answer.status_code == 403 and answer.json()["error"] == "forbidden", (path, answer.text)
        assert (await client.get("/api/users/query", headers={"X-API-Key": strong["key"]})).status_code == 200
        token = await client.post("/token", data={"grant_type": "password", "username": "boss",
                                                  "password": "boss password 1"})
        assert token.status_code == 200  # the password was not changed
        mine = await data(await client.post("/api/admin/keys", json={"name": "mine", "scopes": ["read:users"]},
                                            headers=as_weak), 201)
        assert (await client.post(f"/api/admin/keys/{mine['id']}/rotate", headers=as_weak)).status_code == 200
