"""Read cache benchmark (not a test): GET by key, uncached against cached, in one run (issue 28).

On a 10,000-row table, the gateway (`python -m app`, 2 processes, defaults) without a cache, then
with GATEWAY_CACHE_URL pointing at a private redis-server this run starts on a free port (no
persistence; stopped at the end). Random keys; the cached gateway is warmed first by one wrk run
over the same keys, so the measured run is mostly hits. Prints requests/s, p50, p99 and the ratio
Then a 100-row page the same way. (median of BENCH_REPEATS runs of `wrk -t1 -c BENCH_CONNECTIONS -d BENCH_SECONDS`).

    make bench-cache                # or: DATABASE_URL=... .venv/bin/python bench/cache.py
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import os  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.crud import (  # noqa: E402
    CONNECTIONS,
    GET_LUA,
    REPEATS,
    ROWS,
    SECONDS,
    connect,
    database_url,
    free_port,
    gateway,
    median_case,
    run_case,
    throwaway_database,
)

WARM_RUNS = int(os.environ.get("BENCH_CACHE_WARM_RUNS", 4))


def redis_server(port: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        [shutil.which("redis-server") or "/usr/bin/redis-server", "--port", str(port), "--bind", "127.0.0.1",
         "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    time.sleep(0.3)
    return proc


def main() -> None:
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed: apt-get install wrk")
    server = database_url("bench-cache")
    procs: list[subprocess.Popen] = []
    logs: list[Path] = []
    with throwaway_database(server) as (address, name, url):
        db = connect(address, name)
        cur = db.cursor()
        cur.execute("CREATE TABLE items (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(50) NOT NULL,"
                    " qty INT NOT NULL, price DECIMAL(10,2) NOT NULL, created DATETIME DEFAULT CURRENT_TIMESTAMP)")
        cur.executemany("INSERT INTO items (name, qty, price) VALUES (%s, %s, %s)",
                        [(f"item {i}", i % 100, f"{i % 1000}.50") for i in range(ROWS)])
        try:
            redis_port = free_port()
            procs.append(redis_server(redis_port))
            bases = {}
            for label, env in (
                ("uncached", {}),
                ("cached", {"GATEWAY_CACHE_URL": f"redis://127.0.0.1:{redis_port}/0",
                            "GATEWAY_CACHE_NAMESPACE": f"bench{uuid.uuid4().hex[:6]}"}),
            ):
                port = free_port()
                logs.append(Path(tempfile.mkstemp(prefix="gwbench-", suffix=".log")[1]))
                procs.append(gateway(url, port, logs[-1], **env))
                bases[label] = f"http://127.0.0.1:{port}"
            # Warm: each of the 2 processes keeps its own answers beside Redis, so several runs of random
            # keys, until nearly every key has been read by each process.
            for _ in range(WARM_RUNS):
                run_case(bases["cached"] + "/api/items/%d", GET_LUA)
            print(f"GET by key, random keys of {ROWS:,}; 2 processes each; wrk -t1 -c{CONNECTIONS} -d{SECONDS}s,"
                  f" median of {REPEATS}; 2 cores shared by wrk, MariaDB, Redis and the server")
            print(f"{'case':<14} {'gateway':<10} {'req/s':>8} {'p50':>9} {'p99':>9}")
            for case, path, script in (("GET by key", "/api/items/%d", GET_LUA),
                                       ("100-row page", "/api/items/query?limit=100", "")):
                figures = {label: median_case(base + path, script) for label, base in bases.items()}
                for label, f in figures.items():
                    flag = f"  ({f['errors']} non-2xx)" if f["errors"] else ""
                    print(f"{case:<14} {label:<10} {f['rps']:>8.0f} {f['p50']:>9} {f['p99']:>9}{flag}")
                print(f"{case:<14} cached / uncached: {figures['cached']['rps'] / figures['uncached']['rps']:.2f}x")
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(20)
            for log in logs:
                log.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
