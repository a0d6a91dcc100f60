import base64
import datetime as dt
import re
from decimal import Decimal

import pytest

from app.core.errors import InvalidValue
from app.rows.values import format_time, json_default, output_fixers, rows_to_dicts, to_db

from .tables import USERS

col = USERS.column


@pytest.mark.parametrize(
    "name,value,expected",
    [
        ("age", 5, 5),
        ("age", "42", 42),
        ("age", 4294967295, 4294967295),
        ("price", "1234.50", Decimal("1234.50")),
        ("price", 12, Decimal("12")),
        ("price", 0.1, Decimal("0.1")),
        ("price", "1.500", Decimal("1.500")),
        ("name", "héllo", "héllo"),
        ("name", 123, "123"),
        ("meta", {"a": [1, None]}, '{"a":[1,null]}'),
        ("kind", "b'c", "b'c"),
        ("kind", "A", "a"),
        ("born", "2024-02-29", dt.date(2024, 2, 29)),
        ("seen", "2024-01-01T10:00:00.5+02:00", dt.datetime(2024, 1, 1, 8, 0, 0, 500000)),
        ("seen", "2024-01-01 10:00:00", dt.datetime(2024, 1, 1, 10, 0)),
        ("flag", True, 1),
        ("flag", "false", 0),
        ("blob", base64.b64encode(b"\x00\xff").decode(), b"\x00\xff"),
        ("age", None, None),
    ],
)
def test_accepted_values(name, value, expected):
    assert to_db(col(name), value) == expected


@pytest.mark.parametrize(
    "name,value",
    [
        ("age", -1),  # unsigned
        ("age", 2**32),
        ("age", True),
        ("age", "1e3"),
        ("age", 1.5),
        ("price", "12345.6"),  # 5 integer digits in DECIMAL(6,2)
        ("price", "1.234"),  # would be rounded
        ("price", "NaN"),
        ("price", "abc"),
        ("name", "toolong"),
        ("name", True),
        ("name", {"a": 1}),
        ("name", None),  # NOT NULL
        ("kind", "z"),
        ("born", "2024-02-30"),
        ("seen", "yesterday"),
        ("blob", "***"),
        ("blob", base64.b64encode(b"12345").decode()),
        ("twice", 4),  # generated
        ("flag", "maybe"),
    ],
)
def test_refused_values_name_the_column(name, value):
    with pytest.raises(InvalidValue) as caught:
        to_db(col(name), value)
    assert caught.value.details["column"] == name
    assert name in caught.value.message


def test_json_values_with_huge_integers_are_refused():
    with pytest.raises(InvalidValue):
        to_db(col("meta"), {"n": 2**70})


def test_text_mode_json_must_be_json_text():
    assert to_db(col("meta"), '{"a": 1}', text=True) == '{"a": 1}'
    with pytest.raises(InvalidValue):
        to_db(col("meta"), "{nope", text=True)


def test_output_conversion():
    assert format_time(dt.timedelta(hours=25, seconds=1)) == "25:00:01"
    assert format_time(-dt.timedelta(minutes=1, microseconds=5)) == "-00:01:00.000005"
    assert json_default(Decimal("1.10")) == "1.10"
    assert json_default(b"\x01") == "AQ=="
    fixers = output_fixers(USERS.columns)
    rows = rows_to_dicts(["id", "meta"], [(1, '{"a": 1}'), (2, None)], fixers)
    assert rows == [{"id": 1, "meta": {"a": 1}}, {"id": 2, "meta": None}]


from app.db.catalog import build_tables  # noqa: E402
from app.rows.values import text_converter  # noqa: E402

_CSV_TABLE = build_tables(
    [
        ("t", "i", "int", "int(11)", "NO", None, "", None, 10, 0, None),
        ("t", "d", "decimal", "decimal(6,2)", "YES", "NULL", "", None, 6, 2, None),
        ("t", "f", "double", "double", "YES", "NULL", "", None, 22, None, None),
        ("t", "dt", "datetime", "datetime(6)", "YES", "NULL", "", None, None, None, 6),
        ("t", "b", "tinyint", "tinyint(1)", "YES", "NULL", "", None, 3, 0, None),
        ("t", "s", "varchar", "varchar(3)", "YES", "NULL", "", 3, None, None, None),
    ],
    [],
    [],
)["t"]


@pytest.mark.parametrize(
    "name,cells",
    [
        ("i", ["0", "-5", "2147483647", "2147483648", "1_0", " 7", "٣", "x", "1.0"]),
        ("d", ["1.50", "-1234.5", "12345.6", "1.234", "1.230", "1e2", ".5", "-", "abc", "١.٠"]),
        ("f", ["1.5", "-0.25", "1e300", "inf", "nan", "1_0", " 1", "x"]),
        ("dt", ["2024-01-01 10:00:00", "2024-01-01T10:00:00.123456", "2024-01-01T10:00:00+02:00", "20240101T100000", "2024-02-30 00:00:00", "x"]),
        ("b", ["0", "1", "true", "no", "2", "x"]),
        ("s", ["abc", "abcd", "ü✓x"]),
    ],
)
def test_csv_fast_paths_agree_with_to_db(name, cells):
    column = _CSV_TABLE.column(name)
    fast = text_converter(column)
    for cell in cells:
        try:
            expected = to_db(column, cell, text=True)
        except InvalidValue:
            with pytest.raises(InvalidValue):
                fast(cell)
            continue
        got = fast(cell)
        if isinstance(expected, Decimal):
            assert Decimal(got) == expected, cell
        elif isinstance(expected, float):
            assert float(got) == expected, cell
        elif isinstance(expected, dt.datetime):
            assert (got if isinstance(got, dt.datetime) else dt.datetime.fromisoformat(got)) == expected, cell
        else:
            assert got == expected, cell


def test_csv_null_and_empty_cells():
    assert text_converter(_CSV_TABLE.column("s"))("") == ""
    assert text_converter(_CSV_TABLE.column("d"))("") is None
    assert text_converter(_CSV_TABLE.column("s"))("\\N") is None
    assert text_converter(_CSV_TABLE.column("s"), null="NULL")("NULL") is None
    with pytest.raises(InvalidValue):
        text_converter(_CSV_TABLE.column("i"))("")  # NOT NULL


from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from app.rows import values as _values  # noqa: E402

_ALPHABET = {"int": "0123456789-\n ", "bool": "01 2", "date": "0123456789-\nT", "datetime": "0123456789-: T\nx"}
_SHAPES = {"int": st.from_regex(r"-?\d{1,22}", fullmatch=True), "bool": st.sampled_from(["0", "1"]),
           "date": st.from_regex(r"\d{4}-\d\d-\d\d", fullmatch=True),
           "datetime": st.from_regex(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d", fullmatch=True)}


@settings(max_examples=500, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
@given(kind=st.sampled_from(sorted(_SHAPES)), data=st.data())
def test_fast_canonical_checks_accept_only_what_the_patterns_accept(kind, data):
    near = st.one_of(_SHAPES[kind], st.text(_ALPHABET[kind], min_size=1, max_size=21), _SHAPES[kind].map(lambda c: c[:-1] + "-"))
    cells = tuple(data.draw(st.lists(st.one_of(_SHAPES[kind], near), min_size=1, max_size=6)))
    fast = _values._FAST_CHECKS[kind]
    pattern = re.compile(_values._CANONICAL[kind])
    if fast(cells):
        assert all(pattern.fullmatch(c) for c in cells), cells
