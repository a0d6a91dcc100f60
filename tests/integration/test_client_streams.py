"""gateway-client --mode ws and --mode kafka: every good row in the table once, every bad one in
the failed file (ws) or the ingest's dead letters (kafka), across a second run (the database cut:
test_client.py, for http and ws)."""

import json

from app.streams import positions
from tests.brokers import kafka  # noqa: F401 (fixture)
from tests.conftest import eventually, run_sql, serving
from tests.integration.test_client import client, in_table, people, refused
from tests.integration.test_ingest import Ingest, started  # noqa: F401 (fixture)


async def test_ws_mode_with_refused_rows_and_a_second_run(schema, settings, tmp_path):
    data = tmp_path / "users.csv"
    good = people(data, 3000, bad_every=97)
    async with serving(settings()) as (_, url):
        args = ("import", str(data), "--url", url, "--mode", "ws", "--batch-rows", "200", "--concurrency", "4", "--json")
        code, out, err = await client(*args)
        assert code == 0, err
        report = json.loads(out)
        assert report["complete"] and report["rows_read"] == 3000 and report["batches"] == 15
        assert report["rows_inserted"] == len(good) and report["rows_failed"] == 3000 - len(good)
        assert in_table(schema) == sorted(good)
        failed = refused(tmp_path / "users.failed.csv")
        assert sorted(int(r["_line"]) for r in failed) == [i + 1 for i in range(97, 3001, 97)]
        assert all(r["age"] == "old" and r["_reason"].startswith("age:") for r in failed)
        # Again: every message id was applied already; the gateway answers "duplicate", nothing doubles.
        code, out, err = await client(*args)
        assert code == 0, err
        assert json.loads(out)["rows_inserted"] == len(good)
        assert in_table(schema) == sorted(good)


async def test_kafka_mode_through_the_ingest(schema, test_db, tmp_path, kafka, started):  # noqa: F811
    """Published to a topic, applied by `python -m app ingest`: a batch is one message, applied
    whole or dead-lettered whole (with its reason and payload); the same file published again goes
    in once (each batch's id is recorded with its rows, or with its dead letter)."""
    for statement in positions.CREATE:
        run_sql(schema, statement)
    data = tmp_path / "users.csv"
    people(data, 3000, bad_every=1000)  # rows 1000, 2000 and 3000 are bad: batches 3, 7 and 11 of 250
    applied = [i for i in range(1, 3001) if (i - 1) // 250 not in (3, 7, 11)]
    args = ("import", str(data), "--mode", "kafka", "--kafka-bootstrap", kafka, "--topic", "people", "--table", "users",
            "--batch-rows", "250", "--json")
    code, out, err = await client(*args)
    assert code == 0, err
    report = json.loads(out)
    assert report["complete"] and report["rows_published"] == 3000 and report["batches"] == 12
    source = "kafka:people:people"

    def offsets() -> int:
        return int(run_sql(schema, "SELECT COALESCE(SUM(GREATEST(next_offset, 0)), 0) FROM _gateway_stream_offsets WHERE source = %s", (source,))[0][0])

    def dead() -> list[str]:
        return [r for (r,) in run_sql(schema, "SELECT reason FROM _gateway_dead_letters ORDER BY id")]

    ingest = await Ingest(started, test_db, f"kafka://{kafka}/people?table=users&group=people", tmp_path / "i.log").start()
    await eventually(lambda: offsets() == 12, 60, 0.2, "the ingest to apply the 12 messages")
    assert in_table(schema) == applied
    assert len(dead()) == 3 and all("row 249: column 'age'" in reason or "age" in reason for reason in dead())
    # The same file again: 12 more messages, every id known: nothing applied or dead-lettered twice.
    code, out, err = await client(*args)
    assert code == 0, err
    await eventually(lambda: offsets() == 24, 60, 0.2, "the ingest to read the 12 again")
    await ingest.stop()
    assert in_table(schema) == applied and len(dead()) == 3
