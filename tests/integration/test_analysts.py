"""Exports read back with the tools analysts use, at their defaults (issue 34): pandas, DuckDB, a
spreadsheet. NULL is a missing value there (an empty cell), numbers and dates are typed, and an
export still imports back to exactly the same table, NULL and the empty string told apart."""

import io

import duckdb
import openpyxl
import pandas
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from app.main import create_app
from tests.conftest import run_sql
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
rows = st.lists(
    st.tuples(st.none() | texts, texts, st.none() | st.integers(-5, 5), st.none() | st.binary(max_size=3)),
    min_size=1, max_size=6,
)


@pytest.fixture
def sync_client(schema, settings):
    run_sql(schema, "CREATE TABLE loose (id INT PRIMARY KEY, t VARCHAR(20), s VARCHAR(20) NOT NULL, n INT, b VARBINARY(8))")
    run_sql(schema, "CREATE TABLE loose_copy LIKE loose")
    with TestClient(create_app(settings()), raise_server_exceptions=False) as client:
        yield client


def test_any_rows_go_out_and_back_in_exactly(sync_client, schema):
    """Export, then import into an empty copy: the same table, whatever the text, in the standard
    convention; with the \\N marker (MySQL's), the same but for a text that is exactly \\N."""

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(rows=rows, marker=st.booleans())
    def round_trip(rows, marker):
        if marker:
            rows = [(t, s, n, b) for t, s, n, b in rows if "\\N" not in (t, s)]
        run_sql(schema, "DELETE FROM loose")
        run_sql(schema, "DELETE FROM loose_copy")
        for i, row in enumerate(rows):
            run_sql(schema, "INSERT INTO loose VALUES (%s,%s,%s,%s,%s)", (i, *row))
        params = {"null": "\\N"} if marker else {}
        exported = sync_client.get("/api/batch/loose/export", params=params)
        assert exported.status_code == 200, exported.text
        response = sync_client.post(
            "/api/batch/import", params={"table": "loose_copy", **params},
            files={"file": ("loose.csv", exported.content, "text/csv")},
        )
        assert response.status_code == 200 and response.json()["data"]["rows_failed"] == 0, response.text
        query = "SELECT id, t, s, n, b FROM {} ORDER BY id"
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
