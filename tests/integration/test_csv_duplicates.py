"""Re-importing duplicates (issue 9, item 4): every duplicate row reported by line and key, found by
one probe per batch instead of bisection, and no auto-increment values burnt on rows known to collide."""

import json

from tests.conftest import run_sql, running
from tests.integration.test_csv import csv_bytes, imported, upload

ROWS = 6000


def people(n, start=0):
    return [["name", "email", "age"]] + [[f"p{i}", f"p{i}@x", str(i % 90)] for i in range(start, start + n)]


def next_id(schema):
    return run_sql(schema, "SELECT AUTO_INCREMENT FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'users'")[0][0]


async def test_an_all_duplicate_reimport_reports_every_row_and_burns_no_ids(schema, settings):
    async with running(settings(import_batch_rows=1000, import_max_errors=ROWS)) as client:
        data = csv_bytes(people(ROWS))
        first = await imported(client, "users.csv", data)
        assert first["rows_inserted"] == ROWS
        before = next_id(schema)
        paths = dict(client.app.state.imports.batches_by_path)
        again = await imported(client, "users.csv", data)
        assert again["rows_inserted"] == 0 and again["rows_failed"] == again["errors_total"] == ROWS
        assert [e["line"] for e in again["errors"]] == list(range(2, ROWS + 2))
        assert again["errors"][0]["key"] == {"email": "p0@x"} and "already in the table" in again["errors"][0]["reason"]
        assert next_id(schema) - before < ROWS  # the old bisection burnt about 13 ids a row
        assert next_id(schema) == before
        # Nothing went down the INSERT path (where bisection lives).
        assert client.app.state.imports.batches_by_path["inserts"] == paths["inserts"]
        assert run_sql(schema, "SELECT COUNT(*) FROM users")[0][0] == ROWS


async def test_a_half_duplicate_file_loads_the_new_half_and_names_the_old(schema, settings):
    async with running(settings(import_batch_rows=1000, import_max_errors=ROWS)) as client:
        await imported(client, "users.csv", csv_bytes(people(ROWS // 2)))
        mixed = people(ROWS // 2) + people(ROWS // 2, start=ROWS)[1:]
        mixed = [mixed[0]] + [row for pair in zip(mixed[1 : ROWS // 2 + 1], mixed[ROWS // 2 + 1 :]) for row in pair]
        report = await imported(client, "users.csv", csv_bytes(mixed))
        assert report["rows_inserted"] == report["rows_failed"] == ROWS // 2
        assert [e["line"] for e in report["errors"]] == list(range(2, ROWS + 2, 2))  # every other line
        assert run_sql(schema, "SELECT COUNT(*) FROM users")[0][0] == ROWS
        assert client.app.state.imports.batches_by_path["inserts"] == 0


async def test_repeats_inside_the_file_and_case_insensitive_collisions_are_reported_exactly(client, schema):
    rows = people(5)
    rows.append(["again", "p1@x", "1"])  # line 7 repeats line 3's email
    rows.append(["upper", "P2@X", "1"])  # line 8: equal to line 4's under the column's collation
    report = await imported(client, "users.csv", csv_bytes(rows))
    assert report["rows_inserted"] == 5
    errors = {e["line"]: e for e in report["errors"]}
    assert set(errors) == {7, 8}
    assert "repeats line 3" in errors[7]["reason"] and errors[7]["key"] == {"email": "p1@x"}
    assert "duplicate" in errors[8]["reason"].lower()
    assert sorted(r[0] for r in run_sql(schema, "SELECT name FROM users")) == ["p0", "p1", "p2", "p3", "p4"]


async def test_composite_keys_are_probed_too(client, schema):
    run_sql(schema, "INSERT INTO pairs VALUES (1, 'a', 0), (2, 'b', 0)")
    data = csv_bytes([["a", "b", "v"], ["1", "a", "5"], ["1", "b", "5"], ["2", "b", "5"], ["3", "c", "5"]])
    report = await imported(client, "pairs.csv", data)
    assert report["rows_inserted"] == 2
    assert [(e["line"], e["key"]) for e in report["errors"]] == [(2, {"a": 1, "b": "a"}), (4, {"a": 2, "b": "b"})]


async def test_a_batch_after_an_all_duplicate_one_is_counted_then_read_back(schema, settings):
    """After an all-duplicate batch the probe counts first; a batch that is only partly taken is
    then read back key by key, so the new rows still go in and the old ones are still named."""
    def padded(n):  # long rows, so that 64 KiB blocks make batches of about 1000 rows
        return [["name", "email"]] + [[f"p{i}" + "x" * 40, f"p{i}@x"] for i in range(n)]

    # One writer: batches are probed one after another, so the second sees the first's outcome.
    async with running(settings(import_batch_rows=1000, import_max_errors=ROWS, import_writers=1)) as client:
        await imported(client, "users.csv", csv_bytes(padded(1500)))
        db = client.app.state.db
        fetch, statements = db.fetch, []

        async def recording(sql, params=(), **kwargs):
            statements.append(sql)
            return await fetch(sql, params, **kwargs)

        db.fetch = recording
        report = await imported(client, "users.csv", csv_bytes(padded(2500)))  # 1500 taken, then 1000 new
        counts = [sql for sql in statements if sql.startswith("SELECT COUNT(*)")]
        reads = [sql for sql in statements if sql.startswith("SELECT `email`")]
        assert len(counts) >= 1 and len(reads) >= 2  # counted after the all-taken batch; read back when not all were
        assert report["rows_inserted"] == 1000 and report["rows_failed"] == 1500
        assert [e["line"] for e in report["errors"]] == list(range(2, 1502))
        assert run_sql(schema, "SELECT COUNT(*) FROM users")[0][0] == 2500


async def test_a_repeat_of_a_json_arrays_first_object_is_named_by_validate_and_import(client, schema):
    """Positions of a JSON array start at 0: a repeat of index 0 is a repeat like any other."""
    rows = [{"name": "a", "email": "a@x"}, {"name": "b", "email": "b@x"}, {"name": "b2", "email": "b@x"},
            {"name": "a2", "email": "a@x"}]
    for route in ("validate", "import"):
        response = await upload(client, "users.json", json.dumps(rows).encode(), route=route)
        report = response.json()["data"]
        errors = {e["index"]: e for e in report["errors"]}
        assert set(errors) == {2, 3}, report
        assert "repeats index 1" in errors[2]["reason"] and "repeats index 0" in errors[3]["reason"]
        assert errors[3]["key"] == {"email": "a@x"}
    assert sorted(r[0] for r in run_sql(schema, "SELECT name FROM users")) == ["a", "b"]
