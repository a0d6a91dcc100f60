"""Settings from the environment (pydantic-settings).

`DATABASE_URL`, `HOST` and `PORT` keep their conventional names; everything else is `GATEWAY_*`.
"""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import parse_qs, unquote, urlsplit

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

CsvInts = Annotated[tuple[int, ...], NoDecode]
CsvStrs = Annotated[tuple[str, ...], NoDecode]


def _split(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return tuple(value)  # type: ignore[arg-type]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore", frozen=True, populate_by_name=True)

    database_url: str = Field(
        "mysql://root@127.0.0.1:3306/test",
        validation_alias=AliasChoices("DATABASE_URL", "GATEWAY_DATABASE_URL"),
    )
    host: str = Field("127.0.0.1", validation_alias=AliasChoices("HOST", "GATEWAY_HOST"))
    port: int = Field(8000, validation_alias=AliasChoices("PORT", "GATEWAY_PORT"))

    # Read replicas: plain reads go to a healthy one; a failing one is left out for replica_pause_s.
    replica_urls: CsvStrs = Field((), validation_alias=AliasChoices("DATABASE_REPLICA_URLS", "GATEWAY_REPLICA_URLS"))
    replica_pause_s: float = Field(5.0, gt=0)
    # Galera (DATABASE_URL naming several nodes): each node's state is read every node_probe_s, and
    # only Synced nodes of the primary component are used. Sessions run with wsrep_sync_wait =
    # galera_sync_wait (1: a read sees every write committed anywhere before it; 0: off).
    node_probe_s: float = Field(1.0, gt=0)
    galera_sync_wait: int = Field(1, ge=0, le=15)

    # Driver: asyncmy (Cython) decodes rows about twice as fast as aiomysql (pure Python), which
    # stays available (same API; bench/crud.py measures both).
    db_driver: Literal["aiomysql", "asyncmy"] = "asyncmy"
    pool_max: int = Field(20, ge=1)

    # The retry schedule: one timeout per attempt, one wait before each attempt after the first.
    attempt_timeouts_ms: CsvInts = (200, 400, 800, 1600)
    retry_waits_ms: CsvInts = (400, 800, 1600)
    # A COMMIT cannot be retried, so it gets its own deadline instead of the attempt's remainder.
    commit_timeout_ms: int = Field(5000, ge=1)
    # Import batches (thousands of rows per statement): the same rules with longer attempts.
    bulk_attempt_timeouts_ms: CsvInts = (2000, 4000, 8000, 16000)
    # Reads that may legitimately take seconds (aggregates, exports, exact counts), chosen by the
    # route: the same rules with longer attempts.
    slow_read_attempt_timeouts_ms: CsvInts = (2000, 4000, 8000, 16000)
    # How long killing a timed-out statement on the server may take before we give up on it.
    kill_timeout_ms: int = Field(500, ge=1)
    # Outside the wrapper (after an export's first byte; statements of an atomic import), each
    # batch or statement is bounded by these instead.
    stream_timeout_s: float = Field(30.0, gt=0)
    statement_timeout_s: float = Field(60.0, gt=0)

    default_limit: int = Field(100, ge=1)
    max_limit: int = Field(1000, ge=1)
    max_bulk_rows: int = Field(1000, ge=1)
    max_body_bytes: int = Field(10 * 1024 * 1024, ge=1)

    # CSV import / export
    max_upload_bytes: int = Field(10 * 1024**3, ge=1)
    csv_max_record_bytes: int = Field(16 * 1024**2, ge=1024)
    import_batch_rows: int = Field(5000, ge=1)
    import_batch_bytes: int = Field(4 * 1024**2, ge=1024)
    import_writers: int = Field(3, ge=1)  # 3 keeps the server busy while Python reads (measured: 2 left it idle)
    # Plain and ignore imports go in by LOAD DATA LOCAL (from memory, never a file) when the server
    # allows it; off, they use multi-row INSERTs like upserts and atomic imports.
    import_load_data: bool = True
    import_max_errors: int = Field(100, ge=1)
    export_batch_rows: int = Field(2000, ge=1)
    # Spreadsheets are spooled to a temporary file (in this directory; the system's by default) and
    # refused with 413, before they are expanded, past these sizes (zip bombs).
    spool_dir: str | None = None
    spreadsheet_max_uncompressed_bytes: int = Field(256 * 1024**2, ge=1024)
    spreadsheet_max_cells: int = Field(750_000, ge=1)  # calamine holds the sheet: ~90 MB a million cells
    # A write is checked against a table's rules (JSON Schema) as read at most this long ago (a
    # small query by key when older): a rule stored on one instance binds every instance within
    # it; 0 reads them before every write. Imports read them when they start.
    rules_ttl_s: float = Field(1.0, ge=0)

    # Import jobs (app/jobs): per instance, `job_workers` jobs at a time; a running job's lease is
    # renewed every `job_heartbeat_s` (progress saved, cancellation noticed) and another instance may
    # take the job over once it has not been renewed for `job_lease_s`. A job that met an outage is
    # tried again after `job_retry_s`, up to `job_max_attempts` attempts. Ended jobs are kept for
    # `job_retention_s`. Uploads are stored in the database, compressed, `job_chunk_bytes` a row.
    job_workers: int = Field(1, ge=0)
    job_lease_s: float = Field(15.0, gt=0)
    job_heartbeat_s: float = Field(1.0, gt=0)
    job_poll_s: float = Field(1.0, gt=0)
    job_retry_s: float = Field(5.0, ge=0)
    job_max_attempts: int = Field(5, ge=1)
    job_retention_s: int = Field(7 * 86400, ge=1)
    job_chunk_bytes: int = Field(1024**2, ge=4096)  # 4 MiB chunks cost 30 MB more at the peak (measured)
    # Buckets a job may read from (s3://bucket/key); none by default. Endpoint and credentials come
    # from the standard AWS environment (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...).
    s3_buckets: CsvStrs = ()

    # Logs: `json` (one object a line) or `text`; one access line a request unless turned off.
    log_format: Literal["json", "text"] = "json"
    log_level: str = "info"
    access_log: bool = True
    log_flush_ms: int = Field(100, ge=0)  # lines are written in bunches at most this far apart (0: each at once)

    # How long an Idempotency-Key is remembered.
    idempotency_ttl_s: int = Field(86400, ge=1)

    # Who may call (see app/core/auth.py).
    auth_mode: Literal["none", "api-key", "jwt"] = "none"
    api_keys: str | None = None  # JSON: [{"name": ..., "sha256": <hex of the key>, "scopes": [...]}]
    api_keys_file: str | None = None
    jwt_algorithm: Literal["HS256", "RS256", "ES256"] = "HS256"
    jwt_secret: str | None = None
    jwt_public_key_file: str | None = None
    jwt_audience: str | None = None
    jwt_issuer: str | None = None

    # Per client and action, per instance: e.g. "read=200/s,write=50/s,import=2/min". Empty: no limits.
    rate_limits: str = ""

    # Browser origins allowed to call the gateway cross-origin (none by default).
    cors_origins: CsvStrs = ()

    # Streams (app/streams): rows from a WebSocket or a broker are committed in groups of up to
    # `stream_group_rows` rows, waiting at most `stream_group_ms` for more; a message's id is
    # remembered `stream_id_retention_s` (a resent or redelivered message is recognised that long).
    stream_group_rows: int = Field(10000, ge=1)
    stream_group_ms: float = Field(5.0, ge=0)
    stream_id_retention_s: int = Field(7 * 86400, ge=60)
    # A WebSocket message over this closes the connection (1009); a connection has at most
    # `ws_max_in_flight` messages unanswered (past it the server stops reading); a browser that
    # cannot set a header sends {"token": ...} first, within `ws_auth_timeout_s`.
    ws_max_message_bytes: int = Field(4 * 1024 * 1024, ge=1024)
    ws_max_in_flight: int = Field(64, ge=1)
    ws_auth_timeout_s: float = Field(10.0, gt=0)
    # The ingest process (`python -m app ingest`): its broker sources (docs/ARCHITECTURE.md, README)
    # and the port of its /health and /metrics.
    ingest_sources: str = ""
    ingest_port: int = 8001

    tables_allow: CsvStrs = ()
    tables_deny: CsvStrs = ()
    catalog_ttl_s: float = Field(60.0, gt=0)

    @field_validator("attempt_timeouts_ms", "retry_waits_ms", "bulk_attempt_timeouts_ms", "slow_read_attempt_timeouts_ms", mode="before")
    @classmethod
    def _ints(cls, value: object) -> tuple[int, ...]:
        return tuple(int(v) for v in _split(value))

    @field_validator("tables_allow", "tables_deny", "cors_origins", "replica_urls", "s3_buckets", mode="before")
    @classmethod
    def _strs(cls, value: object) -> tuple[str, ...]:
        return _split(value)

    @field_validator("retry_waits_ms")
    @classmethod
    def _waits_fit(cls, waits: tuple[int, ...], info) -> tuple[int, ...]:  # type: ignore[no-untyped-def]
        timeouts = info.data.get("attempt_timeouts_ms", ())
        if timeouts and len(waits) < len(timeouts) - 1:
            raise ValueError("retry_waits_ms needs one wait per retry (len(attempt_timeouts_ms) - 1)")
        return waits

    @property
    def db(self) -> "DatabaseAddress":
        return DatabaseAddress.parse(self.database_url)

    @property
    def db_nodes(self) -> list["DatabaseAddress"]:
        """The servers DATABASE_URL names: one, or the nodes of a Galera cluster."""
        return DatabaseAddress.parse_nodes(self.database_url)


class DatabaseAddress:
    """The parts of `mysql://user:password@host:port/database?unix_socket=/path`."""

    def __init__(self, host: str, port: int, user: str, password: str, database: str, unix_socket: str | None):
        self.host, self.port, self.user, self.password = host, port, user, password
        self.database, self.unix_socket = database, unix_socket

    def connect_kwargs(self) -> dict:
        """user, password and where to connect, in the keywords PyMySQL, aiomysql and asyncmy share."""
        kwargs: dict = {"user": self.user, "password": self.password}
        if self.unix_socket:
            kwargs["unix_socket"] = self.unix_socket
        else:
            kwargs["host"], kwargs["port"] = self.host, self.port
        return kwargs

    @property
    def where(self) -> str:
        """host:port (or the socket), for logs, health and metrics: never the credentials."""
        return self.unix_socket or f"{self.host}:{self.port}"

    @classmethod
    def parse(cls, url: str) -> "DatabaseAddress":
        """The first (or only) server of a DATABASE_URL."""
        return cls.parse_nodes(url)[0]

    @classmethod
    def parse_nodes(cls, url: str) -> list["DatabaseAddress"]:
        """Every server a DATABASE_URL names. Several nodes of a Galera cluster are listed by
        commas: mysql://user:password@host1:3306,host2:3306,host3/database (3306 by default)."""
        parts = urlsplit(url)
        if parts.scheme not in ("mysql", "mariadb", "mysql+aiomysql", "mysql+asyncmy"):
            raise ValueError("DATABASE_URL must start with mysql:// or mariadb://")
        query = parse_qs(parts.query)
        socket = query.get("unix_socket", [None])[0]
        database = unquote(parts.path.lstrip("/"))
        if not database:
            raise ValueError("DATABASE_URL must name a database: mysql://user@host:3306/dbname")
        credentials, _, hosts = parts.netloc.rpartition("@")
        user, _, password = credentials.partition(":")
        nodes = [_host_port(h) for h in hosts.split(",")]
        if len(nodes) > 1 and socket:
            raise ValueError("DATABASE_URL: several nodes are reached over TCP, not through unix_socket")
        return [
            cls(host=host, port=port, user=unquote(user or "root"), password=unquote(password),
                database=database, unix_socket=socket)
            for host, port in nodes
        ]


def _host_port(text: str) -> tuple[str, int]:
    """`host`, `host:port`, `[v6]` or `[v6]:port` -> (host, port)."""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest.removeprefix(":")
    else:
        host, _, port = text.rpartition(":") if ":" in text else (text, "", "")
    if port and not (port.isdigit() and 0 < int(port) < 65536):
        raise ValueError(f"DATABASE_URL: {port!r} is not a port")
    return host or "localhost", int(port or 3306)
