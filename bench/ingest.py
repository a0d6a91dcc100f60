"""Stream benchmark (not a test): rows through Kafka and the WebSocket against LOAD DATA, one run.

Generates ROWS rows of bench/csv.py's 10-column table and measures, each into a fresh table:
  (a) LOAD DATA LOCAL INFILE of them as CSV by the mariadb client: the baseline
  (b) ROWS JSON messages of one row each, published to a Kafka topic (Tansu, 3 partitions) before
      the clock starts, consumed by `python -m app ingest`: from its first committed group to its last
  (b2) the same rows as JSON arrays of KAFKA_BATCH (100) rows a message, what a bulk producer sends
  (c) the same topic read by a consumer that INSERTs one row per message, autocommit (what the
      seeds' servers do), over its first NAIVE_ROWS messages
  (d) the rows over the WebSocket (/api/{table}/ws) in messages of 1,000 rows with ids, 16 in flight
and prints rows/s for each and the ratios against LOAD DATA (target >= 0.5x) and against (c).

    make bench-ingest     # or: DATABASE_URL=... .venv/bin/python bench/ingest.py
    BENCH_ROWS=200000 BENCH_NAIVE_ROWS=20000 ...
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import asyncio  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402

import aiomysql  # noqa: E402
import websockets  # noqa: E402
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer  # noqa: E402
from aiokafka.admin import AIOKafkaAdminClient, NewTopic  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from app.core.config import DatabaseAddress  # noqa: E402
from app.streams import positions  # noqa: E402
from bench.crud import connect, database_url, free_port, start, throwaway_database  # noqa: E402
from bench.csv import COLUMNS, ROWS, TABLE, PeakRss, as_objects, client_args, count, generate  # noqa: E402
from tests.brokers import TANSU, wait_for_port  # noqa: E402

NAIVE_ROWS = min(ROWS, int(os.environ.get("BENCH_NAIVE_ROWS", "50000")))
KAFKA_BATCH = int(os.environ.get("BENCH_KAFKA_BATCH", "100"))
WS_BATCH, WS_IN_FLIGHT = 1000, 16


def wait_offsets(db, source: str, total: int, timeout: float = 900) -> float:
    """Seconds from the stream's first committed group to its last, read from the offsets the
    ingest records (a primary-key lookup every 50 ms: a COUNT(*) of the table that often would
    take a core from the database it measures)."""
    deadline = time.monotonic() + timeout
    first = None
    while time.monotonic() < deadline:
        with db.cursor() as cur:
            cur.execute("SELECT COALESCE(SUM(GREATEST(next_offset, 0)), 0) FROM _gateway_stream_offsets WHERE source = %s", (source,))
            n = int(cur.fetchone()[0])
        now = time.perf_counter()
        if n and first is None:
            first = (now, n)
        if n >= total:
            return (now - first[0]) * total / max(1, total - first[1])  # the rows before the first look, at the same pace
        time.sleep(0.05)
    raise SystemExit(f"{source}: {total} messages not applied after {timeout} s")


async def produce(address: str, topic: str, messages: list[bytes]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=address)
    await admin.start()
    await admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
    await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=address, linger_ms=10, max_batch_size=1 << 20)
    await producer.start()
    for i, m in enumerate(messages):
        await producer.send(topic, m, partition=i % 3)
    await producer.flush()
    await producer.stop()


async def naive(address: str, topic: str, db_kwargs: dict, rows: int) -> float:
    """One INSERT per message, autocommit: rows/s."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=address, group_id=f"naive{uuid.uuid4().hex[:6]}", auto_offset_reset="earliest")
    await consumer.start()
    conn = await aiomysql.connect(**db_kwargs, autocommit=True)
    names = COLUMNS.split(",")
    statement = f"INSERT INTO items_naive ({COLUMNS}) VALUES ({', '.join(['%s'] * len(names))})"
    done, started = 0, time.perf_counter()
    async with conn.cursor() as cursor:
        while done < rows:
            for records in (await consumer.getmany(timeout_ms=500, max_records=500)).values():
                for record in records:
                    if done >= rows:
                        break
                    item = json.loads(record.value)
                    await cursor.execute(statement, [item[n] for n in names])
                    done += 1
    seconds = time.perf_counter() - started
    conn.close()
    await consumer.stop()
    return rows / seconds


async def websocket(host: str, objects: list[dict]) -> float:
    """Every row over one WebSocket in messages of WS_BATCH rows, WS_IN_FLIGHT unanswered: seconds."""
    messages = [json.dumps({"id": f"b{i}", "rows": objects[i:i + WS_BATCH]}) for i in range(0, len(objects), WS_BATCH)]
    started = time.perf_counter()
    # No per-message compression: on a LAN it costs both ends more CPU than it saves time.
    async with websockets.connect(f"ws://{host}/api/items_ws/ws", max_size=None, compression=None) as ws:
        window = asyncio.Semaphore(WS_IN_FLIGHT)

        async def send() -> None:
            for m in messages:
                await window.acquire()
                await ws.send(m)

        sender = asyncio.create_task(send())
        for _ in messages:
            answer = json.loads(await ws.recv())
            assert answer["status"] == "applied", answer
            window.release()
        await sender
    return time.perf_counter() - started


def main() -> None:
    server = database_url("bench-ingest")
    with throwaway_database(server) as (address, name, url):
        run(address, name, url)


def run(address: DatabaseAddress, name: str, url: str) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="gwingest"))
    procs: list[subprocess.Popen] = []
    try:
        data = workdir / "items.csv"
        print(f"generating {ROWS} rows ...", flush=True)
        generate(data)
        objects = list(as_objects(data))
        payloads = [json.dumps(o).encode() for o in objects]
        db = connect(address, name)
        for table in ("items_load", "items_kafka", "items_kafka_batched", "items_naive", "items_ws"):
            db.cursor().execute(TABLE.format(name=table))
        for statement in positions.CREATE:  # the ingest makes them too; here so the bench can look first
            db.cursor().execute(statement)
        env = os.environ | {"DATABASE_URL": url, "PYTHONPATH": str(ROOT), "GATEWAY_LOG_LEVEL": "warning"}

        started = time.perf_counter()
        subprocess.run(
            ["mariadb", "--local-infile=1", *client_args(address, name), "-e",
             f"LOAD DATA LOCAL INFILE '{data}' INTO TABLE items_load FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"'"
             f" LINES TERMINATED BY '\\r\\n' IGNORE 1 LINES ({COLUMNS})"],
            check=True,
        )
        t_load = time.perf_counter() - started
        assert count(db, "items_load") == ROWS

        kafka_port = free_port()
        listener = f"tcp://127.0.0.1:{kafka_port}"
        tansu = subprocess.Popen([str(TANSU), "broker", "--listener-url", listener, "--advertised-listener-url", listener,
                                  "--storage-engine", "memory://tansu/"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(tansu)
        wait_for_port(kafka_port, tansu, "tansu")
        kafka = f"127.0.0.1:{kafka_port}"
        print("publishing to Kafka ...", flush=True)
        asyncio.run(produce(kafka, "items", payloads))
        batched = [b"[" + b",".join(payloads[i:i + KAFKA_BATCH]) + b"]" for i in range(0, ROWS, KAFKA_BATCH)]
        asyncio.run(produce(kafka, "items_batched", batched))
        sources = f"kafka://{kafka}/items?table=items_kafka&group=bench"
        ingest_env = env | {"GATEWAY_INGEST_SOURCES": sources, "GATEWAY_INGEST_PORT": str(free_port())}
        ingest = subprocess.Popen([sys.executable, "-m", "app", "ingest"], cwd=ROOT, env=ingest_env)
        procs.append(ingest)
        t_kafka = wait_offsets(db, "kafka:bench:items", ROWS)
        assert count(db, "items_kafka") == ROWS
        rss_ingest = PeakRss(ingest.pid).peak_mb()
        ingest.terminate()
        ingest.wait(30)
        # A group of batched messages holds as many rows as one of single-row messages.
        group_rows = int(os.environ.get("GATEWAY_STREAM_GROUP_ROWS", "10000"))
        sources = f"kafka://{kafka}/items_batched?table=items_kafka_batched&group=bench&batch={max(1, group_rows // KAFKA_BATCH)}"
        ingest_env = env | {"GATEWAY_INGEST_SOURCES": sources, "GATEWAY_INGEST_PORT": str(free_port())}
        procs.append(subprocess.Popen([sys.executable, "-m", "app", "ingest"], cwd=ROOT, env=ingest_env))
        t_batched = wait_offsets(db, "kafka:bench:items_batched", len(batched))
        assert count(db, "items_kafka_batched") == ROWS

        db_kwargs = {"db": name, **address.connect_kwargs()}
        naive_rps = asyncio.run(naive(kafka, "items", db_kwargs, NAIVE_ROWS))

        port = free_port()
        gateway = start("app.main:app", port, env)
        procs.append(gateway)
        t_ws = asyncio.run(websocket(f"127.0.0.1:{port}", objects))
        assert count(db, "items_ws") == ROWS
        rss_gateway = PeakRss(gateway.pid).peak_mb()

        load_rps, kafka_rps, batched_rps, ws_rps = ROWS / t_load, ROWS / t_kafka, ROWS / t_batched, ROWS / t_ws
        print(f"{ROWS} rows of 10 columns; gateway and ingest: 1 process each, 2 cores shared with MariaDB and the broker")
        print(f"(a) LOAD DATA LOCAL INFILE (mariadb client)     {load_rps:>10,.0f} rows/s  {t_load:6.2f} s")
        print(f"(b) Kafka -> python -m app ingest, 1 row/msg    {kafka_rps:>10,.0f} rows/s  {t_kafka:6.2f} s   {kafka_rps / load_rps:.2f}x LOAD DATA, {kafka_rps / naive_rps:.1f}x (c)")
        print(f"(b2) Kafka, {KAFKA_BATCH} rows/msg                 {batched_rps:>10,.0f} rows/s  {t_batched:6.2f} s   {batched_rps / load_rps:.2f}x LOAD DATA, {batched_rps / naive_rps:.1f}x (c)")
        print(f"(c) Kafka -> one INSERT per message ({NAIVE_ROWS} msgs) {naive_rps:>10,.0f} rows/s")
        print(f"(d) WebSocket, {WS_BATCH}-row messages, {WS_IN_FLIGHT} in flight  {ws_rps:>10,.0f} rows/s  {t_ws:6.2f} s   {ws_rps / load_rps:.2f}x LOAD DATA, {ws_rps / naive_rps:.1f}x (c)")
        print(f"peak RSS: ingest {rss_ingest:.0f} MB (b), gateway {rss_gateway:.0f} MB (d)")
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(30)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
