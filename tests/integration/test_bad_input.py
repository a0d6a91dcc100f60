"""What a fuzzer and a new user broke (issue 9): every input gets a 2xx or 4xx, never a 5xx.

The named cases first, then Hypothesis through the real app and database: arbitrary query strings,
JSON bodies and path keys on every CRUD route."""

import json
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from app.main import create_app
from tests.conftest import run_sql

BIG = 99999999999999999999999


def raw(client, method, path, text):
    return client.request(method, path, content=text.encode("utf-8", "surrogatepass"),
                          headers={"content-type": "application/json"})


@pytest.mark.parametrize("method,path,body,status,code", [
    ("GET", f"/api/users/query?limit={BIG}", None, 400, "invalid_filter"),
    ("GET", "/api/users/query?offset=18446744073709551616", None, 400, "invalid_filter"),
    ("GET", "/api/batch/users/export?offset=18446744073709551616", None, 400, "invalid_filter"),
    ("GET", f"/api/batch/users/export?limit={BIG}", None, 400, "invalid_filter"),
    ("POST", "/api/users/query", {"limit": 22548085515393855144329216}, 400, "invalid_filter"),
    ("POST", "/api/users/query", {"offset": -(2**70)}, 400, "invalid_filter"),
    ("POST", "/api/users", {"input": {"name": "x", "age": BIG}}, 422, "invalid_value"),
    ("POST", "/api/users", {"input": [{"name": "x"}, {"name": "y", "age": BIG}]}, 422, "invalid_value"),
    ("PUT", "/api/users", {"input": {"age": BIG}, "where": {"id": 1}}, 422, "invalid_value"),
    ("PUT", "/api/users/1", {"input": {"age": BIG}}, 422, "invalid_value"),
    ("GET", "/api/users/99999999999999999999", None, 422, "invalid_value"),
    ("GET", "/api/users/" + "9" * 5000, None, 422, "invalid_value"),
    ("GET", f"/api/users/query?age={BIG}", None, 422, "invalid_value"),
    ("GET", f"/api/users/query?age=in.1,{BIG}", None, 422, "invalid_value"),
    ("POST", "/api/users/query", {"input": {"age": {"in": [1, BIG]}}}, 422, "invalid_value"),
    ("POST", "/api/users/query", {"input": {"age": {"gt": BIG}}}, 422, "invalid_value"),
    ("POST", "/api/users", {"input": {"name": "x", "meta": [BIG]}}, 422, "invalid_value"),
    ("POST", "/api/users", {"input": {"name": "x", "balance": BIG}}, 422, "invalid_value"),
    ("GET", "/api/users/query?" + "x" * 20000 + "=1", None, 400, "unknown_column"),
    ("GET", "/api/users/query?name=%ED%A0%80", None, 200, None),  # undecodable bytes become U+FFFD
])
def test_named_cases_are_4xx_naming_the_problem(app_client, method, path, body, status, code):
    response = app_client.request(method, path, json=body) if body is not None else app_client.request(method, path)
    assert response.status_code == status, response.text
    if code:
        assert response.json()["error"] == code
        assert len(response.text) < 5000  # a huge name or value is not echoed whole


@pytest.mark.parametrize("text", [
    '{"input": {"name": NaN}}',
    '{"input": {"name": "x", "meta": Infinity}}',
    '{"input": {"name": "x", "age": -Infinity}}',
    '{"input": {"name": "\\ud800"}}',
    '{"input": {"name": "x", "age": 1e400}}',
    '{"input": {"name": "x", "meta": ' + "[" * 3000 + "]" * 3000 + "}}",
    '{"input": {"name": "x", "age": ' + "9" * 5000 + "}}",
])
def test_json_that_is_not_storable_is_400_and_nothing_is_written(app_client, text):
    for path in ("/api/users", "/api/users/query"):
        response = raw(app_client, "POST", path, text)
        assert response.status_code == 400, response.text
        assert response.json()["error"] == "invalid_body"
    assert app_client.get("/api/users/query").json()["data"] == []


def test_json_nested_past_what_can_be_stored_is_422_naming_the_column(app_client):
    response = raw(app_client, "POST", "/api/users", '{"input": {"name": "x", "meta": ' + "[" * 300 + "]" * 300 + "}}")
    assert response.status_code == 422 and response.json()["details"]["column"] == "meta"


def test_a_value_the_columns_charset_cannot_hold_is_422(app_client, schema):
    run_sql(schema, "CREATE TABLE latin (id INT PRIMARY KEY, name VARCHAR(10) CHARACTER SET latin1)")
    response = app_client.get("/api/latin/query", params={"name": "\u4e2d\u6587"})
    assert response.status_code == 422 and response.json()["error"] == "invalid_value"
    response = app_client.post("/api/latin", json={"input": {"id": 1, "name": "\u4e2d\u6587"}})
    assert response.status_code == 422


# --- Hypothesis through the app ------------------------------------------------------------

@pytest.fixture
def app_client(schema, settings):
    with TestClient(create_app(settings()), raise_server_exceptions=False) as client:
        yield client


FUZZ = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))
COLUMNS = ["id", "i", "u", "b", "f", "d", "s", "t", "bin", "dt", "da", "tm", "y", "e", "st", "j", "flag", "bits", "gen"]
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.sampled_from([2**64, -(2**63) - 1, 10**30]),
                    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=30))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(st.text(max_size=5), inner, max_size=3)), max_leaves=8)
names = st.one_of(st.sampled_from(COLUMNS + ["and", "or", "nope"]), st.text(max_size=10))
ops = st.sampled_from(["eq", "ne", "gt", "gte", "lt", "lte", "like", "in", "nin", "between", "is_null", "x"])
filters = st.dictionaries(names, st.one_of(values, st.dictionaries(ops, values, max_size=2)), max_size=3)
text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)


# Prefer headers as clients send them, each preference the writes know, and their mixtures.
PREFER = st.lists(st.sampled_from(["return=minimal", "return=headers-only", "return=representation",
                                   "resolution=merge-duplicates", "resolution=ignore-duplicates", "tx=rollback",
                                   "return=x", "resolution", "=", ";", ' return = "minimal" ; a=b']),
                  max_size=3).map(", ".join)


def no_5xx(response):
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert response.json()["error"]


def test_query_strings_never_give_5xx(app_client):
    @FUZZ
    @given(params=st.lists(st.tuples(st.one_of(st.sampled_from(COLUMNS + ["limit", "offset", "order", "fields"]), text), text), max_size=4))
    def check(params):
        no_5xx(app_client.get("/api/types/query", params=params))
        no_5xx(app_client.get("/api/batch/types/export", params=params))

    check()


def test_json_bodies_never_give_5xx(app_client):
    @FUZZ
    @given(row=st.dictionaries(names, values, max_size=5), where=filters, extra=values,
           options=st.dictionaries(st.sampled_from(["limit", "offset", "order", "order_by", "fields"]), values, max_size=2),
           prefer=st.one_of(PREFER, st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40)))
    def check(row, where, extra, options, prefer):
        no_5xx(app_client.post("/api/types", json={"input": row}, headers={"Prefer": prefer}))
        no_5xx(app_client.post("/api/types", json={"input": [row, row]}, headers={"Prefer": prefer}))
        no_5xx(app_client.patch("/api/types", json={"input": [row, where]}, headers={"Prefer": prefer}))
        no_5xx(app_client.patch("/api/pairs", json={"input": [row]}))
        no_5xx(app_client.post("/api/types/query", json={"input": where, **options}))
        no_5xx(app_client.post("/api/batch/types/export?format=jsonl", json={"input": where, **options}))
        no_5xx(app_client.put("/api/types", json={"input": row, "where": where}))
        no_5xx(app_client.request("DELETE", "/api/types", json={"input": where}))
        no_5xx(app_client.post("/api/types", json=extra))

    check()


def test_every_json_route_keeps_or_refuses_any_body(app_client):
    """Issue 24: every route that takes a JSON body (rows, filters, aggregates, rules, jobs) answers
    any JSON value, integers past 64 bits anywhere included, with a 2xx or a 4xx naming the problem;
    a rule accepted is stored and shown back exactly, every digit of it."""
    routes = [("POST", "/api/types"), ("POST", "/api/types/query"), ("POST", "/api/types/aggregate"),
              ("PUT", "/api/types"), ("DELETE", "/api/types"), ("PUT", "/api/types/1"), ("PATCH", "/api/types"),
              ("PATCH", "/api/types/1"), ("POST", "/api/batch/types/export"),
              ("PUT", "/api/schemas/types"), ("POST", "/api/batch/jobs")]

    @FUZZ
    @given(body=values, key=st.sampled_from(["input", "where", "source", "properties", "examples", "default", "limit"]),
           big=st.sampled_from([2**64, -(2**63) - 1, 10**30, -(10**40)]))
    def check(body, key, big):
        for method, path in routes:
            for sent in (body, {key: [big, {"x": big}, body]}):
                response = app_client.request(method, path, json=sent)
                no_5xx(response)
                if path.startswith("/api/schemas") and response.status_code == 200:
                    assert app_client.get(path).json()["data"]["schema"] == sent  # kept exactly
        app_client.delete("/api/schemas/types")

    check()


def test_a_rule_holding_an_integer_past_64_bits_is_kept_exactly(app_client):
    rules = {"properties": {"b": {"maximum": 10**30}, "j": {"const": [2**70]}}, "examples": [{"b": -(10**25)}]}
    response = app_client.put("/api/schemas/types", json=rules)
    assert response.status_code == 200, response.text
    assert response.json()["data"]["schema"] == rules
    assert '"maximum":1000000000000000000000000000000' in app_client.get("/api/schemas/types").text
    assert app_client.post("/api/types", json={"input": {"id": 1, "b": 5}}).status_code == 201


def test_path_keys_never_give_5xx(app_client):
    @FUZZ
    @given(key=text.filter(lambda k: k not in ("", "query")), row=st.dictionaries(names, values, max_size=3))
    def check(key, row):
        key = quote(key, safe="")
        for table in ("types", "pairs", "nokey"):
            no_5xx(app_client.get(f"/api/{table}/{key}"))
            no_5xx(app_client.put(f"/api/{table}/{key}", json={"input": row}))
            no_5xx(app_client.patch(f"/api/{table}/{key}", json={"input": row}, headers={"Prefer": "return=minimal"}))
            no_5xx(app_client.delete(f"/api/{table}/{key}"))

    check()


def test_a_row_through_the_websocket_is_what_post_makes_of_it(app_client):
    """The stream's fast path passes values as sent when their form is canonical: for any row, the
    WebSocket refuses it exactly when POST does, and stores exactly what POST stores. Arbitrary
    messages never break the connection."""
    strings = st.one_of(text, st.sampled_from(["12", "-7", "1.5", "0.0005", "99999.9999", "2024-02-30", "2024-02-29 12:00:00",
                                               "12:30:00", "red", "green", "\\N", "", "NULL", " 3", "1e3"]))
    scalar = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**64), max_value=2**64),
                       st.floats(allow_nan=False, allow_infinity=False), strings)
    columns = ["i", "u", "b", "f", "d", "s", "t", "dt", "da", "tm", "e", "flag"]
    ids = iter(range(1, 10**6))

    @FUZZ
    @given(row=st.dictionaries(st.sampled_from(columns), scalar, max_size=6), junk=values)
    def check(row, junk):
        key = next(ids)
        with app_client.websocket_connect("/api/types/ws") as ws:
            ws.send_text(json.dumps(junk))  # anything at all: an answer, the connection stays
            assert ws.receive_json()["status"] in ("applied", "rejected")
            ws.send_text(json.dumps({"id": f"r{key}", "rows": [{"id": 10_000 + key, **row}]}))
            streamed = ws.receive_json()
        posted = app_client.post("/api/types", json={"input": {"id": 20_000 + key, **row}})
        no_5xx(posted)
        assert (streamed["status"] == "applied") == (posted.status_code == 201), (row, streamed, posted.text)
        if posted.status_code == 201:
            a = app_client.get(f"/api/types/{10_000 + key}").json()["data"]
            b = app_client.get(f"/api/types/{20_000 + key}").json()["data"]
            assert {**a, "id": 0, "gen": 0} == {**b, "id": 0, "gen": 0}, row

    check()


def test_a_json_route_refuses_a_query_string_it_would_ignore(app_client):
    response = app_client.post("/api/types/query?q=x&limit=1", json={"input": {}})
    assert response.status_code == 400 and response.json()["error"] == "invalid_body"
    assert [p["where"] for p in response.json()["details"]] == ["query.limit", "query.q"]
    assert app_client.post("/api/types/query", json={"limit": 1}).status_code == 200
