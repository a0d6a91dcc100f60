"""The import engine's pure parts: file names and formats, plans per kind of cell, rows for the
rules, the report's positions."""

import datetime as dt
from decimal import Decimal

import pytest

from app.core.errors import InvalidHeader, InvalidSchema, MissingColumn
from app.imports.report import ImportReport
from app.imports.uploads import split_name
from app.rows.plan import BARE_NULL, convert_batch, convert_record, plan_import
from app.rows.problems import RowProblem
from app.rows.rules import compile_rules, row_maker
from app.rows.values import OMITTED

from .tables import USERS


@pytest.mark.parametrize("filename, expected", [
    ("users.csv", ("users", "csv")), ("dir/users.XLSX", ("users", "xlsx")), ("C:\\x\\users.ndjson", ("users", "jsonl")),
    ("users.tsv", ("users", "tsv")), ("users.txt", ("users.txt", None)), ("users", ("users", None)), ("a.b.json", ("a.b", "json")),
])
def test_file_names_give_table_and_format(filename, expected):
    assert split_name(filename) == expected


def test_plans_per_kind_of_cell():
    header = ["name", "age", "price", "born", "twice"]
    text = plan_import(USERS, header, cells="text")
    assert [c.name for c in text.columns] == ["name", "age", "price", "born"]  # generated: read, skipped
    assert convert_record(text, ["Ann", "", "1.50", "2024-01-02", "9"]) == ["Ann", None, "1.50", dt.date(2024, 1, 2)]
    sheet = plan_import(USERS, header, cells="sheet", load_data=True)
    assert convert_record(sheet, ["Ann", None, 1.5, dt.datetime(2024, 1, 2), None]) == ["Ann", BARE_NULL, Decimal("1.5"), dt.date(2024, 1, 2)]
    assert convert_record(sheet, ["Ann", "\\N", 2, dt.date(2024, 1, 2), None])[1] is BARE_NULL  # the null marker
    json = plan_import(USERS, header, cells="json")
    assert convert_record(json, ["Ann", OMITTED, "1.5", "2024-01-02", None])[1] is OMITTED  # left to its DEFAULT
    with pytest.raises(MissingColumn, match="column 'name': missing"):
        convert_record(json, [OMITTED, 1, 1, None, None])  # required: no default
    assert convert_batch(json, [(0, ["Ann", 1, 1, None, None]), (1, ["x" * 9, 1, 1, None, None])]) is None  # row by row then
    with pytest.raises(InvalidHeader, match="unknown: nope"):
        plan_import(USERS, ["name", "nope"], cells="json")


def test_rules_see_rows_as_the_api_shows_them():
    rules = compile_rules(USERS, {"properties": {"price": {"minimum": 0}, "born": {"format": "date"}, "seen": {"pattern": "T"}}})
    assert rules.names == {"price", "born", "seen"}
    columns = [USERS.by_name[n] for n in ("name", "price", "born", "seen", "age")]
    make = row_maker(columns, rules.names, BARE_NULL, OMITTED)
    row = make(["Ann", "1.50", dt.date(2024, 1, 2), "2024-01-02 03:04:05", 3])
    assert row == {"price": 1.5, "born": "2024-01-02", "seen": "2024-01-02T03:04:05"}
    assert make(["Ann", Decimal("-1"), BARE_NULL, OMITTED, None]) == {"price": -1.0}  # NULL and DEFAULT: no value
    assert [p.rule for p in rules.problems(make(["Ann", Decimal("-1"), None, None, None]))] == ["properties/price/minimum"]
    whole = compile_rules(USERS, {"additionalProperties": False, "properties": {"name": {}}})
    assert whole.names is None  # looks at the whole row
    with pytest.raises(InvalidSchema, match="ghost"):
        compile_rules(USERS, {"dependentRequired": {"name": ["ghost"]}})


def test_report_names_positions_for_the_source():
    report = ImportReport("users", "insert", False, 10, unit="row")
    report.rows_read = 3
    report.fail(4, RowProblem("invalid_value", "bad", "age", "properties/age/minimum"))
    report.committed += [[2, 3], [5, 5]]
    report.rows_inserted = 2
    shown = report.as_dict()
    assert shown["errors"] == [{"row": 4, "column": "age", "code": "invalid_value", "reason": "bad", "rule": "properties/age/minimum"}]
    assert shown["committed_rows"] == [[2, 3], [5, 5]] and "committed_lines" not in shown
    dry = ImportReport("users", "insert", False, 10, unit="index", dry_run=True).as_dict()
    assert dry["validated_only"] is True and dry["rows_valid"] == 0 and dry["committed_indexes"] == []


from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

RULE = st.sampled_from([
    {"minimum": 0}, {"maximum": 10}, {"type": "integer"}, {"type": "string"}, {"minLength": 2}, {"pattern": "^a"},
    {"enum": [1, "a", None]}, {"format": "email"}, {"multipleOf": 2}, True, False, {"not": {"const": 3}},
])
NAMES = ["a", "b", "c"]


@settings(max_examples=300, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
@given(
    properties=st.dictionaries(st.sampled_from(NAMES), RULE, max_size=3),
    required=st.lists(st.sampled_from(NAMES), unique=True, max_size=2),
    dependent=st.dictionaries(st.sampled_from(NAMES), st.lists(st.sampled_from(NAMES), unique=True, max_size=2), max_size=2),
    rows=st.lists(st.fixed_dictionaries({n: st.one_of(st.none(), st.integers(-3, 12), st.sampled_from(["a", "ab", "x@y.co", "b"])) for n in NAMES}), min_size=1, max_size=6),
    given_columns=st.lists(st.sampled_from(NAMES), unique=True, min_size=1),
)
def test_rules_by_column_fail_the_same_rows_as_rules_by_row(properties, required, dependent, rows, given_columns):
    import jsonschema_rs

    from app.rows.rules import ByColumn

    schema = {"properties": properties, "required": required, "dependentRequired": dependent}
    by_row = jsonschema_rs.Draft202012Validator(schema, validate_formats=True)
    by_column = ByColumn.of(schema)
    assert by_column is not None
    values = {n: [row[n] for row in rows] for n in given_columns}
    failed = by_column.check(values, len(rows))
    for index, row in enumerate(rows):
        seen = {n: v for n, v in row.items() if n in given_columns and v is not None}  # NULL: no value
        assert (index in failed) == (not by_row.is_valid(seen)), (index, seen, failed.get(index))


def test_rules_never_fail_on_a_value_they_cannot_read():
    rules = compile_rules(USERS, {"additionalProperties": False, "properties": {"name": {"maxLength": 3}}})
    assert row_maker([USERS.by_name["name"]], rules.names)([b"\x00\x01"]) == {"name": "AAE="}  # bytes read back: base64
    assert isinstance(rules.problems({"name": object()}), list)  # an answer, never an exception
