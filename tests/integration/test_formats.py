"""Every import format into the same engine, every export format back out, and round trips."""

import datetime as dt
import io
from decimal import Decimal

import openpyxl
import orjson
import pytest

from tests import files
from tests.conftest import run_sql, running
from tests.integration.test_crud import assert_error
from tests.integration.test_csv import imported
from tests.integration.test_csv import upload as send

USERS = [
    ["name", "email", "age", "balance", "created"],
    ["Ann", "ann@x", 31, 10.5, dt.datetime(2024, 1, 2, 3, 4, 5)],
    ["Bob", None, None, 0, None],
    ["Cy", "cy@x", 7, 1234.25, dt.datetime(2023, 12, 31, 23, 59, 59)],
]
EXPECTED = [
    ("Ann", "ann@x", 31, "10.50", dt.datetime(2024, 1, 2, 3, 4, 5)),
    ("Bob", None, None, "0.00", None),
    ("Cy", "cy@x", 7, "1234.25", dt.datetime(2023, 12, 31, 23, 59, 59)),
]


def users(schema):
    return [(n, e, a, str(b), c) for n, e, a, b, c in run_sql(schema, "SELECT name, email, age, balance, created FROM users ORDER BY id")]


@pytest.mark.parametrize("maker, extension", [(files.xlsx, "xlsx"), (files.xls, "xls")])
async def test_spreadsheet_cells_keep_their_types(client, schema, maker, extension):
    report = await imported(client, f"users.{extension}", maker(USERS))
    assert report["rows_inserted"] == 3 and report["errors"] == []
    assert report["source"] == {"format": extension, "sheet": "Sheet1"}
    assert report["committed_rows"] == [[2, 4]]  # sheet rows, as a spreadsheet program numbers them
    assert users(schema) == EXPECTED


async def test_ods(client, schema):
    rows = [["name", "email", "age", "active"], ["Ann", "ann@x", 31, True], ["Bob", None, 12, False]]
    report = await imported(client, "users.ods", files.ods(rows))
    assert report["rows_inserted"] == 2
    assert run_sql(schema, "SELECT name, email, age, active FROM users ORDER BY id") == [("Ann", "ann@x", 31, 1), ("Bob", None, 12, 0)]


async def test_sheet_by_name_and_bad_rows_by_sheet_row(client, schema):
    data = files.xlsx([["name"], ["ignored"]], extra_sheets={"People": [["name", "age"], ["A", 1], [None, None], ["B", "old"], ["C", 3.5], ["D", 4]]})
    report = await imported(client, "users.xlsx", data, sheet="People")
    assert report["source"]["sheet"] == "People"
    assert report["rows_read"] == 4 and report["rows_inserted"] == 2  # the empty row 3 is not a record
    assert [(e["row"], e["column"]) for e in report["errors"]] == [(4, "age"), (5, "age")]
    assert run_sql(schema, "SELECT name, age FROM users ORDER BY id") == [("A", 1), ("D", 4)]


async def test_json_lines_and_arrays(client, schema):
    objects = [
        {"name": "Ann", "email": "ann@x", "age": 31, "meta": {"tags": ["a"]}, "balance": "10.50"},
        {"name": "Bob", "age": None},  # a key left out is null
        {"name": "Cy", "age": "x"},  # bad value: reported by position
        {"name": "Di", "nope": 1},  # a key the first object lacks
        [1, 2],  # not an object
    ]
    report = await imported(client, "users.jsonl", files.jsonl(objects))
    assert report["rows_inserted"] == 2
    assert [(e["line"], e["column"], e["code"]) for e in report["errors"]] == [
        (3, "age", "invalid_value"), (4, "nope", "unknown_column"), (5, None, "invalid_json")]
    assert "nope" in report["errors"][1]["reason"]
    assert run_sql(schema, "SELECT name, email, age, JSON_EXTRACT(meta, '$.tags[0]'), balance FROM users ORDER BY id") == [
        ("Ann", "ann@x", 31, '"a"', Decimal("10.50")),
        ("Bob", None, None, None, Decimal("0.00")),  # balance left out: its DEFAULT
    ]
    objects[0]["email"] = "ann2@x"
    report = await imported(client, "users.json", files.json_array(objects))
    assert report["rows_inserted"] == 2 and [e["index"] for e in report["errors"]] == [2, 3, 4]


ITEMS = ("CREATE TABLE items (sku VARCHAR(10) PRIMARY KEY, qty INT NOT NULL, price DECIMAL(8,2) NOT NULL DEFAULT 1.00,"
         " note VARCHAR(20) DEFAULT 'none', tag VARCHAR(10))")


@pytest.mark.parametrize("name, maker", [("items.json", files.json_array), ("items.jsonl", files.jsonl)])
async def test_each_object_is_read_by_its_own_keys(client, schema, name, maker):
    """Issue 24: a later object may give keys the first one does not; a key left out is the
    column's DEFAULT; a key the table lacks is refused with its name, and the rest go in."""
    run_sql(schema, ITEMS)
    objects = [{"sku": "a1", "qty": 1}, {"sku": "a3", "qty": 3, "price": "9.99"}, {"qty": 4, "sku": "a4", "tag": "t", "note": None},
               {"sku": "a5", "qty": 5, "colour": "red"}]
    report = await imported(client, name, maker(objects))
    assert report["rows_inserted"] == 3 and report["rows_failed"] == 1, report
    assert "colour" in report["errors"][0]["reason"]
    assert run_sql(schema, "SELECT sku, qty, price, note, tag FROM items ORDER BY sku") == [
        ("a1", 1, Decimal("1.00"), "none", None), ("a3", 3, Decimal("9.99"), "none", None), ("a4", 4, Decimal("1.00"), None, "t")]
    # An upsert updates what each object gives and leaves the rest as it was.
    report = await imported(client, name, maker([{"sku": "a1", "price": "2.50", "qty": 1}, {"sku": "a3", "qty": 30}]), mode="upsert")
    assert report["rows_updated"] == 2, report
    assert run_sql(schema, "SELECT sku, qty, price, note FROM items WHERE sku IN ('a1', 'a3') ORDER BY sku") == [
        ("a1", 1, Decimal("2.50"), "none"), ("a3", 30, Decimal("9.99"), "none")]


def test_sparse_objects_import_as_each_would_post(schema, settings):
    """Any objects, each giving any subset of the columns, import to exactly the rows POSTing each
    would make (a property over generated files, through both JSON readers, plain and atomic)."""
    from hypothesis import HealthCheck, given
    from hypothesis import settings as hypothesis_settings
    from hypothesis import strategies as st
    from starlette.testclient import TestClient

    from app.main import create_app

    cells = {"age": st.one_of(st.none(), st.integers(0, 99)),
             "balance": st.sampled_from(["1.50", 2, "0"]), "active": st.booleans(),
             "meta": st.one_of(st.none(), st.lists(st.integers(), max_size=2))}
    objects = st.lists(st.fixed_dictionaries({"name": st.sampled_from(["a", "b"])}, optional=cells), min_size=1, max_size=8)
    snapshot = "SELECT name, age, balance, active, meta FROM users ORDER BY id"

    with TestClient(create_app(settings()), raise_server_exceptions=False) as client:
        @hypothesis_settings(max_examples=12, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
        @given(rows=objects, array=st.booleans(), atomic=st.booleans())
        def check(rows, array, atomic):
            run_sql(schema, "DELETE FROM users")
            for row in rows:
                assert client.post("/api/users", json={"input": row}).status_code == 201
            posted = run_sql(schema, snapshot)
            run_sql(schema, "DELETE FROM users")
            name, data = ("users.json", files.json_array(rows)) if array else ("users.jsonl", files.jsonl(rows))
            response = client.post("/api/batch/import", params={"atomic": str(atomic).lower()}, files={"file": (name, data)})
            assert response.status_code == 200 and response.json()["data"]["rows_inserted"] == len(rows), response.text
            assert run_sql(schema, snapshot) == posted

        check()


async def test_a_key_left_out_of_a_required_column_is_reported(client, schema):
    report = await imported(client, "orders.jsonl", files.jsonl([{"user_id": 1, "total": 5, "status": "new"}, {"user_id": 1, "status": "paid"}]))
    assert [(e["line"], e["column"]) for e in report["errors"]][-1] == (2, "total")


async def test_json_array_into_an_empty_table(client, schema):
    objects = [{"name": f"u{i}", "age": i} for i in range(2500)]
    async with running(client.app.state.settings.model_copy(update={"import_batch_rows": 1000})) as small:
        report = await imported(small, "users.json", files.json_array(objects))
    assert report["rows_inserted"] == 2500 and report["committed_indexes"] == [[0, 2499]]
    assert run_sql(schema, "SELECT COUNT(*), SUM(age) FROM users") == [(2500, sum(range(2500)))]


async def test_tsv(client, schema):
    data = b"name\temail\tage\r\nAnn\tann@x\t31\r\n\"Tab\tbed\"\t\\N\t\r\n"
    report = await imported(client, "users.tsv", data)
    assert report["rows_inserted"] == 2
    assert run_sql(schema, "SELECT name, email, age FROM users ORDER BY id") == [("Ann", "ann@x", 31), ("Tab\tbed", None, None)]


async def test_format_parameter_and_table_parameter(client, schema):
    report = await imported(client, "upload.bin", files.jsonl([{"name": "A"}]), format="jsonl", table="users")
    assert report["rows_inserted"] == 1


# --- exports and round trips --------------------------------------------------------------------


async def export(client, table, fmt, **params):
    response = await client.get(f"/api/batch/{table}/export", params={"format": fmt, **params})
    assert response.status_code == 200, response.text
    return response


TYPES_ROWS = [
    "(1, -128, 65535, 9007199254740993, 1.5, 12345.678, 'héllo', 'long text', x'00ff10', '2024-01-02 03:04:05.123456',"
    " '2024-02-29', '-12:30:00', 2024, 'green', 'a,c', '{\"k\": [1, 2]}', 1, b'1010')",
    "(2, NULL, NULL, NULL, NULL, NULL, '', NULL, NULL, NULL, NULL, NULL, NULL, NULL, '', NULL, 0, NULL)",
    # A TINYINT(1) holds more than 0 and 1: an XLSX cell keeps it as a number, not TRUE.
    "(3, NULL, NULL, NULL, NULL, NULL, 'x', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, -2, NULL)",
]
TYPES_COLUMNS = "id, i, u, b, f, d, s, t, bin, dt, da, tm, y, e, st, j, flag, bits"


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "xlsx"])
async def test_round_trip_every_format(client, schema, fmt):
    run_sql(schema, f"INSERT INTO types ({TYPES_COLUMNS}) VALUES {', '.join(TYPES_ROWS)}")
    before = run_sql(schema, f"SELECT {TYPES_COLUMNS}, gen FROM types ORDER BY id")
    response = await export(client, "types", fmt)
    assert response.headers["content-disposition"] == f'attachment; filename="types.{fmt}"; filename*=UTF-8\'\'types.{fmt}'
    run_sql(schema, "DELETE FROM types")
    report = await imported(client, f"types.{fmt}", response.content)
    assert report["rows_inserted"] == len(TYPES_ROWS), report["errors"]
    after = run_sql(schema, f"SELECT {TYPES_COLUMNS}, gen FROM types ORDER BY id")
    before = [row[:15] + (orjson.loads(row[15]) if row[15] else None,) + row[16:] for row in before]  # JSON: same value
    after = [row[:15] + (orjson.loads(row[15]) if row[15] else None,) + row[16:] for row in after]
    if fmt == "xlsx":  # an empty cell is NULL where NULL is allowed: '' in a nullable text column comes back NULL
        before[1] = tuple(None if v == "" else v for v in before[1])
    assert after == before


async def test_xlsx_export_has_typed_cells(client, schema):
    run_sql(schema, "INSERT INTO users (name, age, balance, active, created) VALUES ('Ann', 31, 10.5, 1, '2024-01-02 03:04:05')")
    response = await export(client, "users", "xlsx", fields="name,age,balance,active,created")
    assert response.headers["content-type"] == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    sheet = openpyxl.load_workbook(io.BytesIO(response.content)).active
    assert [c.value for c in sheet[1]] == ["name", "age", "balance", "active", "created"]
    assert [c.value for c in sheet[2]] == ["Ann", 31, 10.5, True, dt.datetime(2024, 1, 2, 3, 4, 5)]
    assert sheet["C2"].data_type == "n" and sheet["E2"].is_date


async def test_jsonl_export_is_what_get_shows(client, schema):
    run_sql(schema, "INSERT INTO users (name, balance, meta) VALUES ('Ann', 10.5, '{\"a\": 1}')")
    response = await export(client, "users", "jsonl", fields="id,name,balance,meta")
    assert response.headers["content-type"].startswith("application/x-ndjson")
    got = (await client.get("/api/users/1", params={"fields": "id,name,balance,meta"})).json()["data"]
    assert [orjson.loads(line) for line in response.content.splitlines()] == [got]


async def test_xlsx_export_refuses_what_a_sheet_cannot_hold(client, schema):
    run_sql(schema, "INSERT INTO types (id, t) VALUES (1, REPEAT('x', 40000))")
    response = await client.get("/api/batch/types/export", params={"format": "xlsx"})
    assert_error(response, 413, "payload_too_large")
    assert_error(await client.get("/api/batch/types/export", params={"format": "pdf"}), 400, "invalid_body")


# --- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "filename, data, params, status, code, words",
    [
        ("users.xlsx", b"PK\x03\x04 not really a zip", {}, 400, "invalid_spreadsheet", "corrupt"),
        ("users.xlsx", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 600, {}, 400, "invalid_spreadsheet", "password"),
        ("users.xls", b"plain text", {}, 400, "invalid_spreadsheet", "not an XLS"),
        ("users.xlsx", files.xlsx([["name"], ["a"]]), {"sheet": "Nope"}, 400, "invalid_spreadsheet", "Sheet1"),
        ("users.xlsx", files.xlsx([]), {}, 400, "invalid_spreadsheet", "empty"),
        ("users.xlsx", files.xlsx([["name", None, "age"], ["a", 1, 2]]), {}, 400, "invalid_spreadsheet", "B1"),
        ("users.xlsx", files.xlsx([["name", "name"], ["a", "b"]]), {}, 400, "invalid_header", "duplicate"),
        ("users.ods", files.xlsx([["name"], ["a"]])[:200], {}, 400, "invalid_spreadsheet", "corrupt"),
        ("users.json", b'{"name": "a"}', {}, 400, "invalid_json", "array"),
        ("users.json", b"[1, 2]", {}, 400, "invalid_json", "element 0"),
        ("users.json", b"[]", {}, 400, "invalid_json", "empty"),
        ("users.json", b"[" * 100_000 + b"]" * 100_000, {}, 400, "invalid_json", "deeper than 1000"),
        ("users.jsonl", b'"just a string"\n', {}, 400, "invalid_json", "line 1"),
        ("users.jsonl", b"\n\n", {}, 400, "invalid_json", "no JSON objects"),
        ("users.csv", files.xlsx([["name"], ["a"]]), {}, 415, "unsupported_media_type", "spreadsheet"),
        ("users.csv", b"name\na\n", {"sheet": "x"}, 400, "invalid_csv", "sheet"),
    ],
)
async def test_bad_files_are_clear_4xx(client, schema, filename, data, params, status, code, words):
    body = assert_error(await send(client, filename, data, **params), status, code)
    assert words.lower() in body["message"].lower(), body["message"]
    assert run_sql(schema, "SELECT COUNT(*) FROM users") == [(0,)]


async def test_a_malformed_json_array_stops_with_the_report(client, schema):
    data = b'[{"name": "a"}, {"name": "b"}, {"name": '
    body = assert_error(await send(client, "users.json", data), 400, "invalid_json")
    report = body["details"]["report"]
    assert report["rows_read"] == 2 and report["rows_inserted"] + report["rows_not_applied"] == 2


async def test_zip_bombs_are_refused_before_they_are_expanded(schema, settings):
    async with running(settings(spreadsheet_max_uncompressed_bytes=4 * 1024 * 1024, spreadsheet_max_cells=1000)) as client:
        body = assert_error(await send(client, "users.xlsx", files.zip_bomb(8 * 1024 * 1024)), 413, "payload_too_large")
        assert "expands to" in body["message"]
        body = assert_error(await send(client, "users.xlsx", files.declared_cells(1_000_000, "Z")), 413, "payload_too_large")
        assert body["details"]["max_cells"] == 1000
        rows = [["name", "age"]] + [[f"u{i}", i] for i in range(600)]
        assert_error(await send(client, "users.xlsx", files.xlsx(rows)), 413, "payload_too_large")


async def test_spooled_uploads_are_removed(schema, settings, tmp_path):
    async with running(settings(spool_dir=str(tmp_path))) as client:
        await imported(client, "users.xlsx", files.xlsx([["name"], ["a"]]))
        assert_error(await send(client, "users.xlsx", files.xlsx([["nope"], ["a"]])), 400, "invalid_header")
        assert_error(await send(client, "users.xlsx", b"PK\x03\x04 broken"), 400, "invalid_spreadsheet")
        assert (await client.get("/api/batch/users/export", params={"format": "xlsx"})).status_code == 200
        assert list(tmp_path.iterdir()) == []


async def test_xlsx_export_of_a_table_whose_name_no_sheet_may_have(client, schema):
    run_sql(schema, "CREATE TABLE `'quoted:name'` (id INT PRIMARY KEY)")
    run_sql(schema, "INSERT INTO `'quoted:name'` VALUES (1)")
    await client.app.state.catalog.reload()
    response = await export(client, "'quoted:name'", "xlsx")
    assert openpyxl.load_workbook(io.BytesIO(response.content)).active.title == "quoted_name"
