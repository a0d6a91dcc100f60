"""Access control: every auth mode, bad tokens, and missing scopes on each route kind."""

import hashlib
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.conftest import run_sql, running
from tests.integration.test_crud import assert_error

KEYS = {"reader": "r-secret", "orders-writer": "w-secret", "etl": "e-secret"}
SCOPES = {"reader": ["read:*"], "orders-writer": ["read:orders", "write:orders"], "etl": ["import:users", "export:users", "read:users"]}


def api_keys() -> str:
    return json.dumps([
        {"name": name, "sha256": hashlib.sha256(secret.encode()).hexdigest(), "scopes": SCOPES[name]}
        for name, secret in KEYS.items()
    ])


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


async def test_api_keys_and_scopes_on_every_route_kind(schema, settings):
    run_sql(schema, "INSERT INTO users (id, name) VALUES (1, 'a')")
    async with running(settings(auth_mode="api-key", api_keys=api_keys())) as client:
        response = await client.get("/api/users/query")
        assert_error(response, 401, "unauthorized")
        assert response.headers["www-authenticate"] == "Bearer"
        assert_error(await client.get("/api/users/query", headers=bearer("wrong")), 401, "unauthorized")
        reader, writer, etl = bearer(KEYS["reader"]), {"X-API-Key": KEYS["orders-writer"]}, bearer(KEYS["etl"])
        # read
        assert (await client.get("/api/users/query", headers=reader)).status_code == 200
        assert (await client.get("/api/users/1", headers=reader)).status_code == 200
        assert (await client.post("/api/users/query", json={}, headers=reader)).status_code == 200
        assert_error(await client.get("/api/users/query", headers=writer), 403, "forbidden")
        # write
        assert_error(await client.post("/api/users", json={"input": {"name": "x"}}, headers=reader), 403, "forbidden")
        assert_error(await client.put("/api/users/1", json={"input": {"name": "x"}}, headers=writer), 403, "forbidden")
        assert_error(await client.request("DELETE", "/api/users", json={"input": {"id": 1}}, headers=writer), 403, "forbidden")
        assert (await client.post("/api/orders", json={"input": {"user_id": 1, "total": 1}}, headers=writer)).status_code == 201
        # import / export
        files = {"file": ("users.csv", b"name\nb\n", "text/csv")}
        assert_error(await client.post("/api/batch/import", files=files, headers=reader), 403, "forbidden")
        assert (await client.post("/api/batch/import", files=files, headers=etl)).status_code == 200
        assert_error(await client.get("/api/batch/users/export", headers=reader), 403, "forbidden")
        assert (await client.get("/api/batch/users/export", headers=etl)).status_code == 200
        # the catalog shows only what the caller may read
        tables = lambda headers: client.get("/api/tables", headers=headers)  # noqa: E731
        assert [t["name"] for t in (await tables(writer)).json()["data"]] == ["orders"]
        assert [t["name"] for t in (await tables(etl)).json()["data"]] == ["users"]
        assert_error(await client.get("/api/tables/users", headers=writer), 403, "forbidden")
        # health stays open
        assert (await client.get("/health/ready")).json()["data"]["auth"] == "api-key"
    assert run_sql(schema, "SELECT name FROM users ORDER BY id") == [("a",), ("b",)]


def token(key, algorithm: str, **claims) -> str:
    now = int(time.time())
    payload = {"sub": "svc", "exp": now + 60, "aud": "gateway", "iss": "issuer", "scope": "read:* write:users"} | claims
    return jwt.encode({k: v for k, v in payload.items() if v is not None}, key, algorithm=algorithm)


async def test_jwt_hs256_checks_every_claim(schema, settings):
    config = settings(auth_mode="jwt", jwt_secret="s" * 32, jwt_audience="gateway", jwt_issuer="issuer")
    secret = "s" * 32
    async with running(config) as client:
        ok = await client.get("/api/users/query", headers=bearer(token(secret, "HS256")))
        assert ok.status_code == 200
        now = int(time.time())
        bad = {
            "expired": token(secret, "HS256", exp=now - 60),
            "not yet valid": token(secret, "HS256", nbf=now + 60),
            "wrong audience": token(secret, "HS256", aud="other"),
            "wrong issuer": token(secret, "HS256", iss="someone"),
            "no exp": token(secret, "HS256", exp=None),
            "forged": token("x" * 32, "HS256"),
            "garbage": "not.a.token",
        }
        for reason, credential in bad.items():
            response = await client.get("/api/users/query", headers=bearer(credential))
            assert response.status_code == 401, reason
        limited = bearer(token(secret, "HS256", scope="read:orders"))
        assert_error(await client.get("/api/users/query", headers=limited), 403, "forbidden")
        listed = bearer(token(secret, "HS256", scope=None, scopes=["write:users"]))
        assert (await client.post("/api/users", json={"input": {"name": "x"}}, headers=listed)).status_code == 201


@pytest.mark.parametrize("algorithm", ["RS256", "ES256"])
async def test_jwt_with_a_public_key(schema, settings, tmp_path, algorithm):
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048) if algorithm == "RS256" else ec.generate_private_key(ec.SECP256R1())
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048) if algorithm == "RS256" else ec.generate_private_key(ec.SECP256R1())
    public_file = tmp_path / "public.pem"
    public_file.write_bytes(private.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    config = settings(auth_mode="jwt", jwt_algorithm=algorithm, jwt_public_key_file=str(public_file), jwt_audience="gateway")
    async with running(config) as client:
        assert (await client.get("/api/users/query", headers=bearer(token(private, algorithm)))).status_code == 200
        assert (await client.get("/api/users/query", headers=bearer(token(other, algorithm)))).status_code == 401
        assert (await client.get("/api/users/query", headers=bearer(token("s" * 32, "HS256")))).status_code == 401


async def test_no_auth_is_allowed_but_reported(client):
    ready = (await client.get("/health/ready")).json()["data"]
    assert ready["auth"] == "none" and "authentication is off" in ready["warning"]


async def test_rate_limits_per_client_and_action(schema, settings):
    async with running(settings(auth_mode="api-key", api_keys=api_keys(), rate_limits="read=3/min")) as client:
        reader, etl = bearer(KEYS["reader"]), bearer(KEYS["etl"])
        for _ in range(3):
            assert (await client.get("/api/users/query", headers=reader)).status_code == 200
        limited = await client.get("/api/users/query", headers=reader)
        assert_error(limited, 429, "rate_limited")
        assert int(limited.headers["retry-after"]) >= 1
        assert (await client.get("/api/users/query", headers=etl)).status_code == 200  # its own bucket
