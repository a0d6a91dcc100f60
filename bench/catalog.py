"""Big-catalog benchmark (not a test): a database of BENCH_TABLES tables (3,000) and about
BENCH_COLUMNS columns (50,000), through one gateway process.

Prints, in one run:
  - the old catalog query (INFORMATION_SCHEMA.COLUMNS joined with TABLES) beside the gateway's whole
    load, its listing of change stamps, and its read of one table, all timed on this server;
  - the gateway's start: process start to /health/ready answering 200 (the catalog loaded);
  - the first request (a list page of one table), GET /api/tables, GET /openapi.json (first and again);
  - after an ALTER of one table: the first write of its new column (a look at that table alone).

    make bench-catalog          # or: DATABASE_URL=... .venv/bin/python bench/catalog.py
    BENCH_TABLES=1000 BENCH_COLUMNS=15000 make bench-catalog
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from app.db.catalog import COLUMNS_SQL, FOREIGN_KEYS_SQL, JSON_CHECKS_SQL, KEYS_SQL, LISTING_SQL  # noqa: E402
from bench.crud import connect, database_url, free_port, throwaway_database  # noqa: E402

TABLES = int(os.environ.get("BENCH_TABLES", "3000"))
COLUMNS = int(os.environ.get("BENCH_COLUMNS", "50000"))
OLD_COLUMNS_SQL = (  # the catalog's query before issue 32: one join, every table opened once per column
    "SELECT c.TABLE_NAME, c.COLUMN_NAME, c.DATA_TYPE, c.COLUMN_TYPE, c.IS_NULLABLE, c.COLUMN_DEFAULT,"
    " c.EXTRA, c.CHARACTER_MAXIMUM_LENGTH, c.NUMERIC_PRECISION, c.NUMERIC_SCALE, c.DATETIME_PRECISION"
    " FROM INFORMATION_SCHEMA.COLUMNS c JOIN INFORMATION_SCHEMA.TABLES t"
    " ON t.TABLE_SCHEMA = c.TABLE_SCHEMA AND t.TABLE_NAME = c.TABLE_NAME"
    " WHERE c.TABLE_SCHEMA = %s AND t.TABLE_TYPE IN ('BASE TABLE', 'SYSTEM VERSIONED')"
    " ORDER BY c.TABLE_NAME, c.ORDINAL_POSITION"
)
KINDS = ["INT", "BIGINT", "VARCHAR(40)", "DECIMAL(10,2)", "DATETIME", "TEXT", "DATE", "TINYINT(1)", "DOUBLE"]


def timed(db, sql: str, params: tuple) -> float:
    started = time.perf_counter()
    with db.cursor() as cursor:
        cursor.execute(sql, params)
        cursor.fetchall()
    return time.perf_counter() - started


def get(url: str) -> tuple[float, bytes]:
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=120) as answer:
        body = answer.read()
    return time.perf_counter() - started, body


def main() -> None:
    with throwaway_database(database_url("bench-catalog")) as (address, name, url):
        db = connect(address, name)
        per_table = max(COLUMNS // TABLES - 1, 1)
        print(f"creating {TABLES:,} tables of {per_table + 1} columns ...", flush=True)
        rng = random.Random(7)
        with db.cursor() as cursor:
            for i in range(TABLES):
                columns = ", ".join(f"c{j} {rng.choice(KINDS)}" for j in range(per_table - 1))
                # Each table but the first references one before it (a tree: relations to embed).
                parent = f", FOREIGN KEY (parent_id) REFERENCES t{(i - 1) // 2:05d}(id)" if i else ""
                cursor.execute(f"CREATE TABLE t{i:05d} (id INT AUTO_INCREMENT PRIMARY KEY, parent_id INT, {columns}{parent})")
        with db.cursor() as cursor:
            cursor.execute("SELECT COUNT(*) FROM INFORMATION_SCHEMA.COLUMNS WHERE TABLE_SCHEMA = %s", (name,))
            columns = cursor.fetchone()[0]
        print(f"{TABLES:,} tables, {columns:,} columns\n")

        print("INFORMATION_SCHEMA on this server:")
        old = timed(db, OLD_COLUMNS_SQL, (name,))
        print(f"  before: COLUMNS joined with TABLES          {old:8.2f} s")
        loads = (LISTING_SQL, COLUMNS_SQL, KEYS_SQL, JSON_CHECKS_SQL, FOREIGN_KEYS_SQL)
        whole = sum(timed(db, sql.format(names=""), (name,)) for sql in loads)
        print(f"  now: a whole load (5 queries, no join)      {whole:8.2f} s   ({old / whole:,.0f}x faster)")
        keys = timed(db, FOREIGN_KEYS_SQL.format(names=""), (name,))
        print(f"  of which the foreign keys                   {keys:8.2f} s   ({TABLES - 1:,} of them)")
        print(f"  now: the listing of change stamps           {timed(db, LISTING_SQL, (name,)):8.2f} s   (a refresh, every GATEWAY_CATALOG_TTL_S)")
        one = " AND TABLE_NAME IN (%s)"
        print(f"  now: one table's columns                    {timed(db, COLUMNS_SQL.format(names=one), (name, 't00007')):8.3f} s   (a miss, an ALTER)")

        port = free_port()
        env = os.environ | {"DATABASE_URL": url, "PYTHONPATH": str(ROOT), "PORT": str(port), "GATEWAY_ACCESS_LOG": "false"}
        started = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "app"], cwd=ROOT, env=env, stderr=subprocess.DEVNULL)
        try:
            base = f"http://127.0.0.1:{port}"
            while True:
                try:
                    if urllib.request.urlopen(f"{base}/health/ready", timeout=30).status == 200:
                        break
                except OSError:
                    if proc.poll() is not None:
                        raise SystemExit("the gateway did not start") from None
                    time.sleep(0.05)
            ready = time.perf_counter() - started
            print(f"\nthe gateway ({TABLES:,} tables):")
            print(f"  start to ready (catalog loaded)             {ready:8.2f} s   (target: under 5 s)")
            first, _ = get(f"{base}/api/t01234/query?limit=10" if TABLES > 1234 else f"{base}/api/t00001/query")
            print(f"  first request (a list page)                 {first:8.3f} s")
            embedded, _ = get(f"{base}/api/t00003/query?limit=10&fields=id,t00001(id),t00007(id,t00015(id))")
            print(f"  a page with related rows embedded           {embedded:8.3f} s   (one level up, two down)")
            listed, body = get(f"{base}/api/tables")
            print(f"  GET /api/tables                             {listed:8.3f} s   ({len(json.loads(body)['data']):,} tables; target: under 1 s)")
            for label in ("first", "again"):
                spent, body = get(f"{base}/openapi.json")
                print(f"  GET /openapi.json, {label:5}                    {spent:8.3f} s   ({len(body) / 1e6:.1f} MB; target: under 1 s)")
            with db.cursor() as cursor:
                cursor.execute("ALTER TABLE t00007 ADD COLUMN added INT")
            request = urllib.request.Request(f"{base}/api/t00007", data=b'{"input": {"added": 1}}',
                                             headers={"content-type": "application/json"}, method="POST")
            started = time.perf_counter()
            with urllib.request.urlopen(request, timeout=30) as answer:
                assert answer.status == 201
            print(f"  after an ALTER: a write of the new column   {time.perf_counter() - started:8.3f} s   (a look at that table alone)")
        finally:
            proc.terminate()
            proc.wait()


if __name__ == "__main__":
    main()
