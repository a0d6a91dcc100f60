"""JWT keys from an identity provider (issue 32): GATEWAY_JWT_JWKS_URL, against a JWKS server the
test runs; RS256 and ES256 by `kid`, a key rotated mid-run taken up, unknown key ids fetched again
at most once per GATEWAY_JWT_JWKS_MIN_REFRESH_S."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.conftest import running
from tests.integration.test_crud import assert_error


class Provider:
    """A JWKS endpoint on a free port: its keys can be changed, its fetches are counted."""

    def __init__(self):
        self.keys: dict[str, object] = {}
        self.fetches = 0
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                provider.fetches += 1
                body = json.dumps({"keys": [provider.jwk(kid, key) for kid, key in provider.keys.items()]}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/jwks.json"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @staticmethod
    def jwk(kid, key):
        algorithm = jwt.algorithms.RSAAlgorithm if isinstance(key, rsa.RSAPrivateKey) else jwt.algorithms.ECAlgorithm
        public = json.loads(algorithm.to_jwk(key.public_key()))
        return public | {"kid": kid, "use": "sig", "alg": "RS256" if isinstance(key, rsa.RSAPrivateKey) else "ES256"}

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def provider():
    made = Provider()
    yield made
    made.close()


def token(key, kid, scope="read:*", **claims):
    algorithm = "RS256" if isinstance(key, rsa.RSAPrivateKey) else "ES256"
    payload = {"sub": "svc", "scope": scope, "exp": int(time.time()) + 300} | claims
    return {"Authorization": "Bearer " + jwt.encode(payload, key, algorithm=algorithm, headers={"kid": kid})}


async def test_tokens_by_kid_and_a_rotated_key(schema, settings, provider):
    first, second = rsa.generate_private_key(public_exponent=65537, key_size=2048), ec.generate_private_key(ec.SECP256R1())
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    provider.keys = {"k1": first}
    config = settings(auth_mode="jwt", jwt_algorithm="RS256", jwt_jwks_url=provider.url, jwt_jwks_min_refresh_s=0.001)
    async with running(config) as client:
        assert provider.fetches == 1  # at start
        assert (await client.get("/api/users/query", headers=token(first, "k1"))).status_code == 200
        # Scopes come from the token; a write needs write.
        assert_error(await client.post("/api/users", json={"input": {"name": "x"}}, headers=token(first, "k1")),
                     403, "forbidden")
        # A token signed by another key under a known kid, an expired one: 401.
        assert_error(await client.get("/api/users/query", headers=token(stranger, "k1")), 401, "unauthorized")
        assert_error(await client.get("/api/users/query", headers=token(first, "k1", exp=int(time.time()) - 60)),
                     401, "unauthorized")
        # The provider rotates: k2 (an ES256 key) replaces k1; the first token naming k2 fetches the keys.
        provider.keys = {"k2": second}
        fetched = provider.fetches
        assert (await client.get("/api/users/query", headers=token(second, "k2"))).status_code == 200
        assert provider.fetches == fetched + 1
        assert (await client.get("/api/users/query", headers=token(second, "k2"))).status_code == 200
        assert provider.fetches == fetched + 1  # held now
        assert_error(await client.get("/api/users/query", headers=token(first, "k1")), 401, "unauthorized")


async def test_unknown_key_ids_fetch_at_most_once_per_interval(schema, settings, provider):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    provider.keys = {"k1": key}
    config = settings(auth_mode="jwt", jwt_algorithm="RS256", jwt_jwks_url=provider.url, jwt_jwks_min_refresh_s=3600)
    async with running(config) as client:
        for i in range(20):
            assert_error(await client.get("/api/users/query", headers=token(key, f"made-up-{i}")), 401, "unauthorized")
        assert provider.fetches == 1  # the start's fetch only
        assert_error(await client.get("/api/users/query", headers={"Authorization": "Bearer not.a.token"}),
                     401, "unauthorized")
        assert (await client.get("/api/users/query", headers=token(key, "k1"))).status_code == 200


async def test_with_the_provider_away_tokens_are_401_and_the_gateway_serves(schema, settings, provider):
    key = ec.generate_private_key(ec.SECP256R1())
    url = provider.url
    provider.close()  # nobody answers at start
    config = settings(auth_mode="jwt", jwt_algorithm="ES256", jwt_jwks_url=url, jwt_jwks_min_refresh_s=0.001)
    async with running(config) as client:
        assert_error(await client.get("/api/users/query", headers=token(key, "k1")), 401, "unauthorized")
        assert (await client.get("/health/live")).status_code == 200
