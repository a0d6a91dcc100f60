"""Property-based tests: whatever a caller sends, the parsers and converters answer with a value or a
GatewayError below 500, and that error renders as the envelope. (A fuzzer found integers past 64
bits, lone surrogates and overflowing numbers turning into 500s; these would have caught each.)"""

import json

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.core import jsontext
from app.core.errors import GatewayError
from app.http.envelope import error
from app.query import sql
from app.query.filters import key_values, parse_filter, parse_query_params
from app.query.lists import list_query
from app.rows.values import text_converter, to_db

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


# --- the import engine's sources and rules ----------------------------------------------------

import asyncio  # noqa: E402

from app.imports.json_source import open_json_array, open_jsonl  # noqa: E402
from app.imports.records import RecordError  # noqa: E402
from app.imports.spreadsheet import Limits, open_spreadsheet  # noqa: E402
from app.imports.uploads import split_name  # noqa: E402
from app.rows.rules import compile_rules, row_maker  # noqa: E402
from app.rows.values import value_converter  # noqa: E402

sheet_cells = st.one_of(scalars, st.datetimes(), st.dates(), st.times(), st.sampled_from([7.0, 2.0**60, -0.0, ""]))


@SETTINGS
@given(cell=sheet_cells)
def test_spreadsheet_and_json_cells_convert_or_refuse(cell):
    for column in USERS.columns:
        for converter in (value_converter(column, "\\N", text_cells=True), value_converter(column, text_cells=False, binary_as_text=True)):
            answered_or_refused(lambda: converter(cell))


async def _drain(source_call):
    """Open a source and read every record: what it cannot read is a GatewayError below 500."""
    source = await source_call()
    try:
        records = [r async for block in source.blocks for r in block.records]
        assert all(isinstance(r, RecordError) or len(r[1]) == len(source.header) for r in records)
        return records
    finally:
        await source.close()


def chunked(data: bytes, cuts: list[int]):
    async def chunks():
        start = 0
        for cut in sorted(set(cuts)):
            yield data[start:cut]
            start = cut
        yield data[start:]

    return chunks()


json_documents = st.one_of(
    st.binary(max_size=200),
    # Deep nesting: ijson builds nested values recursively (100,000 levels killed the process).
    st.tuples(st.integers(900, 200_000), st.sampled_from([b"[", b'{"a":'])).map(
        lambda t: b"[" + t[1] * t[0] + b"1" + (b"]" if t[1] == b"[" else b"}") * t[0] + b"]"),
    values.map(lambda v: json.dumps(v).encode()),
    st.lists(st.dictionaries(names, values, max_size=4), max_size=5).map(lambda rows: json.dumps(rows).encode()),
)


@SETTINGS
@given(data=json_documents, cuts=st.lists(st.integers(0, 300), max_size=4))
def test_json_uploads_read_or_refuse(data, cuts):
    try:
        parsed = json.loads(data)
    except (ValueError, RecursionError):
        parsed = None  # then the document itself is the one line of the JSON Lines file
    jsonl_data = b"\n".join(json.dumps(v).encode() for v in parsed) if isinstance(parsed, list) else data
    for call in (lambda: open_json_array(chunked(data, cuts)), lambda: open_jsonl(chunked(jsonl_data, cuts), 4096)):
        answered_or_refused(lambda: asyncio.run(_drain(call)))


@settings(max_examples=60, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
@given(data=st.binary(max_size=400), kind=st.sampled_from(["xlsx", "xls", "ods"]), magic=st.sampled_from([b"", b"PK\x03\x04", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"]))
def test_spreadsheet_uploads_read_or_refuse(data, kind, magic):
    limits = Limits(1024 * 1024, 10_000)
    answered_or_refused(lambda: asyncio.run(_drain(lambda: open_spreadsheet(chunked(magic + data, []), kind, None, limits))))


@SETTINGS
@given(schema=st.one_of(values, st.dictionaries(st.sampled_from(
    ["type", "properties", "required", "pattern", "minimum", "$schema", "dependentRequired", "format", "$ref", "items"]), values, max_size=4)),
    # Rows hold what a source can deliver: decoded UTF-8, so no lone surrogates.
    row=st.dictionaries(st.sampled_from([c.name for c in USERS.columns]), st.one_of(
        st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), st.floats(allow_nan=False, allow_infinity=False),
        st.text(st.characters(blacklist_categories=("Cs",))), st.datetimes(), st.dates()), max_size=4))
def test_rules_compile_or_refuse_and_check_any_row(schema, row):
    rules = answered_or_refused(lambda: compile_rules(USERS, schema))
    if rules is not None:
        columns = [c for c in USERS.columns if c.name in row]
        rules.problems(row_maker(columns, rules.names)([row[c.name] for c in columns]))


@SETTINGS
@given(filename=st.one_of(st.none(), nasty_text, nasty_text.map(lambda t: t + ".xlsx")))
def test_file_names_give_a_table_or_refuse(filename):
    answered_or_refused(lambda: split_name(filename))
