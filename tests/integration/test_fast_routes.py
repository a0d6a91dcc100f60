"""routes/fast.py serves GET /api/{t}/{key}, GET /api/{t}/query and POST /api/{t} below FastAPI.
Whatever the request, its answer must be the one FastAPI's routes give: property-tested against the
same app with the fast layer taken out."""

from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.testclient import TestClient

from app.main import create_app
from app.routes.fast import FastCrud
from tests.integration.test_bad_input import COLUMNS, FUZZ, names, text, values

TABLES = ["types", "users", "pairs", "nokey", "secret_stuff", "nope", "batch", "tables", "%2e%2e"]


@pytest.fixture
def both(schema, settings):
    """(fast, plain): the app as served, and the same app without the fast layer."""
    fast = create_app(settings())
    plain = create_app(settings())
    plain.user_middleware = [m for m in plain.user_middleware if m.cls is not FastCrud]
    with TestClient(fast, raise_server_exceptions=False) as a, TestClient(plain, raise_server_exceptions=False) as b:
        yield a, b


def same(one, other, *, written: bool = False) -> None:
    assert one.status_code == other.status_code, (one.text, other.text)
    assert one.headers.get("content-type") == other.headers.get("content-type")
    first, second = one.json(), other.json()
    for body in (first, second):
        body.pop("timestamp"), body.pop("request_id", None)
        if written and isinstance(body.get("data"), dict):  # each app inserted its own row
            body["data"].pop("id", None), body["data"].pop("created", None)
    assert first == second


def test_reads_answer_as_fastapi_does(both):
    fast, plain = both

    @FUZZ
    @given(table=st.one_of(st.sampled_from(TABLES), text.filter(lambda t: "/" not in t)), key=text,
           params=st.lists(st.tuples(st.one_of(st.sampled_from(COLUMNS + ["limit", "offset", "order", "fields", "count"]), text), text), max_size=3))
    def check(table, key, params):
        table = quote(table, safe="%") or "types"
        for path in (f"/api/{table}/query", f"/api/{table}/{quote(key, safe='') or '1'}", f"/api/{table}/1"):
            same(fast.get(path, params=params), plain.get(path, params=params))

    check()


def test_creates_answer_as_fastapi_does(both):
    fast, plain = both

    @FUZZ
    @given(table=st.sampled_from(TABLES), row=st.dictionaries(names, values, max_size=4), extra=values,
           raw=st.binary(max_size=30), content_type=st.sampled_from(["application/json", "application/json; charset=utf-8", "text/plain", None]))
    def check(table, row, extra, raw, content_type):
        path = f"/api/{table}"
        headers = {"content-type": content_type} if content_type else {}
        for body in ({"input": row}, {"input": [row, row]}, extra):
            same(fast.post(path, json=body, headers=headers), plain.post(path, json=body, headers=headers), written=True)
        same(fast.post(path, content=raw, headers=headers), plain.post(path, content=raw, headers=headers), written=True)

    check()
