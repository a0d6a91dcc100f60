"""Cursors and aggregates, pure: whatever a caller sends, a query or a 4xx (property-based)."""

import base64

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.core.errors import GatewayError
from app.http.envelope import error
from app.query import aggregates, cursors, sql
from app.query.lists import list_query

from .tables import PAIRS, USERS

SETTINGS = settings(max_examples=300, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
texts = st.one_of(st.text(), st.text(st.characters(blacklist_categories=())), st.sampled_from(["", ".", "..", "count.", "count.gt", "*", ",", "x" * 5000]))


def token(body) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(body)).decode().rstrip("=")


json_values = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1), st.floats(), st.text()), lambda inner: st.lists(inner, max_size=3), max_leaves=6)


@SETTINGS
@given(st.one_of(texts, st.builds(token, st.fixed_dictionaries({"v": st.just(1), "k": st.just([["a", False], ["b", False]]), "p": st.lists(json_values, max_size=3)}))))
def test_any_cursor_is_a_page_or_a_400(cursor):
    try:
        query = list_query(PAIRS, None, cursor=cursor, default_limit=10, max_limit=100)
    except GatewayError as exc:
        assert exc.status == 400
        error(exc)
        return
    statement, params = sql.select(PAIRS, query)
    assert statement.count("%s") == len(params)


@SETTINGS
@given(st.lists(st.tuples(st.sampled_from([*aggregates.AGGREGATE_PARAMS, "order", "limit", "offset", "age", "name"]), texts), max_size=6))
def test_any_aggregate_query_string_is_a_query_or_a_400(params):
    from app.query.filters import parse_query_params

    try:
        filters = [p for p in params if p[0] not in aggregates.PARAMS]
        query = aggregates.from_params(USERS, params, parse_query_params(USERS, filters), default_limit=10, max_limit=100)
    except GatewayError as exc:
        assert 400 <= exc.status < 500
        error(exc)
        return
    statement, params_ = sql.aggregate(USERS, query)
    assert statement.count("%s") == len(params_)


def test_cursor_round_trip_and_the_predicate():
    keys = cursors.keyset(USERS, ((USERS.column("born"), True), (USERS.column("kind"), False)))
    assert [(c.name, desc) for c, desc in keys] == [("born", True), ("kind", False), ("id", False)]
    values = cursors.decode(keys, cursors.encode(keys, [None, "b'c", 7]))
    assert values == [None, "b'c", 7]
    statement, params = sql.where_sql(cursors.after(keys, values))
    # born is NULL and descending: nothing sorts after it in born; kind compares by its number.
    assert statement == "((`born` IS NULL AND (`kind` + 0) > %s) OR (`born` IS NULL AND (`kind` + 0) = %s AND `id` > %s))"
    assert params == (2, 2, 7)
    assert cursors.keyset(USERS, ((USERS.column("id"), True),)) == ((USERS.column("id"), True),)
    age = cursors.keyset(USERS, ((USERS.column("age"), True),))  # the key follows the order's direction
    assert [(c.name, desc) for c, desc in age] == [("age", True), ("id", True)]
    statement, _ = sql.where_sql(cursors.after(age, [5, 9]))
    assert statement == "((`age` < %s OR `age` IS NULL) OR (`age` = %s AND `id` < %s))"
    price = cursors.keyset(USERS, ((USERS.column("price"), True),))  # NOT NULL: no IS NULL branch
    assert sql.where_sql(cursors.after(price, [1, 9]))[0] == "(`price` < %s OR (`price` = %s AND `id` < %s))"


def test_a_plans_row_estimate_is_read_from_mariadb_and_mysql_plans():
    from app.db.catalog import build_tables
    from app.query.estimates import planned_rows

    table = build_tables([("t", "id", "int", "int", "NO", None, "", None, None, None, None)], [], [])["t"]
    mariadb = '{"query_block": {"select_id": 1, "nested_loop": [{"table": {"table_name": "u", "rows": 9}},' \
              ' {"table": {"table_name": "t", "rows": 1000, "filtered": 25.5}}]}}'
    mysql = '{"query_block": {"table": {"table_name": "t", "rows_examined_per_scan": 400, "filtered": "50.00"}}}'
    assert planned_rows(mariadb, table) == 255
    assert planned_rows(mysql, table) == 200
    # A plan of another shape, or not JSON: None (the gateway counts instead).
    for text in ('{"query_block": {"table": {"table_name": "other", "rows": 5}}}', "not json", "[]",
                 '{"query_block": {"table": {"table_name": "t", "rows": "many"}}}',
                 '{"query_block": {"table": {"table_name": "t", "rows": null}}}'):
        assert planned_rows(text, table) is None, text
