"""Export benchmark (not a test): every export format's speed and memory, in one run.

A table of BENCH_EXPORT_ROWS rows (400,000 by default: an id, three 128-character strings, a decimal
and a datetime) is exported in each format the gateway writes, by a client reading as fast as it can
and by one reading at BENCH_SLOW_MBPS MB/s (curl --limit-rate: a download across a network). For
each it prints rows/s, the file's size and the gateway's memory growth at its peak over the idle
process (VmHWM after clear_refs; each format has exported 10 rows once before, so its library's code
is loaded), against the target of 80 MB whatever the size; and `mariadb
--batch` on the same query, the baseline for the CSV export's speed.

    make bench-exports          # or: DATABASE_URL=... .venv/bin/python bench/exports.py
    BENCH_EXPORT_ROWS=1000000 BENCH_SLOW_MBPS=5 make bench-exports
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.crud import connect, database_url, free_port, start, throwaway_database  # noqa: E402

ROWS = int(os.environ.get("BENCH_EXPORT_ROWS", "400000"))
SLOW_MBPS = float(os.environ.get("BENCH_SLOW_MBPS", "10"))
FORMATS = ["csv", "jsonl", "xlsx", "parquet"]
TARGET_MB = 80
TABLE = """CREATE TABLE wide (
    id INT PRIMARY KEY, a VARCHAR(128), b VARCHAR(128), c VARCHAR(128), amount DECIMAL(12,2), at DATETIME
)"""
FILL = """INSERT INTO wide SELECT seq, SHA2(seq, 512), SHA2(seq + 1, 512), IF(seq % 7 = 0, NULL, SHA2(seq + 2, 512)),
    seq / 100, '2026-01-01' + INTERVAL seq SECOND FROM seq_1_to_{rows}"""


def status(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])  # kB
    raise SystemExit(f"no {field} for process {pid}")


def export(base: str, fmt: str, target: Path, pid: int, rate: float | None) -> tuple[float, float]:
    """(seconds, peak growth in MB over the process's resident memory before it)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := VmRSS
    before = status(pid, "VmRSS")
    cmd = ["curl", "-s", "-f", "-o", str(target), f"{base}/api/batch/wide/export?format={fmt}"]
    if rate:
        cmd[1:1] = ["--limit-rate", f"{int(rate * 1e6)}"]
    started = time.perf_counter()
    subprocess.run(cmd, check=True)
    return time.perf_counter() - started, (status(pid, "VmHWM") - before) / 1024


def main() -> None:
    for tool in ("mariadb", "curl"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is needed")
    with throwaway_database(database_url("bench-exports")) as (address, name, url):
        db = connect(address, name)
        db.cursor().execute(TABLE)
        print(f"filling {ROWS:,} rows ...", flush=True)
        db.cursor().execute(FILL.format(rows=ROWS))
        workdir = Path(tempfile.mkdtemp(prefix="gwbench"))
        client = ["mariadb", "--batch", "--user", address.user, name]
        if address.password:
            client.insert(1, f"--password={address.password}")
        client[1:1] = [f"--socket={address.unix_socket}"] if address.unix_socket else ["--host", address.host, "--port", str(address.port), "--protocol=TCP"]
        started = time.perf_counter()
        with open(workdir / "client.tsv", "wb") as out:
            subprocess.run([*client, "-e", "SELECT * FROM wide"], stdout=out, check=True)
        t_client = time.perf_counter() - started
        port = free_port()
        proc = start("app.main:app", port, os.environ | {"DATABASE_URL": url, "PYTHONPATH": str(ROOT), "GATEWAY_ACCESS_LOG": "false"})
        try:
            base = f"http://127.0.0.1:{port}"
            subprocess.run(["curl", "-s", "-f", "-o", "/dev/null", f"{base}/api/wide/1"], check=True)  # warm: catalog, pools
            for fmt in FORMATS:  # and each format's code once (pyarrow's first write maps ~50 MB of its library)
                subprocess.run(["curl", "-s", "-f", "-o", "/dev/null", f"{base}/api/batch/wide/export?format={fmt}&limit=10"],
                               check=True)
            print(f"\n{ROWS:,} rows; the gateway's memory growth at its peak (target: under {TARGET_MB} MB, whatever the size)")
            print(f"    mariadb --batch             {ROWS / t_client:>10,.0f} rows/s  {t_client:6.2f} s")
            results = {}
            for fmt in FORMATS:
                for label, rate in (("fast client", None), (f"{SLOW_MBPS:g} MB/s client", SLOW_MBPS)):
                    target = workdir / f"out.{fmt}"
                    seconds, growth = export(base, fmt, target, proc.pid, rate)
                    size = target.stat().st_size / 1e6
                    results[(fmt, rate)] = seconds
                    verdict = "ok" if growth < TARGET_MB else "OVER"
                    print(f"    {fmt:5} {label:18} {ROWS / seconds:>10,.0f} rows/s  {seconds:6.2f} s  {size:7.1f} MB"
                          f"  growth {growth:6.1f} MB  {verdict}", flush=True)
            print(f"\n    csv export / mariadb --batch = {t_client / results[('csv', None)]:.2f}x")
        finally:
            proc.terminate()
            proc.wait()
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
