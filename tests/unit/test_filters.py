import pytest

from app.core.errors import InvalidFilter, InvalidValue, UnknownColumn
from app.query.filters import key_values, parse_filter, parse_query_params
from app.query.lists import list_query, parse_order
from app.query.nodes import Condition, Group

from .tables import PAIRS, USERS


def test_equality_null_and_operator_objects():
    assert parse_filter(USERS, {"age": 5}) == Condition(USERS.column("age"), "eq", 5)
    assert parse_filter(USERS, {"age": None}) == Condition(USERS.column("age"), "is_null", True)
    assert parse_filter(USERS, {"age": {"ne": None}}) == Condition(USERS.column("age"), "is_null", False)
    node = parse_filter(USERS, {"age": {"gt": 1, "lt": 9}})
    assert isinstance(node, Group) and node.op == "and" and len(node.items) == 2


def test_empty_filter_is_none():
    assert parse_filter(USERS, {}) is None
    assert parse_filter(USERS, None) is None
    assert parse_filter(USERS, {"and": []}) is None


@pytest.mark.parametrize(
    "spec",
    [
        [1, 2],
        {"age": {"bogus": 1}},
        {"age": {}},
        {"or": {"age": 1}},
        {"or": []},
        {"age": {"between": [1]}},
        {"age": {"in": 5}},
        {"age": {"gt": [1, 2]}},
        {"age": {"is_null": "maybe"}},
    ],
)
def test_bad_filters_are_invalid_filter(spec):
    with pytest.raises(InvalidFilter):
        parse_filter(USERS, spec)


def test_unknown_column_names_are_refused_not_quoted():
    for name in ("nope", "id`; DROP TABLE users; --", "name)"):
        with pytest.raises(UnknownColumn):
            parse_filter(USERS, {name: 1})


def test_values_are_converted_for_their_column():
    with pytest.raises(InvalidValue):
        parse_filter(USERS, {"age": "abc"})
    assert parse_filter(USERS, {"age": {"in": ["1", 2]}}).value == (1, 2)


def test_nesting_depth_is_bounded():
    spec: dict = {"age": 1}
    for _ in range(20):
        spec = {"or": [spec]}
    with pytest.raises(InvalidFilter):
        parse_filter(USERS, spec)


def test_query_string_forms():
    node = parse_query_params(USERS, [("age", "gte.18"), ("name", "Ann"), ("limit", "5"), ("id", "in.1,2,3")])
    assert [(c.column.name, c.op, c.value) for c in node.items] == [
        ("age", "gte", 18), ("name", "eq", "Ann"), ("id", "in", (1, 2, 3))
    ]
    # A dot in a value that does not start with an operator is plain equality.
    assert parse_query_params(USERS, [("name", "a.b")]).value == "a.b"
    assert parse_query_params(USERS, [("name", "eq.gt.x")]).value == "gt.x"
    assert parse_query_params(USERS, [("age", "is_null.true")]).value is True


def test_order_forms():
    assert [(c.name, d) for c, d in parse_order(USERS, "age.desc,name")] == [("age", True), ("name", False)]
    assert [(c.name, d) for c, d in parse_order(USERS, ["-age", "name.asc"])] == [("age", True), ("name", False)]
    assert [(c.name, d) for c, d in parse_order(PAIRS, None)] == [("a", False), ("b", False)]
    with pytest.raises(UnknownColumn):
        parse_order(USERS, "age;drop.desc")


@pytest.mark.parametrize("limit", ["0", "-1", "1001", "ten", 1.5])
def test_limit_bounds(limit):
    with pytest.raises(InvalidFilter):
        list_query(USERS, None, limit=limit, default_limit=100, max_limit=1000)


def test_composite_key_parts_are_converted():
    assert key_values(PAIRS, "7,x") == (7, "x")
    with pytest.raises(InvalidFilter):
        key_values(PAIRS, "7")
    with pytest.raises(InvalidValue):
        key_values(USERS, "abc")


def test_full_text_searches_are_rewritten_from_their_words():
    import pytest

    from app.core.errors import InvalidFilter
    from app.query.search import boolean, natural

    assert natural("MariaDB *tuning* @home, (fast)!") == "MariaDB tuning home fast"
    assert boolean('+mariadb -mysql ~slow >fast <old "redo log" @3 pre* (a b)') == \
        '+mariadb -mysql ~slow >fast <old "redo log" @3 pre* (a b)'
    assert boolean("a@b.com") == "a b com"
    assert boolean("+++ -- * @ a") == "a"
    assert boolean('"unclosed phrase') == '"unclosed phrase"'
    assert boolean("() a") == "a"
    for bad in ("(a", "a)", "(" * 6 + "a" + ")" * 6):
        with pytest.raises(InvalidFilter):
            boolean(bad)


def test_a_search_is_given_once_and_null_ordering_is_named():
    import pytest

    from app.core.errors import InvalidFilter
    from app.db.catalog import build_tables
    from app.query.filters import parse_query_params
    from app.query.lists import parse_order

    table = build_tables([("t", "id", "int", "int", "NO", None, "", None, None, None, None),
                          ("t", "body", "text", "text", "YES", None, "", None, None, None, None)],
                         [("t", "PRIMARY", "id")], [], fulltext_rows=[("t", "body_ft", "body")])["t"]
    assert parse_query_params(table, [("q", "milk")]) is not None
    with pytest.raises(InvalidFilter):
        parse_query_params(table, [("q", "milk"), ("q", "bread")])
    with pytest.raises(InvalidFilter, match="nullslast are not offered"):
        parse_order(table, "id.desc.nullslast")
