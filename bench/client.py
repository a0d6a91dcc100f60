"""Client benchmark (not a test): a file through `gateway-client import --concurrency 4` against
one plain upload of the same file to /api/batch/import, in the same run, into fresh tables:
over HTTP (the default), then `--mode ws` (the WebSocket; BENCH_WS_BATCH_ROWS, 1,000, a message).

    make bench-client      # or: DATABASE_URL=... .venv/bin/python bench/client.py
    BENCH_ROWS=200000 BENCH_CONCURRENCY=8 BENCH_BATCH_ROWS=10000 ...

Prints rows/s and the ratio client/upload for each, and the CPU seconds each run cost the
gateway, MariaDB (when its process is on this machine) and the sender (curl or the client): on a
machine whose cores all three share, the client's own CPU comes out of the server's. The gateway
runs as one uvicorn worker.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import json  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
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
        server_pid = mariadb_pid(db)

        def measured(command: list[str], table: str) -> tuple[float, list[float | None], str]:
            """Runs `command` (which loads the file into `table`): its seconds, the CPU seconds of the
            gateway, MariaDB and the command itself, and its output."""
            before = [cpu_seconds(proc.pid), cpu_seconds(server_pid), children_cpu()]
            started = time.perf_counter()
            out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
            seconds = time.perf_counter() - started
            after = [cpu_seconds(proc.pid), cpu_seconds(server_pid), children_cpu()]
            assert count(db, table) == ROWS, table
            return seconds, [None if b is None or a is None else a - b for a, b in zip(after, before)], out

        def imported(table: str, *extra: str) -> tuple[float, list[float | None], dict]:
            """gateway-client import of the file into `table`: (seconds, CPU seconds, its report)."""
            seconds, cpu, out = measured(
                [sys.executable, "-m", "gateway_client", "import", str(data), "--url", base, "--table", table,
                 "--concurrency", CONCURRENCY, "--json", *extra],
                table,
            )
            report = json.loads(out)
            assert report["rows_inserted"] == ROWS, report
            return seconds, cpu, report

        t_upload, cpu_upload, _ = measured(
            ["curl", "-s", "-o", "/dev/null", "-F", f"file=@{data}", f"{base}/api/batch/import?table=items"], "items"
        )
        t_client, cpu_client, report = imported("items_client", "--batch-rows", BATCH_ROWS)
        t_ws, cpu_ws, _ = imported("items_ws", "--mode", "ws", "--batch-rows", WS_BATCH_ROWS)

        size_mb = data.stat().st_size / 1e6
        print(f"{ROWS} rows, {size_mb:.0f} MB CSV, 1 uvicorn worker, {os.cpu_count()} cores shared with MariaDB and the client")
        print(f"{'':52} {'rows/s':>9} {'s':>6}   CPU s: gateway  MariaDB  sender")
        for label, seconds, cpu in (
            ("one upload to /api/batch/import (curl)", t_upload, cpu_upload),
            (f"gateway-client, {CONCURRENCY} x {BATCH_ROWS}-row batches", t_client, cpu_client),
            (f"gateway-client --mode ws, {CONCURRENCY} x {WS_BATCH_ROWS}-row messages", t_ws, cpu_ws),
        ):
            spent = "  ".join(f"{'-' if c is None else f'{c:.2f}':>7}" for c in cpu)
            print(f"{label:52} {ROWS / seconds:>9,.0f} {seconds:6.2f}          {spent}")
        print(f"client / upload = {t_upload / t_client:.2f}x (http), {t_upload / t_ws:.2f}x (ws)"
              f"  ({report['batches']} batches, {report['retries']} retries)")
    finally:
        if proc is not None:
            proc.terminate()
        shutil.rmtree(workdir, ignore_errors=True)


def mariadb_pid(db) -> int | None:
    """The server's process id when it runs on this machine and its pid file is readable."""
    cursor = db.cursor()
    cursor.execute("SELECT @@pid_file")
    try:
        pid = int(Path(cursor.fetchone()[0]).read_text())
    except (OSError, ValueError, TypeError):
        return None
    return pid if Path(f"/proc/{pid}").exists() else None


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU seconds of a process so far (Linux /proc), None if it cannot be read."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    main()
