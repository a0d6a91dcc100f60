"""CRUD benchmark (not a test): the gateway against a minimal FastAPI+aiomysql app, in one run.

For GET by primary key, a 100-row list page and a single-row POST it prints requests/s, p50 and
p99 for both, and the ratio gateway/baseline. Load comes from wrk (Debian package `wrk`).

Then deep pages: on a table of DEEP_ROWS (2,000,000) rows, the time of page 1 and of the page after
row 1,000,000, by offset and by cursor (median of 5 requests each), in key order and in the order
of an indexed column with ties.

    make bench                      # or: DATABASE_URL=... .venv/bin/python bench/crud.py
    BENCH_SECONDS=10 BENCH_CONNECTIONS=32 GATEWAY_DB_DRIVER=asyncmy ...

Both servers run as one uvicorn worker (uvloop, httptools) on loopback, with the same pool size.
A throwaway database is created for the run and dropped afterwards.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as `python bench/crud.py`, this folder comes first on sys.path, and bench/csv.py would shadow
# the standard csv module for every library that imports it: take the folder off first.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import os  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from urllib.parse import urlsplit, urlunsplit  # noqa: E402

import pymysql  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from app.core.config import DatabaseAddress  # noqa: E402

SECONDS = int(os.environ.get("BENCH_SECONDS", "8"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "32"))
ROWS = 10_000
DEEP_ROWS = int(os.environ.get("BENCH_DEEP_ROWS", "2000000"))

GET_LUA = """
math.randomseed(os.time())
request = function() return wrk.format("GET", string.format(wrk.path, math.random(1, %d))) end
""" % ROWS
POST_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"input": {"name": "bench", "qty": 3, "price": "9.99"}}'
"""


def connect(address: DatabaseAddress, database: str | None = None):
    return pymysql.connect(**address.connect_kwargs(), autocommit=True, database=database)


@contextmanager
def throwaway_database(server: str) -> Iterator[tuple[DatabaseAddress, str, str]]:
    """A database of the benchmark's own on the server at `server` (a DATABASE_URL): (its address,
    name, URL). Dropped afterwards."""
    address = DatabaseAddress.parse(server)
    name = f"gwbench_{uuid.uuid4().hex[:8]}"
    admin = connect(address)
    admin.cursor().execute(f"CREATE DATABASE `{name}`")
    try:
        yield address, name, urlunsplit(urlsplit(server)._replace(path="/" + name))
    finally:
        admin.ping(reconnect=True)
        admin.cursor().execute(f"DROP DATABASE IF EXISTS `{name}`")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(module: str, port: int, env: dict) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "uvicorn", module, "--port", str(port), "--loop", "uvloop", "--http", "httptools",
           "--no-access-log", "--log-level", "warning"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"{module} did not start")


def wrk(url: str, script: str) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
    out = subprocess.run(
        ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{SECONDS}s", "--latency", "-s", f.name, url],
        capture_output=True, text=True, check=True,
    ).stdout
    os.unlink(f.name)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    def pct(p: str) -> str:
        match = re.search(rf"^\s+{p}%\s+(\S+)", out, re.M)
        return match.group(1) if match else "?"
    return {"rps": rps, "p50": pct("50"), "p99": pct("99"), "errors": int(errors.group(1)) if errors else 0}


def main() -> None:
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed: apt-get install wrk")
    server = os.environ.get("DATABASE_URL")
    if not server:
        raise SystemExit("set DATABASE_URL (make bench does)")
    address = DatabaseAddress.parse(server)
    name = f"gwbench_{uuid.uuid4().hex[:8]}"
    admin = connect(address)
    admin.cursor().execute(f"CREATE DATABASE `{name}`")
    procs = []
    try:
        db = connect(address, name)
        cur = db.cursor()
        cur.execute("CREATE TABLE items (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(50) NOT NULL,"
                    " qty INT NOT NULL, price DECIMAL(10,2) NOT NULL, created DATETIME DEFAULT CURRENT_TIMESTAMP)")
        cur.executemany("INSERT INTO items (name, qty, price) VALUES (%s, %s, %s)",
                        [(f"item {i}", i % 100, f"{i % 1000}.50") for i in range(ROWS)])
        url = urlunsplit(urlsplit(server)._replace(path="/" + name))
        env = os.environ | {"DATABASE_URL": url, "GATEWAY_POOL_MAX": "20", "PYTHONPATH": str(ROOT)}
        gw_port, base_port = free_port(), free_port()
        procs.append(start("app.main:app", gw_port, env))
        procs.append(start("bench.baseline_app:app", base_port, env))
        cases = [
            ("GET by key", f"http://127.0.0.1:{gw_port}/api/items/%d", f"http://127.0.0.1:{base_port}/items/%d", GET_LUA),
            ("list 100 rows", f"http://127.0.0.1:{gw_port}/api/items/query?limit=100", f"http://127.0.0.1:{base_port}/items?limit=100", ""),
            ("POST one row", f"http://127.0.0.1:{gw_port}/api/items", f"http://127.0.0.1:{base_port}/items", POST_LUA),
        ]
        driver = os.environ.get("GATEWAY_DB_DRIVER", "aiomysql")
        print(f"driver={driver} connections={CONNECTIONS} seconds={SECONDS} (1 uvicorn worker each, 2 cores shared with wrk and MariaDB)")
        print(f"{'case':<15} {'gateway req/s':>14} {'p50':>8} {'p99':>8} | {'baseline req/s':>14} {'p50':>8} {'p99':>8} | ratio")
        for label, gw_url, base_url, script in cases:
            gw = run_case(gw_url, script)
            base = run_case(base_url, script)
            flag = "" if not (gw["errors"] or base["errors"]) else f"  errors gw={gw['errors']} base={base['errors']}"
            print(f"{label:<15} {gw['rps']:>14.0f} {gw['p50']:>8} {gw['p99']:>8} | {base['rps']:>14.0f} {base['p50']:>8} {base['p99']:>8} | {gw['rps'] / base['rps']:.2f}x{flag}")
        deep_pages(db, f"http://127.0.0.1:{gw_port}")
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)
        admin.ping(reconnect=True)
        admin.cursor().execute(f"DROP DATABASE IF EXISTS `{name}`")


def deep_pages(db, base: str) -> None:
    """Page 1 and the page after row DEEP_ROWS/2, by offset and by cursor."""
    import json
    import statistics
    import urllib.parse
    import urllib.request

    from app.core import cursors
    from app.core.catalog import Column

    cur = db.cursor()
    cur.execute("CREATE TABLE deep (id INT PRIMARY KEY, name VARCHAR(30) NOT NULL, score INT NOT NULL, KEY score (score, id))")
    cur.execute(f"INSERT INTO deep SELECT seq, CONCAT('user ', seq), seq % 1000 FROM seq_1_to_{DEEP_ROWS}")
    cur.execute("ANALYZE TABLE deep")  # fresh statistics: right after a bulk load the optimizer would sort the table
    cur.fetchall()
    middle = DEEP_ROWS // 2

    def timed(query: dict) -> float:
        url = f"{base}/api/deep/query?" + urllib.parse.urlencode(query)
        times = []
        for _ in range(5):
            started = time.perf_counter()
            with urllib.request.urlopen(url) as answer:
                body = json.loads(answer.read())
            times.append(time.perf_counter() - started)
            assert len(body["data"]) == 100, body
        return statistics.median(times) * 1000

    def column(name: str, kind: str) -> Column:
        return Column(name, kind, kind, False, False)

    print(f"deep pages, {DEEP_ROWS:,} rows, 100 rows a page (ms, median of 5):")
    print(f"{'order':<22} {'page 1':>8} {'offset':>10} {'cursor':>10}   (the page after row {middle:,})")
    for label, order, keys, sql_order in (
        ("key (id)", None, ((column("id", "int"), False),), "id"),
        ("score.desc, ties", "score.desc", ((column("score", "int"), True), (column("id", "int"), True)), "score DESC, id DESC"),
    ):
        cur.execute(f"SELECT {', '.join(c.name for c, _ in keys)} FROM deep ORDER BY {sql_order} LIMIT 1 OFFSET {middle - 1}")
        cursor = cursors.encode(keys, list(cur.fetchone()))
        ordered = {"order": order} if order else {}
        first = timed({"limit": 100, **ordered})
        by_offset = timed({"limit": 100, "offset": middle, **ordered})
        by_cursor = timed({"limit": 100, "cursor": cursor, **ordered})
        print(f"{label:<22} {first:>8.1f} {by_offset:>10.1f} {by_cursor:>10.1f}")


def run_case(url: str, script: str) -> dict:
    """wrk against one URL; '%d' in the URL is replaced by a random key per request."""
    parts = urlsplit(url)
    base = f"{parts.scheme}://{parts.netloc}"
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    if "%d" in path:
        script = script.replace("wrk.path", repr(path).replace("'", '"'))
        return wrk(base + "/", script)
    return wrk(base + path, script)


if __name__ == "__main__":
    main()
