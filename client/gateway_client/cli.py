"""gateway-client: import, export, validate, tables.

    gateway-client import employees.csv --url http://localhost:8000 --table employees \
        --batch-rows 5000 --concurrency 4 [--mode http|ws|kafka] [--api-key K | --token T] [--resume] [--json]
    gateway-client export employees -o employees.xlsx [--where 'age=gte.18&city=Paris']
    gateway-client validate employees.csv
    gateway-client tables

The URL, key and token may also come from GATEWAY_URL, GATEWAY_API_KEY and GATEWAY_TOKEN, Kafka's
address from GATEWAY_KAFKA_BOOTSTRAP. Exit
codes: 0 when every row is in the table or in the failed file as refused; 1 with a one-line reason
otherwise (the state file says where to resume); 2 for a bad command line.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from gateway_client import readers
from gateway_client.transports import Stop
from gateway_client.uploader import Importer, Options

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Move files in and out of the MySQL REST gateway.")
err = Console(stderr=True)

Url = Annotated[str, typer.Option(envvar="GATEWAY_URL", help="the gateway's address")]
ApiKey = Annotated[Optional[str], typer.Option("--api-key", envvar="GATEWAY_API_KEY", help="sent as X-API-Key")]
Token = Annotated[Optional[str], typer.Option("--token", envvar="GATEWAY_TOKEN", help="sent as a Bearer token")]
Null = Annotated[
    Optional[str],
    typer.Option(
        "--null",
        help="CSV: the text that is NULL, e.g. '\\N' for MySQL's tools (by default an empty cell is NULL and \"\" the"
        " empty string, as pandas, DuckDB and spreadsheets read it)",
    ),
]


def _headers(api_key: str | None, token: str | None) -> dict[str, str]:
    if api_key and token:
        raise typer.BadParameter("give --api-key or --token, not both")
    if api_key:
        return {"X-API-Key": api_key}
    return {"Authorization": f"Bearer {token}"} if token else {}


def _fail(message: str, code: int = 1) -> None:
    err.print(f"gateway-client: {message}", markup=False, highlight=False)
    raise typer.Exit(code)


class PlainProgress:
    """For logs and CI: a line every few seconds."""

    def __init__(self, total_bytes: int, every_s: float = 5.0):
        self.total, self.every = total_bytes, every_s
        self.rows = self.sent = 0
        self.started = self.last = time.monotonic()

    def __call__(self, rows: int, sent: int) -> None:
        self.rows += rows
        self.sent += sent
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            rate = self.rows / (now - self.started)
            share = f", {min(100.0, 100 * self.sent / self.total):.0f}% of the bytes" if self.total else ""
            print(f"{self.rows:,} rows, {rate:,.0f} rows/s{share}", flush=True)


@app.command("import")
def import_file(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="CSV, TSV, JSON Lines, XLSX/XLS/ODS")],
    url: Url = "http://localhost:8000",
    table: Annotated[Optional[str], typer.Option(help="the table (the file's name by default)")] = None,
    batch_rows: Annotated[
        Optional[int], typer.Option(min=1, max=100_000, help="rows per batch (http 20,000, ws and kafka 1,000)")
    ] = None,
    concurrency: Annotated[int, typer.Option(min=1, max=64, help="batches in flight")] = 4,
    mode: Annotated[
        str, typer.Option(help="http (uploads), ws (the gateway's WebSocket) or kafka (a topic its ingest reads)")
    ] = "http",
    kafka_bootstrap: Annotated[
        str, typer.Option(envvar="GATEWAY_KAFKA_BOOTSTRAP", help="kafka: host:port[,host:port]")
    ] = "",
    topic: Annotated[Optional[str], typer.Option(help="kafka: the topic (the table's name by default)")] = None,
    on_duplicate: Annotated[str, typer.Option(help="insert (a duplicate is refused), ignore or upsert")] = "insert",
    sheet: Annotated[Optional[str], typer.Option(help="spreadsheets: the sheet (the first by default)")] = None,
    retries: Annotated[int, typer.Option(min=0, max=100, help="retries of one batch before the run stops")] = 8,
    resume: Annotated[bool, typer.Option(help="send only the batches an earlier run did not confirm")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print the final report as JSON")] = False,
    null: Null = None,
    api_key: ApiKey = None,
    token: Token = None,
) -> None:
    """Import a file in concurrent, retried, idempotent batches."""
    if mode not in ("http", "ws", "kafka"):
        _fail("--mode is http, ws or kafka", 2)
    if on_duplicate not in ("insert", "ignore", "upsert"):
        _fail("--on-duplicate is insert, ignore or upsert", 2)
    if mode == "ws" and on_duplicate == "ignore":
        _fail("--mode ws takes --on-duplicate insert or upsert", 2)
    if mode == "kafka" and on_duplicate != "insert":
        _fail("--mode kafka: the ingest source's own mode decides what a duplicate does (its `mode=` option)", 2)
    if mode == "kafka" and not kafka_bootstrap:
        _fail("--mode kafka needs --kafka-bootstrap (or GATEWAY_KAFKA_BOOTSTRAP)", 2)
    try:
        readers.kind_of(file)
    except readers.FileProblem as exc:
        _fail(str(exc), 2)
    options = Options(
        path=file,
        url=url,
        table=table or file.name.split(".")[0],
        mode=on_duplicate,
        batch_rows=batch_rows or (20000 if mode == "http" else 1000),
        concurrency=concurrency,
        retries=retries,
        resume=resume,
        sheet=sheet,
        headers=_headers(api_key, token),
        transport=mode,
        kafka_bootstrap=kafka_bootstrap,
        topic=topic or "",
        null=null,
    )
    size = file.stat().st_size
    interactive = sys.stdout.isatty() and not as_json
    try:
        if interactive:
            columns = (
                TextColumn("{task.fields[rows]:,} rows"),
                TextColumn("{task.fields[rate]:,.0f} rows/s"),
                BarColumn(),
                DownloadColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
            )
            with Progress(*columns) as bar:
                task = bar.add_task("import", total=size, rows=0, rate=0.0)
                started = time.monotonic()
                counted = {"rows": 0}

                def advance(rows: int, sent: int) -> None:
                    counted["rows"] += rows
                    rate = counted["rows"] / max(time.monotonic() - started, 1e-6)
                    bar.update(task, advance=sent, rows=counted["rows"], rate=rate)

                report = asyncio.run(Importer(options, advance).run())
        else:
            report = asyncio.run(Importer(options, PlainProgress(size) if not as_json else lambda r, s: None).run())
    except Stop as exc:
        _fail(str(exc))
    except readers.FileProblem as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        _fail("interrupted: what was confirmed is saved; run again with --resume", 130)
    if as_json:
        print(json.dumps(report.as_dict()))
    else:
        written = report.rows_inserted + report.rows_updated
        if mode == "kafka":
            print(
                f"{report.rows_read:,} rows read, {report.rows_published:,} published to "
                f"{options.topic or options.table},"
                f" {report.rows_failed:,} refused in {report.elapsed_s:.1f} s ({report.rows_per_s:,.0f} rows/s);"
                " the gateway's ingest applies them (refused rows go to its dead letters)"
            )
        else:
            print(
                f"{report.rows_read:,} rows read, {written:,} written, {report.rows_skipped:,} skipped,"
                f" {report.rows_failed:,} refused in {report.elapsed_s:.1f} s ({report.rows_per_s:,.0f} rows/s)"
            )
        if report.failed_file:
            print(f"refused rows, with their line and reason: {report.failed_file}")


@app.command()
def export(
    table: str,
    output: Annotated[Path, typer.Option("-o", "--output", help=".csv, .jsonl, .xlsx or .parquet: the format")],
    where: Annotated[str, typer.Option(help="filters as in /query: 'age=gte.18&city=Paris'")] = "",
    url: Url = "http://localhost:8000",
    null: Null = None,
    api_key: ApiKey = None,
    token: Token = None,
) -> None:
    """Stream a table out to a file (written whole or not at all)."""
    fmt = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".xlsx": "xlsx", ".parquet": "parquet"}.get(
        output.suffix.lower()
    )
    if fmt is None:
        _fail("the output's extension chooses the format: .csv, .jsonl, .xlsx or .parquet", 2)
    params = httpx.QueryParams(where).merge({"format": fmt} | ({} if null is None else {"null": null}))
    partial = output.with_name(output.name + ".part")
    try:
        with httpx.stream(
            "GET", f"{url}/api/batch/{table}/export", params=params, headers=_headers(api_key, token), timeout=None
        ) as response:
            if response.status_code != 200:
                response.read()
                _fail(_said(response))
            with partial.open("wb") as f:
                for chunk in response.iter_bytes():
                    f.write(chunk)
    except httpx.HTTPError as exc:
        partial.unlink(missing_ok=True)
        _fail(f"the export broke off ({type(exc).__name__}): nothing was written to {output}")
    partial.replace(output)
    print(f"{output} ({output.stat().st_size:,} bytes)")


@app.command()
def validate(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False)],
    table: Annotated[Optional[str], typer.Option()] = None,
    url: Url = "http://localhost:8000",
    null: Null = None,
    api_key: ApiKey = None,
    token: Token = None,
) -> None:
    """Check a file as an import would, writing nothing (exit 1 if any row would be refused)."""
    params = {"table": table or file.name.split(".")[0]} | ({} if null is None else {"null": null})
    with file.open("rb") as f:
        try:
            response = httpx.post(
                f"{url}/api/batch/validate",
                params=params,
                files={"file": (file.name, f)},
                headers=_headers(api_key, token),
                timeout=None,
            )
        except httpx.HTTPError as exc:
            _fail(f"no answer from {url} ({type(exc).__name__})")
    if response.status_code != 200:
        _fail(_said(response))
    report = response.json()["data"]
    print(json.dumps(report, indent=2))
    if report["rows_failed"]:
        raise typer.Exit(1)


@app.command()
def tables(url: Url = "http://localhost:8000", api_key: ApiKey = None, token: Token = None) -> None:
    """The tables the gateway exposes to you."""
    try:
        response = httpx.get(f"{url}/api/tables", headers=_headers(api_key, token), timeout=30)
    except httpx.HTTPError as exc:
        _fail(f"no answer from {url} ({type(exc).__name__})")
    if response.status_code != 200:
        _fail(_said(response))
    for table in response.json()["data"]:
        print(f"{table['name']}\t{table['columns']} columns\tkey: {','.join(table['primary_key']) or '-'}")


def _said(response: httpx.Response) -> str:
    try:
        body = response.json()
        return f"{response.status_code} {body.get('error')}: {body.get('message')}"
    except ValueError:
        return f"{response.status_code}: {response.text[:200]}"


def main() -> None:
    app()
