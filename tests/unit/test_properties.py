"""Property-based tests: whatever a caller sends, the parsers and converters answer with a value or a
GatewayError below 500, and that error renders as the envelope. (A fuzzer found integers past 64
bits, lone surrogates and overflowing numbers turning into 500s; these would have caught each.)"""

import json

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.core import jsontext, sql
from app.core.errors import GatewayError
from app.core.filters import key_values, list_query, parse_filter, parse_query_params
from app.core.values import text_converter, to_db
from app.schemas.envelope import error

from .tables import PAIRS, USERS

SETTINGS = settings(max_examples=300, deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))

# Scalars with the nasty cases weighted in: integers past 64 bits, non-finite floats, lone surrogates.
nasty_ints = st.one_of(st.integers(), st.sampled_from([2**63, 2**64, -(2**63) - 1, 10**30, -(10**400)]))
nasty_floats = st.floats(allow_nan=True, allow_infinity=True)
nasty_text = st.one_of(st.text(), st.text(st.characters(blacklist_categories=())), st.sampled_from(
    ["\ud800", "9" * 5000, "1e400", "NaN", "-0", "2024-02-30", "99:99:99", "\x00", "a" * 100_000]))
scalars = st.one_of(st.none(), st.booleans(), nasty_ints, nasty_floats, nasty_text)
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(nasty_text, inner, max_size=4)), max_leaves=12)
names = st.one_of(st.sampled_from([c.name for c in USERS.columns] + ["and", "or", "nope"]), nasty_text)
operators = st.sampled_from(["eq", "ne", "gt", "gte", "lt", "lte", "like", "in", "nin", "between", "is_null", "zz"])
filters = st.recursive(
    st.dictionaries(names, st.one_of(values, st.dictionaries(operators, values, max_size=3)), max_size=3),
    lambda inner: st.dictionaries(st.sampled_from(["and", "or"]), st.lists(inner, max_size=3), max_size=2),
    max_leaves=10,
)


def answered_or_refused(call):
    """Run `call`; a GatewayError must be below 500 and render as an envelope."""
    try:
        return call()
    except GatewayError as exc:
        assert exc.status < 500, exc
        response = error(exc)
        assert response.status_code < 500
        assert orjson.loads(response.body)["error"] == exc.code
        return None


@SETTINGS
@given(value=values, text=st.booleans())
def test_every_column_converts_or_refuses_any_value(value, text):
    for column in USERS.columns:
        answered_or_refused(lambda: to_db(column, value, text=text))


@SETTINGS
@given(cell=nasty_text)
def test_csv_cells_convert_or_refuse(cell):
    for column in USERS.columns:
        for converter in (text_converter(column), text_converter(column, null_value=None, binary_as_text=True)):
            answered_or_refused(lambda: converter(cell))


@SETTINGS
@given(spec=st.one_of(filters, values))
def test_json_filters_parse_or_refuse_and_what_parses_builds_sql(spec):
    node = answered_or_refused(lambda: parse_filter(USERS, spec))
    if node is not None:
        statement, params = sql.where_sql(node)
        assert statement.count("%s") == len(params)


@SETTINGS
@given(pairs=st.lists(st.tuples(names, nasty_text), max_size=5),
       limit=st.one_of(st.none(), nasty_text, nasty_ints), offset=st.one_of(st.none(), nasty_text, nasty_ints),
       order=st.one_of(st.none(), nasty_text, st.lists(nasty_text, max_size=3)), fields=st.one_of(st.none(), nasty_text))
def test_query_strings_and_list_options_parse_or_refuse(pairs, limit, offset, order, fields):
    def build():
        where = parse_query_params(USERS, pairs)
        query = list_query(USERS, where, fields=fields, order=order, limit=limit, offset=offset,
                           default_limit=100, max_limit=1000)
        statement, params = sql.select(USERS, query)
        assert all(not isinstance(p, int) or -(2**63) <= p < 2**64 for p in params)
        return statement

    answered_or_refused(build)


@SETTINGS
@given(key=nasty_text)
def test_path_keys_convert_or_refuse(key):
    for table in (USERS, PAIRS):
        answered_or_refused(lambda: key_values(table, key))


@SETTINGS
@given(body=st.one_of(st.binary(max_size=200), st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass"))))
def test_json_bodies_parse_or_raise_a_decode_error(body):
    try:
        jsontext.parse(body)
    except json.JSONDecodeError:
        pass


@pytest.mark.parametrize("text", ["NaN", "[Infinity]", '"\\ud800"', "1e400", "[" * 2000 + "]" * 2000, "1" * 5000])
def test_json_that_cannot_be_stored_is_refused(text):
    with pytest.raises(json.JSONDecodeError):
        jsontext.parse(text.encode())


def test_json_integers_past_64_bits_stay_exact():
    assert jsontext.parse(b'{"a": 123456789012345678901234567890}') == {"a": 123456789012345678901234567890}
    assert jsontext.parse(b'{"a": -9223372036854775809}') == {"a": -9223372036854775809}
    assert jsontext.parse(b'{"a": 1.5, "b": "x"}') == {"a": 1.5, "b": "x"}
