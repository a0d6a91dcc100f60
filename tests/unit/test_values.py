import base64
import datetime as dt
from decimal import Decimal

import pytest

from app.core.errors import InvalidValue
from app.core.values import format_time, json_default, output_fixers, rows_to_dicts, to_db

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
