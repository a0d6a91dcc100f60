"""Client benchmark (not a test): a file through `gateway-client import --concurrency 4` against
one plain upload of the same file to /api/batch/import, in the same run, into fresh tables:
over HTTP (the default), then `--mode ws` (the WebSocket; BENCH_WS_BATCH_ROWS, 1,000, a message).

    make bench-client      # or: DATABASE_URL=... .venv/bin/python bench/client.py
    BENCH_ROWS=200000 BENCH_CONCURRENCY=8 BENCH_BATCH_ROWS=10000 ...

Prints rows/s and the ratio client/upload for each. The gateway runs as one uvicorn worker.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from app.core.config import DatabaseAddress  # noqa: E402
from bench.crud import connect, database_url, free_port, start, throwaway_database  # noqa: E402
from bench.csv import ROWS, TABLE, count, generate  # noqa: E402

CONCURRENCY = os.environ.get("BENCH_CONCURRENCY", "4")
BATCH_ROWS = os.environ.get("BENCH_BATCH_ROWS", "20000")  # the client's default
WS_BATCH_ROWS = os.environ.get("BENCH_WS_BATCH_ROWS", "1000")  # the client's default for --mode ws


def main() -> None:
    server = database_url("bench-client")
    with throwaway_database(server) as (address, name, url):
        run(address, name, url)


def run(address: DatabaseAddress, name: str, url: str) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="gwclient"))
    proc = None
    try:
        data = workdir / "items.csv"
        print(f"generating {ROWS} rows ...", flush=True)
        generate(data)
        db = connect(address, name)
        for table in ("items", "items_client", "items_ws"):
            db.cursor().execute(TABLE.format(name=table))
        port = free_port()
        proc = start("app.main:app", port, os.environ | {"DATABASE_URL": url, "PYTHONPATH": str(ROOT)})
        base = f"http://127.0.0.1:{port}"

        started = time.perf_counter()
        subprocess.run(["curl", "-s", "-o", "/dev/null", "-F", f"file=@{data}", f"{base}/api/batch/import?table=items"], check=True)
        t_upload = time.perf_counter() - started
        assert count(db, "items") == ROWS

        def imported(table: str, *extra: str) -> tuple[float, dict]:
            """gateway-client import of the file into `table`: (seconds, its report)."""
            started = time.perf_counter()
            out = subprocess.run(
                [sys.executable, "-m", "gateway_client", "import", str(data), "--url", base, "--table", table,
                 "--concurrency", CONCURRENCY, "--json", *extra],
                capture_output=True, text=True, check=True,
            ).stdout
            seconds, report = time.perf_counter() - started, json.loads(out)
            assert report["rows_inserted"] == ROWS and count(db, table) == ROWS, report
            return seconds, report

        t_client, report = imported("items_client", "--batch-rows", BATCH_ROWS)
        t_ws, _ = imported("items_ws", "--mode", "ws", "--batch-rows", WS_BATCH_ROWS)

        size_mb = data.stat().st_size / 1e6
        print(f"{ROWS} rows, {size_mb:.0f} MB CSV, 1 uvicorn worker, 2 cores shared with MariaDB and the client")
        print(f"one upload to /api/batch/import   {ROWS / t_upload:>10,.0f} rows/s  {t_upload:6.2f} s")
        print(f"gateway-client, {CONCURRENCY} x {BATCH_ROWS}-row batches {ROWS / t_client:>10,.0f} rows/s  {t_client:6.2f} s"
              f"  ({report['batches']} batches, {report['retries']} retries)")
        print(f"gateway-client --mode ws, {CONCURRENCY} x {WS_BATCH_ROWS}-row messages {ROWS / t_ws:>10,.0f} rows/s  {t_ws:6.2f} s")
        print(f"client / upload = {t_upload / t_client:.2f}x (http), {t_upload / t_ws:.2f}x (ws)")
    finally:
        if proc is not None:
            proc.terminate()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
