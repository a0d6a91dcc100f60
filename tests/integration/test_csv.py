"""CSV import and export against a real MariaDB."""

import csv
import io

import pytest

from tests.conftest import run_sql, running
from tests.integration.test_crud import assert_error


def csv_bytes(rows, *, bom=False, newline="\r\n") -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator=newline).writerows(rows)
    return (b"\xef\xbb\xbf" if bom else b"") + out.getvalue().encode()


async def upload(client, filename, data, route="import", **params):
    """POST a file to /api/batch/import (or /validate); the format is the file name's business."""
    return await client.post(f"/api/batch/{route}", params=params, files={"file": (filename, data, "application/octet-stream")})


async def imported(client, filename, data, **params):
    response = await upload(client, filename, data, **params)
    assert response.status_code == 200, response.text
    report = response.json()["data"]
    accounted = sum(report[k] for k in ("rows_inserted", "rows_updated", "rows_skipped", "rows_failed", "rows_not_applied", "rows_outcome_unknown"))
    assert accounted == report["rows_read"]
    return report


async def test_import_into_table_named_after_file(client, schema):
    data = csv_bytes([["name", "email", "age"], ["Ann", "ann@x", "31"], ["Bob", "", "\\N"]])
    report = await imported(client, "users.csv", data)
    assert report["rows_read"] == 2 and report["rows_inserted"] == 2 and report["errors"] == []
    rows = run_sql(schema, "SELECT name, email, age FROM users ORDER BY id")
    assert rows == [("Ann", "ann@x", 31), ("Bob", None, None)]  # the empty cell and \N are NULL
    # Quoted, the empty string is text; with a marker given (MySQL's convention) only the marker is NULL.
    await imported(client, "users.csv", b'name,email,age\n"Cy","",\n')
    assert run_sql(schema, "SELECT name, email, age FROM users WHERE name = 'Cy'") == [("Cy", "", None)]
    run_sql(schema, "DELETE FROM users WHERE name = 'Cy'")  # email is UNIQUE
    await imported(client, "users.csv", b"name,email,age\nDee,,\\N\n", null="\\N")
    assert run_sql(schema, "SELECT name, email, age FROM users WHERE name = 'Dee'") == [("Dee", "", None)]


async def test_table_parameter_overrides_and_paths_are_stripped(client, schema):
    data = csv_bytes([["name"], ["x"]])
    assert (await imported(client, "anything.csv", data, table="users"))["rows_inserted"] == 1
    assert (await imported(client, "C:\\exports\\users.CSV", data))["rows_inserted"] == 1
    assert run_sql(schema, "SELECT COUNT(*) FROM users") == [(2,)]


async def test_bad_rows_are_isolated_with_their_line_numbers(client, schema):
    run_sql(schema, "INSERT INTO users (name, email) VALUES ('old', 'taken@x')")
    rows = [["name", "email", "age"]]
    rows += [[f"u{i}", f"u{i}@x", str(i)] for i in range(40)]
    rows[6][2] = "six"  # line 7: not an integer
    rows[11][1] = "taken@x"  # line 12: duplicate key, found by the database
    rows[20][0] = "multi\nline"  # line 21-22: a good record over two lines
    rows[30] = ["too", "few"]  # line 32: wrong field count
    rows[35][0] = "x" * 51  # line 37 (the two-line record moved it down one): too long
    report = await imported(client, "users.csv", csv_bytes(rows), **{})
    assert report["rows_read"] == 40
    assert report["rows_inserted"] == 36 and report["rows_failed"] == 4
    lines = [(e["line"], e["column"]) for e in report["errors"]]
    assert lines == [(7, "age"), (12, None), (32, None), (37, "name")]
    assert "duplicate key" in report["errors"][1]["reason"].lower()
    assert report["errors"][1]["key"] == {"email": "taken@x"}
    assert run_sql(schema, "SELECT COUNT(*) FROM users") == [(37,)]
    assert run_sql(schema, "SELECT name FROM users WHERE email = 'u19@x'") == [("multi\nline",)]


async def test_small_batches_isolate_the_same_rows(schema, settings):
    async with running(settings(import_batch_rows=3)) as client:
        rows = [["name", "email"]] + [[f"u{i}", "dup" if i in (2, 5, 6) else f"u{i}"] for i in range(10)]
        report = await imported(client, "users.csv", csv_bytes(rows))
        assert report["rows_inserted"] == 8 and [e["line"] for e in report["errors"]] == [7, 8]


async def test_atomic_import_leaves_the_table_unchanged(client, schema):
    run_sql(schema, "INSERT INTO users (name) VALUES ('before')")
    rows = [["name", "age"], ["a", "1"], ["b", "2"], ["c", "oops"], ["d", "4"]]
    response = await upload(client, "users.csv", csv_bytes(rows), atomic="true")
    body = assert_error(response, 422, "import_rolled_back")
    assert body["details"]["errors"][0]["line"] == 4
    assert body["details"]["rows_inserted"] == 0
    assert run_sql(schema, "SELECT name FROM users") == [("before",)]
    # A database-side failure (duplicate key) rolls back too.
    rows = [["name", "email"], ["a", "e1"], ["b", "e1"]]
    assert_error(await upload(client, "users.csv", csv_bytes(rows), atomic="true"), 422, "import_rolled_back")
    assert run_sql(schema, "SELECT name FROM users") == [("before",)]
    report = await imported(client, "users.csv", csv_bytes([["name"], ["x"], ["y"]]), atomic="true")
    assert report["rows_inserted"] == 2
    assert run_sql(schema, "SELECT COUNT(*) FROM users") == [(3,)]


async def test_ignore_and_upsert_modes(client, schema):
    run_sql(schema, "INSERT INTO users (id, name, age) VALUES (1, 'one', 1), (2, 'two', 2)")
    data = csv_bytes([["id", "name", "age"], ["1", "uno", "10"], ["2", "two", "2"], ["3", "three", "3"]])
    report = await imported(client, "users.csv", data, mode="ignore")
    assert (report["rows_inserted"], report["rows_skipped"], report["rows_failed"]) == (1, 2, 0)
    assert run_sql(schema, "SELECT name FROM users WHERE id = 1") == [("one",)]
    data = csv_bytes([["id", "name", "age"], ["1", "uno", "10"], ["3", "three", "3"], ["4", "four", "4"]])
    report = await imported(client, "users.csv", data, mode="upsert")
    assert (report["rows_inserted"], report["rows_updated"]) == (2, 1)  # row 3 unchanged counts as inserted
    assert run_sql(schema, "SELECT name, age FROM users WHERE id = 1") == [("uno", 10)]
    # ignore skips duplicates only: a foreign key problem is still a failed row.
    data = csv_bytes([["user_id", "total"], ["1", "5"], ["999", "5"]])
    report = await imported(client, "orders.csv", data, mode="ignore")
    assert (report["rows_inserted"], report["rows_failed"]) == (1, 1)
    assert report["errors"][0]["line"] == 3


@pytest.mark.parametrize(
    "header,problem",
    [
        (["name", "nope"], {"unknown": ["nope"], "duplicate": [], "missing": []}),
        (["name", "name"], {"unknown": [], "duplicate": ["name"], "missing": []}),
        (["email"], {"unknown": [], "duplicate": [], "missing": ["name"]}),
    ],
)
async def test_header_errors_write_nothing(client, schema, header, problem):
    data = csv_bytes([header, ["a"] * len(header)])
    body = assert_error(await upload(client, "users.csv", data), 400, "invalid_header")
    assert body["details"] == problem
    assert run_sql(schema, "SELECT COUNT(*) FROM users") == [(0,)]


async def test_quoted_newlines_bom_and_crlf(client, schema):
    rows = [["name", "email"], ['say "hi",\nthen\r\nbye', "a@x"], ["ünï ✓", "b@x"]]
    report = await imported(client, "users.csv", csv_bytes(rows, bom=True))
    assert report["rows_inserted"] == 2
    assert run_sql(schema, "SELECT name FROM users ORDER BY id") == [('say "hi",\nthen\r\nbye',), ("ünï ✓",)]


async def test_empty_and_header_only_files(client, schema):
    assert_error(await upload(client, "users.csv", b""), 400, "invalid_csv")
    report = await imported(client, "users.csv", b"name,email\r\n")
    assert report["rows_read"] == 0 and report["rows_inserted"] == 0


async def test_unknown_table_and_non_csv_uploads(client, schema):
    assert_error(await upload(client, "nope.csv", b"a\n1\n"), 404, "table_not_found")
    assert_error(await upload(client, "secret_stuff.csv", b"id\n1\n"), 404, "table_not_found")
    assert_error(await upload(client, "users.csv", b"name\n\x89PNG\r\n\x1a\n\x00\x00"), 415, "unsupported_media_type")
    assert_error(await upload(client, "users.csv", "name\ncafé\n".encode("latin-1")), 415, "unsupported_media_type")
    response = await client.post("/api/batch/import", content=b"name\nx\n", headers={"content-type": "text/csv"})
    assert_error(response, 415, "unsupported_media_type")
    response = await client.post("/api/batch/import", files={"other": ("users.csv", b"name\nx\n")})
    assert_error(response, 400, "invalid_body")
    assert_error(await upload(client, "users.csv", b"name\nx\n", mode="merge"), 400, "invalid_body")
    assert run_sql(schema, "SELECT COUNT(*) FROM users") == [(0,)]


async def test_upload_limit(schema, settings):
    async with running(settings(max_upload_bytes=1000)) as client:
        data = csv_bytes([["name"]] + [["x" * 20] for _ in range(100)])
        assert_error(await upload(client, "users.csv", data), 413, "payload_too_large")
    assert run_sql(schema, "SELECT COUNT(*) FROM users") == [(0,)]


async def test_export_streams_csv_with_filters_and_null_marker(client, schema):
    run_sql(schema, "INSERT INTO users (name, email, age) VALUES ('a', '', 1), ('b, \"B\"', NULL, 2), ('c', 'c@x', 3)")
    response = await client.get("/api/batch/users/export", params={"age": "gte.2", "fields": "name,email,age", "order": "age.desc"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"].startswith('attachment; filename="users.csv"')
    assert response.content == b'name,email,age\r\nc,c@x,3\r\n"b, ""B""",,2\r\n'
    mysql = await client.get("/api/batch/users/export", params={"age": "lte.2", "fields": "name,email", "null": "\\N"})
    assert mysql.content == b'name,email\r\na,\r\n"b, ""B""",\\N\r\n'  # MySQL's convention: '' is an empty cell
    standard = await client.get("/api/batch/users/export", params={"age": "lte.2", "fields": "name,email"})
    assert standard.content == b'name,email\r\na,""\r\n"b, ""B""",\r\n'
    for params in ({"null": "a,b"}, {"null": '"'}, {"null": "x", "format": "jsonl"}):
        assert "query.null" in assert_error(await client.get("/api/batch/users/export", params=params), 400, "invalid_body")["message"]
    everything = (await client.get("/api/batch/users/export")).text
    assert everything.count("\r\n") == 4  # header + 3 rows: no default limit
    assert_error(await client.get("/api/batch/nope/export"), 404, "table_not_found")
    assert_error(await client.get("/api/batch/users/export?nope=1"), 400, "unknown_column")


async def test_export_matches_pythons_csv_writer(client, schema):
    names = ["plain", "", "comma,", 'quote"', "new\nline", "cr\rx", " spaced ", "ünï"]
    for i, name in enumerate(names):
        run_sql(schema, "INSERT INTO users (id, name, meta) VALUES (%s, %s, %s)", (i + 1, name, '{"k": "a,b"}'))
    body = (await client.get("/api/batch/users/export", params={"fields": "id,name,meta"})).content
    expected = io.StringIO()
    writer = csv.writer(expected, lineterminator="\r\n")
    writer.writerow(["id", "name", "meta"])
    for i, name in enumerate(names):
        writer.writerow([i + 1, name, '{"k": "a,b"}'])
    assert body.decode() == expected.getvalue().replace("\r\n2,,", '\r\n2,"",')  # the empty string is quoted
    marked = (await client.get("/api/batch/users/export", params={"fields": "id,name,meta", "null": "\\N"})).content
    assert marked.decode() == expected.getvalue()  # with a marker, byte for byte what Python writes


async def test_round_trip_every_column_type(schema, settings):
    rows = [
        (1, -128, 65535, 2**63 - 1, 1.5, "-12345.125", "ten chars!", "long\ntext, \"quoted\"", b"\x00\x01\xfe,\n",
         "2024-02-29 23:59:59.123456", "1999-12-31", "838:59:59", 2155, "green", "a,c", '{"k": [1, "x", null]}', 1, 9),
        (2, None, None, None, None, None, "", "", b"", None, None, None, None, None, "", None, 0, 0),
        (3, 0, 0, -(2**63), -0.25, "0.000", None, None, None, "2000-01-01 00:00:00", None, "-01:02:03.5", None, "red", None, "[]", None, None),
    ]
    run_sql(schema, "INSERT INTO types (id,i,u,b,f,d,s,t,bin,dt,da,tm,y,e,st,j,flag,bits) VALUES " + ",".join(["(" + ",".join(["%s"] * 18) + ")"] * 3), [v for r in rows for v in r])
    run_sql(schema, "CREATE TABLE types_copy LIKE types")
    async with running(settings()) as client:
        exported = (await client.get("/api/batch/types/export")).content
        report = await imported(client, "types_copy.csv", exported)
        assert report["rows_inserted"] == 3 and report["errors"] == []
        columns = "id,i,u,b,f,d,s,t,bin,dt,da,tm,y,e,st,j,flag,bits,gen"
        original = run_sql(schema, f"SELECT {columns} FROM types ORDER BY id")
        assert run_sql(schema, f"SELECT {columns} FROM types_copy ORDER BY id") == original
        # And the copy exports to the same bytes.
        assert (await client.get("/api/batch/types_copy/export")).content == exported


async def test_the_server_cannot_pull_a_file_through_load_data(client, schema, tmp_path):
    """LOAD DATA LOCAL names a file; the gateway serves only its own in-memory batches."""
    from app.core.errors import GatewayError

    secret = tmp_path / "secret.csv"
    secret.write_text("stolen\n")
    db = client.app.state.db

    async def work(session):
        await session.execute(
            "LOAD DATA LOCAL INFILE %s INTO TABLE users FIELDS TERMINATED BY ',' (name)", (str(secret),)
        )

    with pytest.raises(GatewayError):
        await db.transaction(work)
    assert run_sql(schema, "SELECT COUNT(*) FROM users") == [(0,)]


async def test_the_insert_path_gives_the_same_results(schema, settings):
    """With LOAD DATA off (as upserts and atomic imports always are), the same rows go in and the
    same bad rows are reported."""
    rows = [["name", "email", "age"]] + [[f"u{i}", f"u{i}@x", str(i)] for i in range(20)]
    rows[3][2] = "three"
    rows[8][1] = "u1@x"
    for load_data in (True, False):
        run_sql(schema, "DELETE FROM users")
        async with running(settings(import_load_data=load_data)) as client:
            report = await imported(client, "users.csv", csv_bytes(rows))
        assert (report["rows_inserted"], report["rows_failed"]) == (18, 2), load_data
        assert [e["line"] for e in report["errors"]] == [4, 9], load_data
        assert run_sql(schema, "SELECT COUNT(*) FROM users") == [(18,)]


async def test_large_file_through_every_write_path(schema, settings):
    """Many blocks: the batches go to the server as uploaded text (the first too: its text is cut
    after the header); a batch the server warns about (an out-of-range age, in canonical form) is
    rolled back and converted, which isolates the bad row. The table must hold exactly the file."""
    expected = []
    rows = [["name", "email", "age"]]
    for i in range(20000):
        name = f'n{i}, "quoted"\r\nline two' if i % 97 == 0 else f"n{i}"
        email = "" if i == 5 else ("\\N" if i % 7 == 0 else f"e{i}@x")  # email is UNIQUE: one empty string
        age = "" if i % 11 == 0 else str(i)
        rows.append([name, email, age])
        expected.append((name, None if email in ("\\N", "") else email, None if age == "" else i))
    rows[12001][2] = "99999999999"  # canonical digits, out of range for INT
    del expected[12000]
    bad_line = 2 + 12000 + sum(1 for i in range(12000) if i % 97 == 0)  # two-line names push it down
    async with running(settings(import_batch_rows=2000)) as client:
        report = await imported(client, "users.csv", csv_bytes(rows))
        paths = client.app.state.imports.batches_by_path
    assert report["rows_inserted"] == 19999 and [(e["line"], e["column"]) for e in report["errors"]] == [(bad_line, "age")]
    assert paths["text"] >= 2 and paths["rows"] == 1, paths  # only the batch the server warned about
    # Two writers commit batches in any order, so ids do not follow the file: compare by name.
    assert sorted(run_sql(schema, "SELECT name, email, age FROM users")) == sorted(expected)


async def test_mixed_line_ends_never_merge_records(schema, settings):
    """A CRLF file with some records ending in a bare LF: sent as text with one terminator, such a
    record would merge with the next one (with one column, even the field count would not show it).
    The server's warnings or the row count check catch it, and those batches go the exact way."""
    run_sql(schema, "CREATE TABLE single (v VARCHAR(20))")
    lines = ["v"] + [f"value {i}" for i in range(12000)]
    text = "".join(line + ("\n" if i % 1000 == 999 else "\r\n") for i, line in enumerate(lines))
    async with running(settings(import_batch_rows=2000)) as client:
        report = await imported(client, "single.csv", text.encode())
    assert report["rows_inserted"] == 12000 and report["rows_failed"] == 0
    assert sorted(v for (v,) in run_sql(schema, "SELECT v FROM single")) == sorted(lines[1:])


async def test_a_successful_atomic_import_reports_its_committed_lines(client):
    report = await imported(client, "users.csv", csv_bytes([["name"], ["x"], ["y"], ["z"]]), atomic="true")
    assert report["rows_inserted"] == 3 and report["committed_lines"] == [[2, 4]]


async def test_a_quote_that_never_ends_is_400_invalid_csv_and_the_report_says_what_went_in(client, schema):
    data = b"name,age\nann,1\nbob,2\n\"cy,3\ndee,4\neve,5\n"
    response = await upload(client, "users.csv", data)
    body = assert_error(response, 400, "invalid_csv")
    assert "line 4" in body["message"]
    report = body["details"]["report"]
    committed = sum(end - start + 1 for start, end in report["committed_lines"])
    assert committed == report["rows_inserted"] == len(run_sql(schema, "SELECT * FROM users"))
    assert report["rows_read"] == report["rows_inserted"] + report["rows_not_applied"]


async def test_a_latin1_table_exports_and_imports(client, schema):
    """Its text columns mixed with the export's utf8mb4 literals were an illegal mix of collations."""
    run_sql(schema, "CREATE TABLE latin (id INT PRIMARY KEY, name VARCHAR(20), note TEXT) CHARACTER SET latin1")
    report = await imported(client, "latin.csv", "id,name,note\n1,Caf\u00e9,\"a,b\"\n2,,\\N\n".encode())
    assert report["rows_inserted"] == 2
    response = await client.get("/api/batch/latin/export")
    assert response.status_code == 200, response.text
    assert response.text == 'id,name,note\r\n1,Caf\u00e9,"a,b"\r\n2,,\r\n'
