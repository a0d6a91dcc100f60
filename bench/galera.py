"""Galera benchmark (not a test): the gateway on a 3-node cluster against the same gateway on one
plain server, in one run.

The plain server is DATABASE_URL (make bench-galera gives the project's); the cluster is started on
loopback by scripts/galera.py (free ports, a temporary directory) and stopped afterwards. For each,
on a table of 10,000 rows: POST of one row, a 100-row page and GET by key under wrk (as bench/crud.py,
one uvicorn worker), then a CSV import of BENCH_GALERA_ROWS (200,000) rows of bench/csv.py's table
through POST /api/batch/import. Prints req/s (p50, p99), rows/s and the Galera/plain ratio.

    make bench-galera      # or: DATABASE_URL=... .venv/bin/python bench/galera.py
"""

from __future__ import annotations

import sys
from pathlib import Path

# As bench/crud.py: this folder off sys.path first (bench/csv.py would shadow the csv module).
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import os  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from contextlib import contextmanager  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("BENCH_ROWS", os.environ.get("BENCH_GALERA_ROWS", "200000"))

from app.core.config import DatabaseAddress  # noqa: E402
from bench import csv as csv_bench  # noqa: E402
from bench.crud import GET_LUA, POST_LUA, ROWS, database_url, free_port, run_case, start, throwaway_database  # noqa: E402
from scripts.galera import Cluster  # noqa: E402


@contextmanager
def galera_database() -> Iterator[tuple[DatabaseAddress, str, str]]:
    directory = Path(tempfile.mkdtemp(prefix="gateway-galera-bench-"))
    cluster = Cluster(directory)
    try:
        print("starting a 3-node Galera cluster ...", flush=True)
        cluster.start()
        cluster.nodes[0].sql("CREATE DATABASE gwbench")
        url = cluster.url("gwbench")
        yield DatabaseAddress.parse(url), "gwbench", url
    finally:
        cluster.stop()
        shutil.rmtree(directory, ignore_errors=True)


def measure(address: DatabaseAddress, database: str, url: str, data: Path, galera: bool) -> dict[str, dict]:
    import pymysql

    db = pymysql.connect(**address.connect_kwargs(), database=database, autocommit=True)
    cur = db.cursor()
    if galera:
        cur.execute("SET SESSION wsrep_sync_wait = 1")  # count what other nodes committed, too
    cur.execute("CREATE TABLE items (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(50) NOT NULL,"
                " qty INT NOT NULL, price DECIMAL(10,2) NOT NULL, created DATETIME DEFAULT CURRENT_TIMESTAMP)")
    # Explicit ids: Galera spaces AUTO_INCREMENT values by the cluster size, and GET picks 1..ROWS.
    cur.executemany("INSERT INTO items (id, name, qty, price) VALUES (%s, %s, %s, %s)",
                    [(i, f"item {i}", i % 100, f"{i % 1000}.50") for i in range(1, ROWS + 1)])
    cur.execute(csv_bench.TABLE.format(name="imported"))
    port = free_port()
    env = os.environ | {"DATABASE_URL": url, "GATEWAY_POOL_MAX": "20", "PYTHONPATH": str(ROOT)}
    proc = start("app.main:app", port, env)
    base = f"http://127.0.0.1:{port}"
    try:
        figures = {
            "POST one row": run_case(f"{base}/api/items", POST_LUA),
            "list 100 rows": run_case(f"{base}/api/items/query?limit=100", ""),
            "GET by key": run_case(f"{base}/api/items/%d", GET_LUA),
        }
        report = data.with_suffix(".json")
        started = time.perf_counter()
        subprocess.run(["curl", "-sf", "-o", str(report), "-F", f"file=@{data}", f"{base}/api/batch/import?table=imported"],
                       check=True)
        seconds = time.perf_counter() - started
        assert csv_bench.count(db, "imported") == csv_bench.ROWS, report.read_text()[:1000]
        figures["CSV import"] = {"rps": csv_bench.ROWS / seconds, "p50": f"{seconds:.1f}s", "p99": "", "errors": 0}
        return figures
    finally:
        proc.terminate()
        proc.wait(10)
        db.close()


def main() -> None:
    for tool in ("wrk", "curl"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is needed (apt-get install {tool})")
    server = database_url("bench-galera")
    workdir = Path(tempfile.mkdtemp(prefix="gwbench"))
    try:
        data = workdir / "imported.csv"
        csv_bench.generate(data)
        with throwaway_database(server) as plain:
            plain_figures = measure(*plain, data, galera=False)
        with galera_database() as cluster:
            galera_figures = measure(*cluster, data, galera=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"one gateway worker; CRUD under wrk; import of {csv_bench.ROWS:,} rows (req/s, or rows/s for the import)")
    print(f"{'case':<15} {'plain':>9} {'p50':>8} {'p99':>8} | {'galera':>9} {'p50':>8} {'p99':>8} | galera/plain")
    for case, one in plain_figures.items():
        three = galera_figures[case]
        errors = f"  errors plain={one['errors']} galera={three['errors']}" if one["errors"] or three["errors"] else ""
        print(f"{case:<15} {one['rps']:>9.0f} {one['p50']:>8} {one['p99']:>8} | {three['rps']:>9.0f} {three['p50']:>8}"
              f" {three['p99']:>8} | {three['rps'] / one['rps']:.2f}x{errors}")


if __name__ == "__main__":
    main()
