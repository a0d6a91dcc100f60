"""CSV benchmark (not a test): the gateway against MariaDB's own tools, in one run.

Generates ROWS rows of a 10-column table (ints, strings, decimal, datetime, boolean, text, double)
and measures:
  (a) LOAD DATA LOCAL INFILE of the file by the mariadb client
  (b) POST /api/batch/import of the same file through the gateway (curl uploads it)
  (c) mariadb --batch -e 'SELECT ...' > /dev/null
  (d) GET /api/batch/{table}/export through the gateway (curl reads it to /dev/null)
  (e) the same import again: every row a duplicate (mode=insert reports each one by line and key)
  (f) the file into a table holding every other row: half the rows duplicates
  (g) the import with a 10-rule JSON Schema on the table (PUT /api/schemas/{table})
  (h) POST /api/batch/validate of the file against those rules (nothing written)
  (i) the same rows as JSON Lines
  (j) XLSX_ROWS of them as an XLSX workbook
  (k) GET .../export?format=jsonl        (l) GET .../export?format=xlsx&limit=XLSX_ROWS
  (p) GET .../export?format=parquet (and the file's size beside the CSV's)
  (q) that Parquet file imported into an empty table
  (m) the CSV as an import job: POST ?async=true, then polling until `succeeded` (upload included)
  (n) the CSV as a job reading it from an S3 server on loopback (moto's), POST to `succeeded`
  (o) (b) and (m) again with the upload limited to BENCH_LINK_MBPS MB/s (curl --limit-rate, 10): a
      client across a network, where the job imports while the file arrives, as (b) does
and prints rows/s for each, the ratios against LOAD DATA (imports) and mariadb --batch (exports),
the duplicate scenarios against the clean import, and the gateway's peak RSS.

    make bench-csv        # or: DATABASE_URL=... .venv/bin/python bench/csv.py
    BENCH_ROWS=200000 GATEWAY_DB_DRIVER=aiomysql ...

The gateway runs as one uvicorn worker; a throwaway database is created and dropped.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as `python bench/csv.py`, this folder comes first on sys.path and this file would shadow the
# standard csv module (for us and for the app modules we import): take the folder off first.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import csv  # noqa: E402
import datetime as dt  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import random
import shutil
import subprocess
import tempfile
import time
import urllib.request
import uuid
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from app.core.config import DatabaseAddress, Settings  # noqa: E402
from bench.crud import connect, database_url, free_port, start  # noqa: E402
from tests.s3server import S3Server  # noqa: E402

ROWS = int(os.environ.get("BENCH_ROWS", "1000000"))
XLSX_ROWS = min(ROWS, int(os.environ.get("BENCH_XLSX_ROWS", "70000")))  # within GATEWAY_SPREADSHEET_MAX_CELLS
RULES = {  # ten rules, the kind an ETL team writes
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1, "pattern": "^user "},
        "email": {"anyOf": [{"format": "email"}, {"const": ""}]},
        "qty": {"minimum": 0, "maximum": 10000},
        "price": {"minimum": 0},
        "active": {"enum": [0, 1]},
        "code": {"pattern": "^C[0-9]{7}$"},
    },
    "required": ["id", "name"],
}
TABLE = """CREATE TABLE {name} (
    id INT PRIMARY KEY,
    name VARCHAR(50) NOT NULL,
    email VARCHAR(100),
    qty INT NOT NULL,
    price DECIMAL(10,2) NOT NULL,
    created DATETIME NOT NULL,
    active TINYINT(1) NOT NULL,
    note TEXT,
    score DOUBLE,
    code CHAR(8)
)"""
COLUMNS = "id,name,email,qty,price,created,active,note,score,code"


def generate(path: Path) -> None:
    rng = random.Random(42)
    start_day = dt.datetime(2020, 1, 1)
    with path.open("w", newline="") as f:
        writer = csv.writer(f, lineterminator="\r\n")
        writer.writerow(COLUMNS.split(","))
        for i in range(1, ROWS + 1):
            writer.writerow([
                i,
                f"user {i}",
                f"user{i}@example.com" if i % 10 else "",
                rng.randint(0, 10000),
                f"{rng.randint(0, 99999)}.{rng.randint(0, 99):02d}",
                (start_day + dt.timedelta(seconds=rng.randint(0, 10**8))).isoformat(sep=" "),
                i % 2,
                "a note, with a comma" if i % 7 == 0 else ("line one\nline two" if i % 13 == 0 else "plain note"),
                rng.random() * 1000,
                f"C{i % 10000000:07d}",
            ])


def as_objects(path: Path):
    """The CSV's rows as JSON objects, typed as an API client would send them."""
    with path.open(newline="") as f:
        reader = csv.reader(f)
        names = next(reader)
        for row in reader:
            item = dict(zip(names, row))
            for key in ("id", "qty", "active"):
                item[key] = int(item[key])
            item["score"] = float(item["score"])
            yield item


def write_jsonl(source: Path, target: Path) -> None:
    with target.open("w") as f:
        for item in as_objects(source):
            f.write(json.dumps(item) + "\n")


def write_xlsx(source: Path, target: Path, rows: int) -> None:
    import xlsxwriter

    book = xlsxwriter.Workbook(str(target), {"constant_memory": True})
    sheet = book.add_worksheet("items")
    sheet.write_row(0, 0, COLUMNS.split(","))
    stamp = book.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"})
    for r, item in enumerate(as_objects(source), start=1):
        if r > rows:
            break
        values = list(item.values())
        values[4] = float(values[4])
        values[5] = dt.datetime.fromisoformat(values[5])
        for c, value in enumerate(values):
            if isinstance(value, dt.datetime):
                sheet.write_datetime(r, c, value, stamp)
            elif value != "":
                sheet.write(r, c, value)
    book.close()


def client_args(address: DatabaseAddress, database: str) -> list[str]:
    args = ["--user", address.user, database]
    if address.password:
        args.insert(0, f"--password={address.password}")
    if address.unix_socket:
        args.insert(0, f"--socket={address.unix_socket}")
    else:
        args[:0] = ["--host", address.host, "--port", str(address.port), "--protocol=TCP"]
    return args


class PeakRss:
    """The peak resident memory of a process over a phase (Linux: VmHWM, reset by clear_refs)."""

    def __init__(self, pid: int):
        self.pid = pid

    def reset(self) -> None:
        Path(f"/proc/{self.pid}/clear_refs").write_text("5")

    def peak_mb(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")


def timed(cmd: list[str], **kwargs) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, check=True, **kwargs)
    return time.perf_counter() - started


def count(db, table: str) -> int:
    with db.cursor() as cur:
        cur.execute(f"SELECT COUNT(*) FROM {table}")
        return cur.fetchone()[0]


def wait_for_job(base: str, job_id: str, timeout: float = 600) -> dict:
    """Poll a job until it ends, every 0.2 s (what a progress bar needs; polling costs the gateway too)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"{base}/api/batch/jobs/{job_id}") as answer:
            job = json.loads(answer.read())["data"]
        if job["state"] in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(0.2)
    raise SystemExit(f"job {job_id} did not end in {timeout} s")


def main() -> None:
    for tool in ("mariadb", "curl"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is needed")
    server = database_url("bench-csv")
    address = DatabaseAddress.parse(server)
    name = f"gwbench_{uuid.uuid4().hex[:8]}"
    admin = connect(address)
    admin.cursor().execute(f"CREATE DATABASE `{name}`")
    workdir = Path(tempfile.mkdtemp(prefix="gwbench"))
    proc = s3 = None
    try:
        data = workdir / "items.csv"
        print(f"generating {ROWS} rows ...", flush=True)
        generate(data)
        size_mb = data.stat().st_size / 1e6
        db = connect(address, name)
        for table in ("items_load", "items", "items_half", "items_rules", "items_json", "items_xlsx", "items_parquet",
                      "items_job", "items_s3"):
            db.cursor().execute(TABLE.format(name=table))
        client = ["mariadb", "--local-infile=1", *client_args(address, name)]

        load = (f"LOAD DATA LOCAL INFILE '{data}' INTO TABLE items_load FIELDS TERMINATED BY ','"
                f" OPTIONALLY ENCLOSED BY '\"' LINES TERMINATED BY '\\r\\n' IGNORE 1 LINES ({COLUMNS})")
        t_load = timed([*client, "-e", load])
        assert count(db, "items_load") == ROWS, "LOAD DATA did not load every row"

        url = urlunsplit(urlsplit(server)._replace(path="/" + name))
        s3 = S3Server.start()
        s3.put("bench", "items_s3.csv", data.read_bytes())
        env = os.environ | {"DATABASE_URL": url, "PYTHONPATH": str(ROOT), "GATEWAY_S3_BUCKETS": "bench"} | s3.env()
        port = free_port()
        proc = start("app.main:app", port, env)
        rss = PeakRss(proc.pid)
        base = f"http://127.0.0.1:{port}"

        rss.reset()
        t_import = timed(["curl", "-s", "-o", str(workdir / "report.json"), "-F", f"file=@{data}", f"{base}/api/batch/import"])
        rss_import = rss.peak_mb()
        assert count(db, "items") == ROWS, (workdir / "report.json").read_text()[:500]

        t_client = timed([*client, "--batch", "-e", f"SELECT {COLUMNS} FROM items"], stdout=subprocess.DEVNULL)
        rss.reset()
        out = workdir / "export.csv"
        t_export = timed(["curl", "-s", "-o", str(out), f"{base}/api/batch/items/export"])
        rss_export = rss.peak_mb()
        exported_rows = sum(1 for _ in csv.reader(out.open(newline=""))) - 1
        assert exported_rows == ROWS, f"export has {exported_rows} rows: {out.read_text()[:300]}"

        rss.reset()
        t_again = timed(["curl", "-s", "-o", str(workdir / "again.json"), "-F", f"file=@{data}", f"{base}/api/batch/import"])
        rss_again = rss.peak_mb()
        again = json.loads((workdir / "again.json").read_text())["data"]
        assert again["rows_failed"] == ROWS and again["rows_inserted"] == 0 and count(db, "items") == ROWS, again

        db.cursor().execute("INSERT INTO items_half SELECT * FROM items WHERE id % 2 = 0")
        db.commit()
        rss.reset()
        half_url = f"{base}/api/batch/import?table=items_half"
        t_half = timed(["curl", "-s", "-o", str(workdir / "half.json"), "-F", f"file=@{data}", half_url])
        rss_half = rss.peak_mb()
        half = json.loads((workdir / "half.json").read_text())["data"]
        assert half["rows_inserted"] + half["rows_failed"] == ROWS and count(db, "items_half") == ROWS, half

        put = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT", "-H", "content-type: application/json",
               "--data", json.dumps(RULES), f"{base}/api/schemas/items_rules"]
        assert subprocess.run(put, capture_output=True, text=True).stdout == "200", "storing the rules failed"
        rss.reset()
        rules_url = f"{base}/api/batch/import?table=items_rules"
        t_rules = timed(["curl", "-s", "-o", str(workdir / "rules.json"), "-F", f"file=@{data}", rules_url])
        rss_rules = rss.peak_mb()
        ruled = json.loads((workdir / "rules.json").read_text())["data"]
        assert ruled["rows_inserted"] == ROWS and ruled["rules_version"] == 1, ruled
        rss.reset()
        t_validate = timed(["curl", "-s", "-o", str(workdir / "valid.json"), "-F", f"file=@{data}",
                            f"{base}/api/batch/validate?table=items_rules&mode=ignore"])
        rss_validate = rss.peak_mb()
        valid = json.loads((workdir / "valid.json").read_text())["data"]
        assert valid["rows_valid"] == ROWS, valid

        jsonl = workdir / "items.jsonl"
        write_jsonl(data, jsonl)
        rss.reset()
        t_json = timed(["curl", "-s", "-o", str(workdir / "json.json"), "-F", f"file=@{jsonl}", f"{base}/api/batch/import?table=items_json"])
        rss_json = rss.peak_mb()
        assert count(db, "items_json") == ROWS, (workdir / "json.json").read_text()[:500]
        xlsx = workdir / "items.xlsx"
        write_xlsx(data, xlsx, XLSX_ROWS)
        rss.reset()
        t_xlsx = timed(["curl", "-s", "-o", str(workdir / "xlsx.json"), "-F", f"file=@{xlsx}", f"{base}/api/batch/import?table=items_xlsx"])
        rss_xlsx = rss.peak_mb()
        assert count(db, "items_xlsx") == XLSX_ROWS, (workdir / "xlsx.json").read_text()[:500]

        rss.reset()
        t_export_jsonl = timed(["curl", "-s", "-o", str(workdir / "out.jsonl"), f"{base}/api/batch/items/export?format=jsonl"])
        rss_export_jsonl = rss.peak_mb()
        assert sum(1 for _ in (workdir / "out.jsonl").open()) == ROWS
        rss.reset()
        t_export_xlsx = timed(["curl", "-s", "-o", str(workdir / "out.xlsx"), f"{base}/api/batch/items/export?format=xlsx&limit={XLSX_ROWS}"])
        rss_export_xlsx = rss.peak_mb()
        rss.reset()
        parquet = workdir / "out.parquet"
        t_export_parquet = timed(["curl", "-s", "-f", "-o", str(parquet), f"{base}/api/batch/items/export?format=parquet"])
        rss_export_parquet = rss.peak_mb()
        rss.reset()
        t_parquet = timed(["curl", "-s", "-o", str(workdir / "parquet.json"), "-F", f"file=@{parquet}",
                           f"{base}/api/batch/import?table=items_parquet"])
        rss_parquet = rss.peak_mb()
        assert count(db, "items_parquet") == ROWS, (workdir / "parquet.json").read_text()[:500]

        rss.reset()
        started = time.perf_counter()
        accepted = subprocess.run(["curl", "-s", "-F", f"file=@{data}", f"{base}/api/batch/import?async=true&table=items_job"],
                                  capture_output=True, check=True).stdout
        job = wait_for_job(base, json.loads(accepted)["data"]["id"])
        t_job = time.perf_counter() - started
        rss_job = rss.peak_mb()
        assert job["state"] == "succeeded" and count(db, "items_job") == ROWS, job
        rss.reset()
        started = time.perf_counter()
        accepted = subprocess.run(["curl", "-s", "-H", "content-type: application/json", "--data",
                                   json.dumps({"source": "s3://bench/items_s3.csv"}), f"{base}/api/batch/jobs"],
                                  capture_output=True, check=True).stdout
        job = wait_for_job(base, json.loads(accepted)["data"]["id"])
        t_s3 = time.perf_counter() - started
        rss_s3 = rss.peak_mb()
        assert job["state"] == "succeeded" and count(db, "items_s3") == ROWS, job

        link = int(os.environ.get("BENCH_LINK_MBPS", "10"))
        db.cursor().execute("TRUNCATE items_job")
        db.cursor().execute("TRUNCATE items")
        t_link_sync = timed(["curl", "-s", "-o", "/dev/null", "--limit-rate", f"{link}M", "-F", f"file=@{data}", f"{base}/api/batch/import?table=items"])
        assert count(db, "items") == ROWS
        started = time.perf_counter()
        accepted = subprocess.run(["curl", "-s", "--limit-rate", f"{link}M", "-F", f"file=@{data}",
                                   f"{base}/api/batch/import?async=true&table=items_job"], capture_output=True, check=True).stdout
        job = wait_for_job(base, json.loads(accepted)["data"]["id"])
        t_link_job = time.perf_counter() - started
        assert job["state"] == "succeeded" and count(db, "items_job") == ROWS, job

        driver = Settings().db_driver  # GATEWAY_DB_DRIVER, or the default
        print(f"{ROWS} rows, {size_mb:.0f} MB CSV, driver={driver}, 1 uvicorn worker, 2 cores shared with MariaDB and the clients")
        print(f"(a) LOAD DATA LOCAL INFILE      {ROWS / t_load:>10,.0f} rows/s  {t_load:6.2f} s")
        print(f"(b) gateway import             {ROWS / t_import:>10,.0f} rows/s  {t_import:6.2f} s  peak RSS {rss_import:.0f} MB")
        print(f"(c) mariadb --batch SELECT     {ROWS / t_client:>10,.0f} rows/s  {t_client:6.2f} s")
        print(f"(d) gateway export             {ROWS / t_export:>10,.0f} rows/s  {t_export:6.2f} s  peak RSS {rss_export:.0f} MB")
        print(f"(e) re-import, all duplicates  {ROWS / t_again:>10,.0f} rows/s  {t_again:6.2f} s  peak RSS {rss_again:.0f} MB")
        print(f"(f) import, half duplicates    {ROWS / t_half:>10,.0f} rows/s  {t_half:6.2f} s  peak RSS {rss_half:.0f} MB")
        print(f"(g) import, 10 JSON Schema rules {ROWS / t_rules:>8,.0f} rows/s  {t_rules:6.2f} s  peak RSS {rss_rules:.0f} MB")
        print(f"(h) validate against the rules  {ROWS / t_validate:>10,.0f} rows/s  {t_validate:6.2f} s  peak RSS {rss_validate:.0f} MB")
        print(f"(i) import JSON Lines           {ROWS / t_json:>10,.0f} rows/s  {t_json:6.2f} s  peak RSS {rss_json:.0f} MB")
        print(f"(j) import XLSX ({XLSX_ROWS} rows)   {XLSX_ROWS / t_xlsx:>10,.0f} rows/s  {t_xlsx:6.2f} s  peak RSS {rss_xlsx:.0f} MB")
        print(f"(k) export JSON Lines           {ROWS / t_export_jsonl:>10,.0f} rows/s  {t_export_jsonl:6.2f} s  peak RSS {rss_export_jsonl:.0f} MB")
        print(f"(l) export XLSX ({XLSX_ROWS} rows)   {XLSX_ROWS / t_export_xlsx:>10,.0f} rows/s  {t_export_xlsx:6.2f} s  peak RSS {rss_export_xlsx:.0f} MB")
        print(f"(p) export Parquet             {ROWS / t_export_parquet:>10,.0f} rows/s  {t_export_parquet:6.2f} s  peak RSS"
              f" {rss_export_parquet:.0f} MB  {parquet.stat().st_size / 1e6:.1f} MB (the CSV: {out.stat().st_size / 1e6:.1f} MB)")
        print(f"(q) import that Parquet file   {ROWS / t_parquet:>10,.0f} rows/s  {t_parquet:6.2f} s  peak RSS {rss_parquet:.0f} MB")
        print(f"(m) import job, upload to done {ROWS / t_job:>10,.0f} rows/s  {t_job:6.2f} s  peak RSS {rss_job:.0f} MB")
        print(f"(n) import job from S3          {ROWS / t_s3:>10,.0f} rows/s  {t_s3:6.2f} s  peak RSS {rss_s3:.0f} MB")
        print(f"(o) at {link} MB/s: import {ROWS / t_link_sync:,.0f} rows/s ({t_link_sync:.2f} s), job {ROWS / t_link_job:,.0f} rows/s ({t_link_job:.2f} s)")
        load_rate, select_rate = ROWS / t_load, ROWS / t_client
        print(f"import b/a = {t_load / t_import:.2f}x   export d/c = {t_client / t_export:.2f}x"
              f"   all-duplicate e/b = {t_import / t_again:.2f}x   half-duplicate f/b = {t_import / t_half:.2f}x")
        print(f"rules g/a = {t_load / t_rules:.2f}x   validate h/a = {t_load / t_validate:.2f}x   jsonl i/a = {t_load / t_json:.2f}x"
              f"   xlsx j/a = {XLSX_ROWS / t_xlsx / load_rate:.2f}x   export jsonl k/c = {t_client / t_export_jsonl:.2f}x"
              f"   export xlsx l/c = {XLSX_ROWS / t_export_xlsx / select_rate:.2f}x")
        print(f"export parquet p/c = {t_client / t_export_parquet:.2f}x   import parquet q/a = {t_load / t_parquet:.2f}x"
              f"   q/b (against the CSV import) = {t_import / t_parquet:.2f}x")
        print(f"job m/b = {t_import / t_job:.2f}x   s3 job n/b = {t_import / t_s3:.2f}x   job over a {link} MB/s link"
              f" = {t_link_sync / t_link_job:.2f}x   (against the synchronous import; m/a = {t_load / t_job:.2f}x, n/a = {t_load / t_s3:.2f}x)")
    finally:
        if proc is not None:
            proc.terminate()
        if s3 is not None:
            s3.stop()
            proc.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)
        admin.ping(reconnect=True)
        admin.cursor().execute(f"DROP DATABASE IF EXISTS `{name}`")


if __name__ == "__main__":
    main()
