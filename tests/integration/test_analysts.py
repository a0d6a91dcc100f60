"""Exports read back with the tools analysts use, at their defaults (issue 34): pandas, DuckDB, a
spreadsheet. NULL is a missing value there (an empty cell), numbers and dates are typed, and an
export still imports back to exactly the same table, NULL and the empty string told apart."""

import datetime as dt
import io
import json
from decimal import Decimal

import duckdb
import openpyxl
import pandas
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from orjson import loads as orjson_loads
from starlette.testclient import TestClient

from app.main import create_app
from tests.conftest import run_sql
from tests.integration.test_crud import assert_error
from tests.integration.test_csv import imported

MEASURES = """CREATE TABLE measures (
    id INT PRIMARY KEY, balance DECIMAL(10,2), score DOUBLE, active TINYINT(1), born DATE, seen DATETIME,
    qty BIGINT, name VARCHAR(20), note TEXT
)"""
MEASURE_ROWS = [
    (1, "12.50", 0.25, 1, "1990-05-01", "2024-01-02 03:04:05", 7, "Ann", "first"),
    (2, None, None, None, None, None, None, None, None),
    (3, "-3.00", 1e10, 0, "2001-12-31", "2000-01-01 00:00:00", -2, "", ""),
    (4, "0.01", None, 1, None, "1999-09-09 09:09:09", None, "Dee", None),
]


@pytest.fixture
async def measures(schema):
    run_sql(schema, MEASURES)
    run_sql(schema, "INSERT INTO measures VALUES " + ",".join(["(%s,%s,%s,%s,%s,%s,%s,%s,%s)"] * 4),
            [v for row in MEASURE_ROWS for v in row])


async def test_pandas_reads_the_csv_export_typed_with_nulls_missing(client, measures):
    exported = (await client.get("/api/batch/measures/export")).content
    frame = pandas.read_csv(io.BytesIO(exported))
    assert {c: frame[c].dtype.kind for c in ("balance", "score", "active", "qty")} == dict.fromkeys(
        ("balance", "score", "active", "qty"), "f"  # numbers (a NULL makes pandas' integers floats)
    )
    assert frame.isna().sum().to_dict() == {
        "id": 0, "balance": 1, "score": 2, "active": 1, "born": 2, "seen": 1, "qty": 2,
        # pandas reads every empty cell, quoted or not, as missing: the '' of row 3 too
        "name": 2, "note": 3,
    }
    rows = (await client.get("/api/measures/query", params={"order": "id"})).json()["data"]
    for row, (_, read) in zip(rows, frame.iterrows()):
        for column in ("balance", "score", "active", "qty"):
            expected = row[column]
            assert (pandas.isna(read[column]) if expected is None else float(read[column]) == float(expected)), column
    dates = pandas.read_csv(io.BytesIO(exported), parse_dates=["born", "seen"])
    assert dates["born"].dtype.kind == "M" and dates["seen"].dtype.kind == "M"


async def test_duckdb_types_the_csv_export_and_finds_its_nulls(client, measures, tmp_path):
    path = tmp_path / "measures.csv"
    path.write_bytes((await client.get("/api/batch/measures/export")).content)
    with duckdb.connect() as db:
        relation = f"read_csv('{path}', allow_quoted_nulls = false)"
        types = dict(db.execute(f"SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM {relation})").fetchall())
        assert types["born"] == "DATE" and types["seen"] == "TIMESTAMP"
        assert types["balance"] == "DOUBLE" and types["score"] == "DOUBLE" and types["qty"] == "BIGINT"
        assert db.execute(f"SELECT list(id ORDER BY id) FROM {relation} WHERE born IS NULL").fetchone() == ([2, 4],)
        # Quoted, the empty string is a value, not NULL (allow_quoted_nulls = false is DuckDB's switch).
        assert db.execute(f"SELECT list(id ORDER BY id) FROM {relation} WHERE name = ''").fetchone() == ([3],)
        assert db.execute(f"SELECT list(id ORDER BY id) FROM {relation} WHERE note IS NULL").fetchone() == ([2, 4],)
        assert db.execute(f"SELECT sum(balance) FROM {relation}").fetchone()[0] == pytest.approx(9.51)


async def test_an_xlsx_export_leaves_null_cells_empty(client, measures):
    book = openpyxl.load_workbook(io.BytesIO((await client.get("/api/batch/measures/export?format=xlsx")).content))
    sheet = book.active
    header = [cell.value for cell in sheet[1]]
    second = dict(zip(header, [cell.value for cell in sheet[3]]))  # row id 2: every other column NULL
    assert second == {"id": 2} | {name: None for name in header[1:]}
    assert [cell.value for cell in sheet[4]][1] == -3  # and the numbers are numbers


async def test_a_one_column_export_keeps_its_null_rows(client, schema):
    """One column: a NULL is a blank line (as PostgreSQL writes it), and the import reads it so."""
    run_sql(schema, "CREATE TABLE single (v VARCHAR(10))")
    run_sql(schema, "CREATE TABLE single_copy (v VARCHAR(10))")
    run_sql(schema, "INSERT INTO single VALUES ('a'), (NULL), (''), (NULL), ('\\\\N')")
    exported = (await client.get("/api/batch/single/export")).content
    assert exported == b'v\r\na\r\n\r\n""\r\n\r\n"\\N"\r\n'
    report = await imported(client, "single_copy.csv", exported)
    assert report["rows_inserted"] == 5
    assert run_sql(schema, "SELECT v FROM single_copy") == run_sql(schema, "SELECT v FROM single")


# Text that reads like NULL in one convention or another, and text a collation would take for it.
TRICKY = ["", "\\N", "\\n", "\\N ", " ", "  ", "NULL", '""', '"', ",", "\r\n", "a,b", '"\\N"']
texts = st.one_of(st.sampled_from(TRICKY), st.text(alphabet="ab \\N\"\r\n,é", max_size=6))
def maybe(values):
    return st.none() | values


moments = st.datetimes(dt.datetime(1000, 1, 1), dt.datetime(9999, 12, 31))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3), max_leaves=6,
)
# One column of each kind the catalog knows (the columns of LOOSE, in order), NULLs and '' included.
rows = st.lists(
    st.tuples(
        maybe(texts), texts, maybe(st.integers(-(2**31), 2**31 - 1)), maybe(st.binary(max_size=3)),
        maybe(st.decimals(min_value=-(10**6), max_value=10**6, places=3, allow_nan=False)),
        maybe(moments), maybe(st.dates(dt.date(1000, 1, 1), dt.date(9999, 12, 31))),
        maybe(st.floats(allow_nan=False, allow_infinity=False, width=64)), maybe(json_values.map(json.dumps)),
        maybe(st.integers(-128, 127)), maybe(st.integers(0, 2**64 - 1)), maybe(st.sampled_from(["", "a", "b,c"])),
        maybe(st.sampled_from(["red", "green"])), maybe(st.timedeltas(-dt.timedelta(hours=838), dt.timedelta(hours=838))),
    ),
    min_size=1, max_size=6,
)
LOOSE = """CREATE TABLE loose (
    id INT PRIMARY KEY, t VARCHAR(20), s VARCHAR(20) NOT NULL, n INT, b VARBINARY(8), d DECIMAL(10,3),
    at DATETIME(6), day DATE, x DOUBLE, j JSON, flag TINYINT(1), big BIGINT UNSIGNED, st SET('a','b','c'),
    e ENUM('red','green'), tm TIME(6)
)"""
LOOSE_COLUMNS = "id, t, s, n, b, d, at, day, x, JSON_COMPACT(j), flag, big, st, e, tm"



@pytest.fixture
def sync_client(schema, settings):
    run_sql(schema, LOOSE)
    run_sql(schema, "CREATE TABLE loose_copy LIKE loose")
    with TestClient(create_app(settings()), raise_server_exceptions=False) as client:
        yield client


def test_any_rows_go_out_and_back_in_exactly(sync_client, schema):
    """Export, then import into an empty copy: the same table, whatever the text, as CSV in the
    standard convention and as Parquet; as CSV with the \\N marker (MySQL's), the same but for a
    text that is exactly \\N."""

    @settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
    @given(rows=rows, form=st.sampled_from(["csv", "marker", "parquet"]))
    def round_trip(rows, form):
        if form == "marker":
            rows = [row for row in rows if "\\N" not in row[:2]]
        run_sql(schema, "DELETE FROM loose")
        run_sql(schema, "DELETE FROM loose_copy")
        for i, row in enumerate(rows):
            run_sql(schema, "INSERT INTO loose VALUES (" + ",".join(["%s"] * 15) + ")", (i, *row))
        params = {"null": "\\N"} if form == "marker" else {"format": "parquet"} if form == "parquet" else {}
        exported = sync_client.get("/api/batch/loose/export", params=params)
        assert exported.status_code == 200, exported.text
        extension = "parquet" if form == "parquet" else "csv"
        response = sync_client.post(
            "/api/batch/import", params={"table": "loose_copy", **{k: v for k, v in params.items() if k == "null"}},
            files={"file": (f"loose.{extension}", exported.content, "application/octet-stream")},
        )
        assert response.status_code == 200 and response.json()["data"]["rows_failed"] == 0, response.text
        query = f"SELECT {LOOSE_COLUMNS} FROM {{}} ORDER BY id"
        assert run_sql(schema, query.format("loose_copy")) == run_sql(schema, query.format("loose"))

    round_trip()


async def test_a_marker_is_compared_byte_for_byte(client, schema):
    """MySQL's convention: with `\\N` in a column, `\\n` and `\\N ` are still text (a collation would
    have called them equal, and NULL), and spaces are not the empty cell."""
    run_sql(schema, "CREATE TABLE notes (id INT PRIMARY KEY, v VARCHAR(10), n INT)")
    data = b'id,v,n\r\n1,\\N,1\r\n2,\\n,\r\n3,\\N ,3\r\n4,  ,\\N\r\n5,,5\r\n'
    report = await imported(client, "notes.csv", data, null="\\N")
    assert report["rows_inserted"] == 5
    assert run_sql(schema, "SELECT id, v, n FROM notes ORDER BY id") == [
        (1, None, 1), (2, "\\n", None), (3, "\\N ", 3), (4, "  ", None), (5, "", 5),
    ]


# --- reads by content negotiation ------------------------------------------------------------


async def test_a_query_answers_csv_for_accept_text_csv_typed_and_equal_to_json(client, measures):
    json_rows = (await client.get("/api/measures/query", params={"order": "id"})).json()["data"]
    response = await client.get("/api/measures/query", params={"order": "id"}, headers={"Accept": "text/csv"})
    assert response.status_code == 200 and response.headers["content-type"] == "text/csv; charset=utf-8"
    assert "accept" in response.headers["vary"].lower()
    frame = pandas.read_csv(io.BytesIO(response.content), keep_default_na=False, na_values=[""])
    assert list(frame.columns) == list(json_rows[0])
    assert frame["balance"].dtype.kind == "f" and frame["qty"].dtype.kind == "f"
    for row, (_, read) in zip(json_rows, frame.iterrows()):
        assert (pandas.isna(read["born"]) if row["born"] is None else read["born"] == row["born"])
        assert (pandas.isna(read["score"]) if row["score"] is None else read["score"] == row["score"])
    assert response.text.splitlines()[3].split(",")[7] == '""'  # row 3's name: the empty string, quoted


async def test_a_csv_read_imports_back_exactly(client, schema):
    """What /query answers in CSV, the CSV import reads back to the same rows, every column type."""
    run_sql(schema, "INSERT INTO types (id, i, u, b, f, d, s, t, bin, dt, da, tm, y, e, st, j, flag, bits) VALUES "
            "(1, -128, 65535, 9223372036854775807, 1.5, '-12345.125', 'ten chars!', 'long\\ntext, \"q\"', "
            "x'00017f', '2024-02-29 23:59:59.123456', '1999-12-31', '838:59:59', 2155, 'green', 'a,c', "
            "'{\"k\": [1, \"x\", null]}', 1, 9), (2, NULL, NULL, NULL, NULL, NULL, '', '', x'', NULL, NULL, NULL, NULL, "
            "NULL, '', '\"just text\"', 0, 0), (3, 0, 0, 0, -0.25, '0.000', NULL, NULL, NULL, NULL, NULL, '-01:02:03.5', "
            "NULL, 'red', NULL, '[]', NULL, NULL)")
    run_sql(schema, "CREATE TABLE types_copy LIKE types")
    fields = "id,i,u,b,f,d,s,t,bin,dt,da,tm,y,e,st,j,flag,bits"
    read = await client.get("/api/types/query", params={"fields": fields}, headers={"Accept": "text/csv"})
    assert read.status_code == 200, read.text
    report = await imported(client, "types_copy.csv", read.content)
    assert report["rows_inserted"] == 3 and report["errors"] == []
    same = fields.replace(",j,", ",JSON_COMPACT(j),")  # JSON as its value: the CSV spells it compactly
    assert run_sql(schema, f"SELECT {same} FROM types_copy ORDER BY id") == run_sql(
        schema, f"SELECT {same} FROM types ORDER BY id"
    )


async def test_json_lines_and_a_row_by_key_and_the_json_body_query(client, measures):
    json_rows = (await client.get("/api/measures/query", params={"order": "id"})).json()["data"]
    lines = await client.get("/api/measures/query", params={"order": "id"}, headers={"Accept": "application/x-ndjson"})
    assert lines.headers["content-type"] == "application/x-ndjson"
    assert [orjson_loads(line) for line in lines.text.splitlines()] == json_rows
    one = await client.get("/api/measures/3", headers={"Accept": "text/csv"})
    assert one.text == 'id,balance,score,active,born,seen,qty,name,note\r\n3,-3.00,10000000000.0,0,2001-12-31,' \
        '2000-01-01T00:00:00,-2,"",""\r\n'
    posted = await client.post("/api/measures/query", json={"input": {"id": {"gte": 2}}, "fields": ["id", "name"],
                                                           "limit": 2}, headers={"Accept": "text/csv"})
    assert posted.text == 'id,name\r\n2,\r\n3,""\r\n' and posted.headers["x-next-cursor"]
    assert "link" not in posted.headers  # a POST's next page is the same body with the cursor
    empty = await client.get("/api/measures/query", params={"id": "gt.100", "fields": "id,name"},
                             headers={"Accept": "text/csv"})
    assert empty.text == "id,name\r\n"  # the header still names the columns


async def test_csv_pages_follow_link_and_carry_the_total(client, measures):
    """The list's meta goes in headers: Link rel=next (a cursor's where there is one), X-Total-Count."""
    url, seen = "/api/measures/query?order=id&limit=3&count=exact", []
    while url:
        page = await client.get(url, headers={"Accept": "text/csv"})
        assert page.headers["x-total-count"] == "4"
        seen += page.text.splitlines()[1:]
        link = page.headers.get("link")
        url = link[1:link.index(">")] if link else None
    assert [line.split(",")[0] for line in seen] == ["1", "2", "3", "4"]
    cursor_page = await client.get("/api/measures/query?order=born.desc&limit=2&offset=1", headers={"Accept": "text/csv"})
    link = cursor_page.headers["link"]
    assert "cursor=" in link and "offset" not in link and cursor_page.headers["x-next-cursor"]
    following = await client.get(link[1:link.index(">")], headers={"Accept": "text/csv"})
    assert following.status_code == 200 and following.text.splitlines()[1:] != cursor_page.text.splitlines()[1:]


async def test_an_accept_that_takes_nothing_offered_is_406(client, measures):
    for path in ("/api/measures/query", "/api/measures/1"):
        body = assert_error(await client.get(path, headers={"Accept": "text/html"}), 406, "not_acceptable")
        assert body["details"]["available"] == ["application/json", "text/csv", "application/x-ndjson"]
    browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
    assert (await client.get("/api/measures/1", headers={"Accept": browser})).json()["data"]["id"] == 1


# --- Parquet ---------------------------------------------------------------------------------

TYPES_ROWS = (
    "INSERT INTO types (id, i, u, b, f, d, s, t, bin, dt, da, tm, y, e, st, j, flag, bits) VALUES "
    "(1, -128, 65535, 9223372036854775807, 1.5, '-12345.125', 'ten chars!', 'long\\ntext, \"q\"', x'00017f', "
    "'2024-02-29 23:59:59.123456', '1999-12-31', '838:59:59', 2155, 'green', 'a,c', '{\"k\": [1, \"x\", null]}', 2, 9),"
    "(2, NULL, NULL, NULL, NULL, NULL, '', '', x'', NULL, NULL, NULL, NULL, NULL, '', '\"just text\"', 0, 0),"
    "(3, 0, 0, -9223372036854775808, -0.25, '0.000', NULL, NULL, NULL, '2000-01-01 00:00:00', NULL, '-01:02:03.5', "
    "NULL, 'red', NULL, '[]', NULL, NULL)"
)


async def test_a_parquet_export_is_typed_from_the_catalog(client, schema, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    run_sql(schema, TYPES_ROWS)
    response = await client.get("/api/batch/types/export", params={"format": "parquet", "order": "id"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/vnd.apache.parquet"
    assert response.headers["content-disposition"].startswith('attachment; filename="types.parquet"')
    table = pq.read_table(io.BytesIO(response.content))
    types = {field.name: field.type for field in table.schema}
    assert types == {
        "id": pa.int32(), "i": pa.int8(), "u": pa.uint16(), "b": pa.int64(), "f": pa.float64(),
        "d": pa.decimal128(8, 3), "s": pa.string(), "t": pa.string(), "bin": pa.binary(),
        "dt": pa.timestamp("us"), "da": pa.date32(), "tm": pa.string(), "y": pa.int16(), "e": pa.string(),
        "st": pa.string(), "j": pa.json_(), "flag": pa.int8(), "bits": pa.uint64(), "gen": pa.int32(),
    }
    assert pq.ParquetFile(io.BytesIO(response.content)).metadata.row_group(0).column(0).compression == "ZSTD"
    rows = table.to_pylist()
    assert rows[0]["d"] == Decimal("-12345.125") and rows[0]["bin"] == b"\x00\x01\x7f" and rows[0]["flag"] == 2
    assert rows[0]["dt"] == dt.datetime(2024, 2, 29, 23, 59, 59, 123456) and rows[0]["tm"] == "838:59:59"
    assert rows[1]["i"] is None and rows[1]["s"] == "" and rows[1]["bin"] == b"" and rows[1]["j"] == '"just text"'
    assert rows[2]["b"] == -(2**63) and rows[2]["st"] is None and rows[2]["tm"] == "-01:02:03"
    path = tmp_path / "types.parquet"
    path.write_bytes(response.content)
    with duckdb.connect() as db:  # DuckDB reads it as it is, NULLs as NULL
        assert db.execute(f"SELECT list(id ORDER BY id) FROM read_parquet('{path}') WHERE da IS NULL").fetchone() == ([2, 3],)
        assert db.execute(f"SELECT typeof(d), typeof(dt) FROM read_parquet('{path}') LIMIT 1").fetchone() == (
            "DECIMAL(8,3)", "TIMESTAMP",
        )


async def test_a_parquet_export_of_an_empty_result_still_has_the_columns(client, measures):
    import pyarrow.parquet as pq

    response = await client.get("/api/batch/measures/export", params={"format": "parquet", "id": "gt.100"})
    table = pq.read_table(io.BytesIO(response.content))
    assert table.num_rows == 0 and table.column_names[:3] == ["id", "balance", "score"]
    frame = pandas.read_parquet(io.BytesIO((await client.get("/api/batch/measures/export?format=parquet")).content))
    assert frame["balance"].isna().sum() == 1 and frame["born"].isna().sum() == 2


async def test_a_parquet_export_imports_back_exactly_every_column_type(client, schema):
    run_sql(schema, TYPES_ROWS)
    run_sql(schema, "CREATE TABLE types_copy LIKE types")
    fields = "id,i,u,b,f,d,s,t,bin,dt,da,tm,y,e,st,j,flag,bits"
    exported = await client.get("/api/batch/types/export", params={"format": "parquet", "fields": fields})
    report = await imported(client, "types_copy.parquet", exported.content)
    assert report["rows_inserted"] == 3 and report["errors"] == [], report
    same = fields.replace(",j,", ",JSON_COMPACT(j),")
    assert run_sql(schema, f"SELECT {same} FROM types_copy ORDER BY id") == run_sql(
        schema, f"SELECT {same} FROM types ORDER BY id"
    )


async def test_a_parquet_file_from_pandas_is_checked_against_the_table(client, schema):
    """Types are the table's: a value the column cannot hold refuses its row, by row number."""
    frame = pandas.DataFrame({"name": ["Ann", "Bob", "Cy"], "age": [31, 2**40, None],
                              "balance": [Decimal("1.50"), Decimal("2.25"), Decimal("-3.00")]})
    out = io.BytesIO()
    frame.to_parquet(out)
    report = await imported(client, "users.parquet", out.getvalue())
    assert report["rows_inserted"] == 2 and [(e["row"], e["column"]) for e in report["errors"]] == [(2, "age")]
    assert run_sql(schema, "SELECT name, age, balance FROM users ORDER BY name") == [
        ("Ann", 31, Decimal("1.50")), ("Cy", None, Decimal("-3.00")),
    ]
    validated = await client.post("/api/batch/validate", files={"file": ("users.parquet", out.getvalue())})
    assert validated.json()["data"]["rows_failed"] == 1


async def test_a_file_that_is_not_parquet_says_so(client, schema):
    body = assert_error(await client.post("/api/batch/import", files={"file": ("users.parquet", b"name\nAnn\n")}),
                        400, "invalid_parquet")
    assert "PAR1" in body["message"]
    out = io.BytesIO()
    pandas.DataFrame({"name": ["Ann"]}).to_parquet(out)
    named_csv = await client.post("/api/batch/import", files={"file": ("users.csv", out.getvalue())})
    assert "name it .parquet" in assert_error(named_csv, 415, "unsupported_media_type")["message"]
    indexed = io.BytesIO()  # a filtered DataFrame: pandas writes its index as __index_level_0__, not data
    pandas.DataFrame({"name": ["Ann", "Bob"]}, index=[7, 9]).to_parquet(indexed)
    assert (await imported(client, "users.parquet", indexed.getvalue()))["rows_inserted"] == 2
    unknown = io.BytesIO()
    pandas.DataFrame({"nope": [1]}).to_parquet(unknown)
    assert_error(await client.post("/api/batch/import", files={"file": ("users.parquet", unknown.getvalue())}),
                 400, "invalid_header")


async def test_json_lines_keep_an_integer_past_64_bits_exact(client, schema):
    """orjson cannot write one: the batch that holds one goes value by value through the json module
    (a JSONL export broke off mid-transfer on it)."""
    run_sql(schema, "INSERT INTO users (name, meta) VALUES ('big', '{\"n\": 1180591620717411303424}'), ('small', '[1]')")
    exported = await client.get("/api/batch/users/export", params={"format": "jsonl", "fields": "name,meta"})
    assert exported.status_code == 200
    assert exported.text == '{"name":"big","meta":{"n":1180591620717411303424}}\n{"name":"small","meta":[1]}\n'
    asked = await client.get("/api/users/query", params={"fields": "name,meta"}, headers={"Accept": "application/x-ndjson"})
    assert asked.text == exported.text


async def test_the_year_0000_stays_0000_through_every_import(client, schema):
    """LOAD DATA reads a field as text, and the text 0 is the year 2000: the import sends YEAR as a number."""
    run_sql(schema, "INSERT INTO types (id, y) VALUES (1, 0), (2, 2155), (3, NULL), (4, 1901)")
    run_sql(schema, "CREATE TABLE types_copy LIKE types")
    for params in ({}, {"format": "parquet"}):
        run_sql(schema, "DELETE FROM types_copy")
        exported = await client.get("/api/batch/types/export", params=params | {"fields": "id,y"})
        name = "types_copy.parquet" if params else "types_copy.csv"
        assert (await imported(client, name, exported.content))["rows_inserted"] == 4
        assert run_sql(schema, "SELECT id, y FROM types_copy ORDER BY id") == [(1, 0), (2, 2155), (3, None), (4, 1901)]
    run_sql(schema, "DELETE FROM types_copy")
    # pandas' integers with a NULL are floats, and its dates are moments at midnight
    frame = pandas.DataFrame({"id": [5, 6], "y": [1999.0, None], "da": pandas.to_datetime(["2024-02-29", None])})
    out = io.BytesIO()
    frame.to_parquet(out, index=False)
    assert (await imported(client, "types_copy.parquet", out.getvalue()))["rows_inserted"] == 2
    assert run_sql(schema, "SELECT id, y, da FROM types_copy ORDER BY id") == [
        (5, 1999, dt.date(2024, 2, 29)), (6, None, None),
    ]
    late = io.BytesIO()
    pandas.DataFrame({"id": [7], "da": pandas.to_datetime(["2024-02-29 10:00"])}).to_parquet(late, index=False)
    report = await imported(client, "types_copy.parquet", late.getvalue())
    assert [(e["row"], e["column"]) for e in report["errors"]] == [(1, "da")]  # a time of day is not a date


async def test_a_value_only_the_database_refuses_names_its_column_in_the_report(client, schema):
    """A FLOAT past its range, a TIMESTAMP past 2038: the server's refusal names the column, and its
    "at row 1" (the statement's row) is not passed on as if it were the file's."""
    run_sql(schema, "CREATE TABLE limits (id INT PRIMARY KEY, f FLOAT, ts TIMESTAMP NULL)")
    out = io.BytesIO()
    pandas.DataFrame({"id": [1, 2, 3], "f": [1.5, 1e39, 2.5],
                      "ts": pandas.to_datetime(["2020-01-01", "2020-01-01", "2040-01-01"])}).to_parquet(out, index=False)
    report = await imported(client, "limits.parquet", out.getvalue())
    assert report["rows_inserted"] == 1
    assert [(e["row"], e["column"]) for e in report["errors"]] == [(2, "f"), (3, "ts")]
    assert not any("at row" in e["reason"] for e in report["errors"])


async def test_a_csv_read_tells_json_null_from_sql_null(client, schema):
    run_sql(schema, "INSERT INTO users (id, name, meta) VALUES (1, 'a', 'null'), (2, 'b', NULL), (3, 'c', '{\"k\": [1, 2]}')")
    asked = await client.get("/api/users/query", params={"fields": "id,meta"}, headers={"Accept": "text/csv"})
    assert asked.text == 'id,meta\r\n1,null\r\n2,\r\n3,"{""k"": [1, 2]}"\r\n'  # the JSON as stored
    one = await client.get("/api/users/1", params={"fields": "meta"}, headers={"Accept": "text/csv"})
    assert one.text == "meta\r\nnull\r\n"


def test_no_upload_of_broken_parquet_or_odd_csv_gives_a_5xx(sync_client, schema):
    """Any damage to a real Parquet file (cut short, bytes changed), and CSV text made of what the
    standard convention reads specially (quotes, "", \\N, blank lines): a 4xx or an accounted report,
    never a 5xx."""
    run_sql(schema, "INSERT INTO loose (id, t, s, j) VALUES (1, 'a', 'b', '[1]'), (2, NULL, '', 'null')")
    parquet = sync_client.get("/api/batch/loose/export", params={"format": "parquet"}).content
    pieces = st.sampled_from(['""', '"\\N"', "\\N", ",", '"', "\n", "\r\n", "a", '"x""y"', ""])

    def accounted(response) -> None:
        assert response.status_code < 500, response.text
        if response.status_code == 200:
            report = response.json()["data"]
            assert report["rows_read"] == sum(report[k] for k in (
                "rows_inserted", "rows_updated", "rows_skipped", "rows_failed", "rows_not_applied",
                "rows_outcome_unknown"))

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(cut=st.integers(0, len(parquet)), flips=st.lists(st.tuples(st.integers(0, len(parquet) - 1),
                                                                        st.integers(0, 255)), max_size=4),
           body=st.lists(pieces, max_size=40))
    def upload(cut, flips, body):
        damaged = bytearray(parquet[:cut] if cut % 2 else parquet)
        for at, value in flips:
            if at < len(damaged):
                damaged[at] = value
        run_sql(schema, "DELETE FROM loose_copy")
        accounted(sync_client.post("/api/batch/import", params={"table": "loose_copy"},
                                   files={"file": ("loose.parquet", bytes(damaged))}))
        text = "id,t,s\n" + "".join(body)
        accounted(sync_client.post("/api/batch/import", params={"table": "loose_copy"},
                                   files={"file": ("loose.csv", text.encode())}))

    upload()
