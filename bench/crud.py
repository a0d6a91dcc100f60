"""CRUD benchmark (not a test): the gateway against xmysql and a bare FastAPI app, side by side.

In one run, one after another on the same 10,000-row table, each server with 2 processes:
  - the gateway with the defaults (`python -m app`, GATEWAY_WORKERS=2: access log and metrics on)
    and asyncmy (the default driver), then the same with aiomysql,
  - a bare FastAPI + aiomysql app doing the same queries with no checks (bench/baseline_app.py),
  - xmysql 0.5.1 (Node.js, `-c 2`), installed with npm into BENCH_XMYSQL_DIR (.data/bench/xmysql)
    when node and npm exist, skipped with a message otherwise,
and for GET by primary key, a 100-row page and a one-row POST prints requests/s, p50 and p99
(median of BENCH_REPEATS runs of `wrk -t1 -c32 -d BENCH_SECONDS`) and each ratio to xmysql.

Then the cost of tracing (issue 29): GET by key and a 100-row page on a gateway with tracing off
and one with OpenTelemetry on (OTEL_EXPORTER_OTLP_ENDPOINT at a local sink that takes the spans and
answers 200), side by side; BENCH_TRACING=0 skips it, BENCH_TRACING_ONLY=1 runs only it.

Then deep pages: on a table of DEEP_ROWS (2,000,000) rows, the time of page 1 and of the page after
row 1,000,000, by offset and by cursor (median of 5 requests each), in key order and in the order
of an indexed column with ties.

    make bench                      # or: DATABASE_URL=... .venv/bin/python bench/crud.py
    BENCH_SECONDS=10 BENCH_REPEATS=3 BENCH_CONNECTIONS=32 BENCH_DEEP_ROWS=0 ...

wrk comes from Debian's `wrk` package. A throwaway database is created for the run and dropped.
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
from app.core.config import DatabaseAddress, Settings  # noqa: E402

SECONDS = int(os.environ.get("BENCH_SECONDS", "10"))
REPEATS = int(os.environ.get("BENCH_REPEATS", "3"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "32"))
XMYSQL_DIR = Path(os.environ.get("BENCH_XMYSQL_DIR", ROOT / ".data" / "bench" / "xmysql"))
ROWS = 10_000
DEEP_ROWS = int(os.environ.get("BENCH_DEEP_ROWS", "2000000"))
EMBED = os.environ.get("BENCH_EMBED", "1") != "0"
TRACING = os.environ.get("BENCH_TRACING", "1") != "0"
TRACING_ONLY = os.environ.get("BENCH_TRACING_ONLY", "0") == "1"

GET_LUA = """
math.randomseed(os.time())
request = function() return wrk.format("GET", string.format(wrk.path, math.random(1, %d))) end
""" % ROWS
POST_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"input": {"name": "bench", "qty": 3, "price": "9.99"}}'
"""
MINIMAL_POST_LUA = POST_LUA + 'wrk.headers["Prefer"] = "return=minimal"\n'
# An upsert of an existing row (a random key of the 10,000): the UPDATE side of ON DUPLICATE KEY.
UPSERT_LUA = """
math.randomseed(os.time())
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Prefer"] = "resolution=merge-duplicates"
request = function()
  return wrk.format(nil, nil, nil, string.format('{"input": {"id": %%d, "name": "bench", "qty": 4, "price": "9.99"}}', math.random(1, %d)))
end
""" % ROWS
XMYSQL_POST_LUA = POST_LUA.replace("""'{"input": {"name": "bench", "qty": 3, "price": "9.99"}}'""", """'{"name": "bench", "qty": 3, "price": "9.99"}'""")


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


def database_url(target: str) -> str:
    """The server to measure on: DATABASE_URL, which `make <target>` sets."""
    server = os.environ.get("DATABASE_URL")
    if not server:
        raise SystemExit(f"set DATABASE_URL (make {target} does)")
    return server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(module: str, port: int, env: dict) -> subprocess.Popen:
    """One uvicorn worker serving `module` (bench/csv.py, bench/galera.py)."""
    cmd = [sys.executable, "-m", "uvicorn", module, "--port", str(port), "--loop", "uvloop", "--http", "httptools",
           "--no-access-log", "--log-level", "warning"]
    return started(subprocess.Popen(cmd, cwd=ROOT, env=env), port, module)


def started(proc: subprocess.Popen, port: int, name: str, path: str = "/") -> subprocess.Popen:
    """`proc` once something answers HTTP on `port` (any status: `path` may not exist)."""
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=1).close()
            return proc
        except urllib.error.HTTPError:
            return proc
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"{name} did not start")


def wrk(url: str, script: str) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
    out = subprocess.run(
        ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{SECONDS}s", "--latency", "-s", f.name, url],
        capture_output=True, text=True, check=True,
    ).stdout
    os.unlink(f.name)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    def pct(p: str) -> str:
        match = re.search(rf"^\s+{p}%\s+(\S+)", out, re.M)
        return match.group(1) if match else "?"
    return {"rps": rps, "p50": pct("50"), "p99": pct("99"), "errors": int(errors.group(1)) if errors else 0}


def median_case(url: str, script: str) -> dict:
    """The median (by req/s) of REPEATS wrk runs."""
    runs = sorted((run_case(url, script) for _ in range(REPEATS)), key=lambda r: r["rps"])
    return runs[len(runs) // 2] | {"errors": sum(r["errors"] for r in runs)}


def gateway(url: str, port: int, log: Path, **env: str) -> subprocess.Popen:
    """`python -m app` as a user runs it, 2 worker processes, its log (access lines included) to
    `log`; defaults unless `env` says."""
    values = os.environ | {"DATABASE_URL": url, "PORT": str(port), "GATEWAY_WORKERS": "2", "PYTHONPATH": str(ROOT)} | env
    with log.open("wb") as sink:
        proc = subprocess.Popen([sys.executable, "-m", "app"], cwd=ROOT, env=values, stdout=sink, stderr=sink)
    return started(proc, port, "the gateway", "/health/live")


def retried(log: Path, since: int) -> tuple[int, int]:
    """(requests answered after a retry, requests) in the access lines of `log` past byte `since`:
    under load the gateway should not be timing out and retrying its own attempts."""
    import json

    time.sleep(0.3)  # the last lines are written within GATEWAY_LOG_FLUSH_MS (100 ms) of the case's end
    retried = total = 0
    with log.open("rb") as f:
        f.seek(since)
        for line in f:
            if b'"gateway.access"' in line:
                total += 1
                retried += json.loads(line).get("retry_count", 0) > 0
    return retried, total


def baseline(url: str, port: int) -> subprocess.Popen:
    env = os.environ | {"DATABASE_URL": url, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "uvicorn", "bench.baseline_app:app", "--port", str(port), "--workers", "2",
           "--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning"]
    return started(subprocess.Popen(cmd, cwd=ROOT, env=env), port, "the baseline")


def xmysql(address: DatabaseAddress, database: str, port: int) -> subprocess.Popen | None:
    """xmysql 0.5.1 with 2 processes (`-c 2`), installed with npm on first use; None without node."""
    if not (shutil.which("node") and shutil.which("npm")):
        print("xmysql skipped: node and npm are not installed")
        return None
    entry = XMYSQL_DIR / "node_modules" / "xmysql" / "bin" / "index.js"
    if not entry.exists():
        XMYSQL_DIR.mkdir(parents=True, exist_ok=True)
        installed = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--silent", "xmysql@0.5.1"],
                                   cwd=XMYSQL_DIR, capture_output=True, text=True)
        if installed.returncode != 0:
            print(f"xmysql skipped: npm install failed: {installed.stderr.strip()[-300:]}")
            return None
    where = ["-S", address.unix_socket] if address.unix_socket else ["-h", address.host, "-o", str(address.port)]
    cmd = ["node", str(entry), "-u", address.user, "-d", database, *where, "-n", str(port), "-r", "127.0.0.1", "-c", "2"]
    if address.password:
        cmd += ["-p", address.password]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return started(proc, port, "xmysql", "/api/items/1")


def main() -> None:
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed: apt-get install wrk")
    server = database_url("bench")
    procs: list[subprocess.Popen] = []
    logs: dict[str, Path] = {}  # the gateways' logs, read for retries
    with throwaway_database(server) as (address, name, url):
        db = connect(address, name)
        cur = db.cursor()
        cur.execute("CREATE TABLE items (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(50) NOT NULL,"
                    " qty INT NOT NULL, price DECIMAL(10,2) NOT NULL, created DATETIME DEFAULT CURRENT_TIMESTAMP)")
        cur.executemany("INSERT INTO items (name, qty, price) VALUES (%s, %s, %s)",
                        [(f"item {i}", i % 100, f"{i % 1000}.50") for i in range(ROWS)])
        if TRACING_ONLY:
            tracing_cost(url)
            return
        try:
            servers: list[tuple[str, str, tuple[str, str, str], str]] = []  # label, base, paths, POST script
            gateway_paths = ("/api/items/%d", "/api/items/query?limit=100", "/api/items")
            for label, env in (("gateway, asyncmy", {"GATEWAY_DB_DRIVER": "asyncmy"}), ("gateway, aiomysql", {"GATEWAY_DB_DRIVER": "aiomysql"})):
                port = free_port()
                logs[label] = Path(tempfile.mkstemp(prefix="gwbench-", suffix=".log")[1])
                procs.append(gateway(url, port, logs[label], **env))
                servers.append((label, f"http://127.0.0.1:{port}", gateway_paths, POST_LUA))
            port = free_port()
            procs.append(baseline(url, port))
            servers.append(("bare FastAPI", f"http://127.0.0.1:{port}", ("/items/%d", "/items?limit=100", "/items"), POST_LUA))
            port = free_port()
            if (proc := xmysql(address, name, port)) is not None:
                procs.append(proc)
                servers.append(("xmysql -c 2", f"http://127.0.0.1:{port}", ("/api/items/%d", "/api/items?_size=100", "/api/items"), XMYSQL_POST_LUA))
            print(f"gateway defaults otherwise (GATEWAY_DB_DRIVER's default: {Settings.model_fields['db_driver'].default})")
            print(f"2 processes each; wrk -t1 -c{CONNECTIONS} -d{SECONDS}s, median of {REPEATS}; 2 cores shared by wrk, MariaDB and the server")
            print(f"{'server':<20} {'case':<14} {'req/s':>8} {'p50':>9} {'p99':>9} | vs xmysql")
            figures: dict[tuple[str, str], dict] = {}
            for label, base, (by_key, page, create), post in servers:
                for case, path, script in (("GET by key", by_key, GET_LUA), ("100-row page", page, ""), ("one-row POST", create, post)):
                    since = logs[label].stat().st_size if label in logs else 0
                    figures[label, case] = median_case(base + path, script)
                    if label in logs:
                        figures[label, case]["retried"] = retried(logs[label], since)
            for label, *_ in servers:
                for case in ("GET by key", "100-row page", "one-row POST"):
                    f, x = figures[label, case], figures.get(("xmysql -c 2", case))
                    ratio = f"{f['rps'] / x['rps']:.2f}x" if x else "-"
                    flag = f"  ({f['errors']} non-2xx)" if f["errors"] else ""
                    if "retried" in f:
                        flag += f"  retried {f['retried'][0]} of {f['retried'][1]:,}"
                    print(f"{label:<20} {case:<14} {f['rps']:>8.0f} {f['p50']:>9} {f['p99']:>9} | {ratio}{flag}")
            writes(servers[0][1], figures)
            if EMBED:
                embedded(db, servers[0][1], servers[2][1])
            if TRACING:
                tracing_cost(url)
            if DEEP_ROWS:
                deep_pages(db, servers[0][1])
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(20)
            for log in logs.values():
                log.unlink(missing_ok=True)


@contextmanager
def otlp_sink() -> Iterator[int]:
    """An OTLP/HTTP endpoint on loopback that takes every export and answers 200 (its port)."""
    import http.server
    import threading

    class Sink(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (the standard library's name)
            self.rfile.read(int(self.headers.get("content-length") or 0))
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()


def tracing_cost(url: str) -> None:
    """GET by key and a 100-row page, tracing off and on (each its own 2-process gateway)."""
    with otlp_sink() as sink:
        procs, bases = [], {}
        try:
            endpoint = {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{sink}"}
            sampled = endpoint | {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.1"}
            for label, env in (("off", {}), ("on", endpoint), ("10%", sampled)):
                port = free_port()
                log = Path(tempfile.mkstemp(prefix="gwbench-", suffix=".log")[1])
                procs.append((gateway(url, port, log, **env), log))
                bases[label] = f"http://127.0.0.1:{port}"
            print(f"tracing (OpenTelemetry to a local OTLP sink), wrk -c{CONNECTIONS} -d{SECONDS}s, median of {REPEATS}")
            print("('on': every request traced; '10%': OTEL_TRACES_SAMPLER=parentbased_traceidratio, ARG 0.1)")
            print(f"{'case':<14} {'tracing':<8} {'req/s':>8} {'p50':>9} {'p99':>9} {'cost':>7}")
            for case, path, script in (("GET by key", "/api/items/%d", GET_LUA), ("100-row page", "/api/items/query?limit=100", "")):
                off = None
                for label, base in bases.items():
                    f = median_case(base + path, script)
                    off = off or f
                    cost = 1 - f["rps"] / off["rps"]
                    print(f"{case:<14} {label:<8} {f['rps']:>8.0f} {f['p50']:>9} {f['p99']:>9} {cost:>6.1%}")
        finally:
            for proc, log in procs:
                proc.terminate()
                proc.wait(20)
                log.unlink(missing_ok=True)


def writes(base: str, figures: dict) -> None:
    """Issue 32: a POST that reads nothing back (Prefer: return=minimal) and an upsert of an existing
    row (Prefer: resolution=merge-duplicates), beside the plain POST and xmysql's, measured above."""
    plain, x = figures["gateway, asyncmy", "one-row POST"], figures.get(("xmysql -c 2", "one-row POST"))
    for case, script in (("POST, Prefer: return=minimal", MINIMAL_POST_LUA), ("POST, merge-duplicates", UPSERT_LUA)):
        f = median_case(base + "/api/items", script)
        versus = f" | {f['rps'] / x['rps']:.2f}x xmysql's POST" if x else ""
        flag = f"  ({f['errors']} non-2xx)" if f["errors"] else ""
        print(f"gateway, asyncmy      {case:<30} {f['rps']:>8.0f} {f['p50']:>9} {f['p99']:>9} | "
              f"{f['rps'] / plain['rps']:.2f}x the plain POST{versus}{flag}")


def embedded(db, gateway_base: str, baseline_base: str) -> None:
    """Issue 26: 100 orders with their customer and lines (1,000 customers, 10,000 orders, 30,000
    lines). Throughput (wrk, as above) of the gateway's one request against the same statement
    written by hand behind the bare FastAPI app; and the time to assemble the page the N+1 way
    through the gateway (the page, then each order's customer and lines: 201 requests, one after
    another on a kept-alive connection) against the one request, timed the same way."""
    import statistics

    import httpx

    cur = db.cursor()
    cur.execute("CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(40) NOT NULL, email VARCHAR(80))")
    cur.execute("CREATE TABLE orders (id INT PRIMARY KEY, customer_id INT, total DECIMAL(10,2),"
                " FOREIGN KEY (customer_id) REFERENCES customers(id))")
    cur.execute("CREATE TABLE `lines` (order_id INT NOT NULL, line_no INT NOT NULL, sku VARCHAR(20), qty INT,"
                " PRIMARY KEY (order_id, line_no), FOREIGN KEY (order_id) REFERENCES orders(id))")
    cur.execute("INSERT INTO customers SELECT seq, CONCAT('customer ', seq), CONCAT('c', seq, '@example.org') FROM seq_1_to_1000")
    cur.execute("INSERT INTO orders SELECT seq, 1 + seq % 1000, seq % 500 + 0.25 FROM seq_1_to_10000")
    cur.execute("INSERT INTO `lines` SELECT o.seq, l.seq, CONCAT('sku-', l.seq), l.seq FROM seq_1_to_10000 o, seq_1_to_3 l")
    fields = "id,total,customer(id,name,email),lines(sku,qty)"
    one = f"/api/orders/query?limit=100&fields={fields}"
    with httpx.Client(base_url=gateway_base, timeout=60) as client:
        client.get("/api/tables")  # the catalog (and its relations) loaded, as in use
        page = client.get(one).json()["data"]
        assert len(page) == 100 and all(len(o["lines"]) == 3 and o["customer"] for o in page), page[:1]

        def n_plus_one() -> float:
            started = time.perf_counter()
            orders = client.get("/api/orders/query?limit=100&fields=id,total,customer_id").json()["data"]
            for order in orders:
                order["customer"] = client.get(f"/api/customers/{order.pop('customer_id')}?fields=id,name,email").json()["data"]
                order["lines"] = client.get(f"/api/lines/query?order_id=eq.{order['id']}&fields=sku,qty").json()["data"]
            assert orders == page
            return time.perf_counter() - started

        def single() -> float:
            started = time.perf_counter()
            client.get(one).raise_for_status()
            return time.perf_counter() - started

        slow = statistics.median(n_plus_one() for _ in range(5))
        fast = statistics.median(single() for _ in range(50))
    ours = median_case(gateway_base + one, "")
    hand = median_case(baseline_base + "/orders_embedded?limit=100", "")
    print("100 orders with their customer and lines (1,000 customers, 10,000 orders, 30,000 lines):")
    print(f"  gateway, fields={fields}: {ours['rps']:.0f} req/s (p50 {ours['p50']})"
          f" | hand-written SQL, bare FastAPI: {hand['rps']:.0f} req/s (p50 {hand['p50']}) -> {ours['rps'] / hand['rps']:.2f}x")
    print(f"  one request {fast * 1000:.1f} ms against N+1 through the gateway (201 requests) {slow * 1000:.0f} ms"
          f" -> {slow / fast:.1f}x")


def deep_pages(db, base: str) -> None:
    """Page 1 and the page after row DEEP_ROWS/2, by offset and by cursor."""
    import json
    import statistics
    import urllib.parse
    import urllib.request

    from app.db.catalog import Column
    from app.query import cursors

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
