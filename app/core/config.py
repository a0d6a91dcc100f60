"""Settings from the environment (pydantic-settings).

`DATABASE_URL`, `HOST` and `PORT` keep their conventional names; everything else is `GATEWAY_*`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any, Literal
from urllib.parse import parse_qs, unquote, urlsplit

from pydantic import AliasChoices, Field, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

CsvInts = Annotated[tuple[int, ...], NoDecode]
CsvStrs = Annotated[tuple[str, ...], NoDecode]


def _split(value: str | Iterable[str]) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return tuple(value)


def _(default: Any, description: str, **constraints: Any) -> Any:
    """A setting: its default, what it means (docs/configuration.md is made from these), its bounds."""
    return Field(default, description=" ".join(description.split()), **constraints)


class Settings(BaseSettings):
    """Every setting, from the environment: `DATABASE_URL`, `DATABASE_REPLICA_URLS`, `HOST` and `PORT`
    keep their conventional names; everything else is `GATEWAY_` and the name in capitals."""

    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore", frozen=True, populate_by_name=True)

    # --- the database ---
    database_url: str = Field(
        "mysql://root@127.0.0.1:3306/test",
        validation_alias=AliasChoices("DATABASE_URL", "GATEWAY_DATABASE_URL"),
        description="`mysql://user:password@host:port/database`, or `...@localhost/db?unix_socket=/path`; the nodes"
        " of a Galera cluster: `...@h1:3306,h2:3306,h3:3306/database` (docs/operations.md)",
    )
    replica_urls: CsvStrs = Field(
        (),
        validation_alias=AliasChoices("DATABASE_REPLICA_URLS", "GATEWAY_REPLICA_URLS"),
        description="comma-separated read replicas: list pages, by-key GETs and exports go to a healthy one",
    )
    replica_pause_s: float = _(
        5.0, "a replica that fails is left out this long; its reads go to the primary meanwhile", gt=0
    )
    node_probe_s: float = _(
        1.0,
        "with several nodes: how often each node's state is read (a node is used only when Synced and Primary)",
        gt=0,
    )
    galera_sync_wait: int = _(
        1,
        "with several nodes: the sessions' `wsrep_sync_wait` (1: a read sees every write committed"
        " before it on any node; 0: off)",
        ge=0,
        le=15,
    )
    db_driver: Literal["aiomysql", "asyncmy"] = _(
        "asyncmy", "`asyncmy` (Cython: rows decode about twice as fast), or `aiomysql` (pure Python, the same API)"
    )
    pool_max: int = _(
        20,
        "connections per pool (each node has a read pool and a write pool); pools start empty and fill on demand",
        ge=1,
    )

    # --- the retry schedule ---
    attempt_timeouts_ms: CsvInts = _((200, 400, 800, 1600), "one timeout per attempt")
    retry_waits_ms: CsvInts = _((400, 800, 1600), "the wait before each attempt after the first")
    commit_timeout_ms: int = _(
        5000,
        "how long a COMMIT may take to answer (it is never retried, so it gets its own"
        " deadline instead of what is left of its attempt's)",
        ge=1,
    )
    bulk_attempt_timeouts_ms: CsvInts = _(
        (2000, 4000, 8000, 16000),
        "the attempt timeouts of import batches and bulk POSTs over 100 rows (the same waits and rules)",
    )
    slow_read_attempt_timeouts_ms: CsvInts = _(
        (2000, 4000, 8000, 16000),
        "the attempt timeouts of reads that may take seconds: aggregates, `count=exact`, exports",
    )
    kill_timeout_ms: int = _(500, "how long killing a timed-out statement on the server may take", ge=1)
    single_statement_writes: bool = _(
        True,
        "a write that is one statement (a POST, a DELETE by key, a filtered PUT or DELETE on a table without"
        " rules), with no `Idempotency-Key`, commits by itself: one round trip instead of two. Its outcome is"
        " still known whenever the server answers (docs/contract.md); false: a transaction, as keyed writes",
    )
    stream_timeout_s: float = _(30.0, "an export's batch, after its first bytes are sent (outside the wrapper)", gt=0)
    statement_timeout_s: float = _(60.0, "a statement of an atomic import (outside the wrapper)", gt=0)

    # --- requests ---
    host: str = Field(
        "127.0.0.1",
        validation_alias=AliasChoices("HOST", "GATEWAY_HOST"),
        description="where `make run` and `python -m app` listen",
    )
    port: int = Field(
        8000, validation_alias=AliasChoices("PORT", "GATEWAY_PORT"), description="the port they listen on"
    )
    workers: int = _(1, "uvicorn worker processes for `python -m app` (the cores the gateway may use)", ge=1)
    graceful_shutdown_s: int = _(10, "on SIGTERM, how long requests in flight may take to finish", ge=0)
    default_limit: int = _(100, "a list page's size when none is given", ge=1)
    max_limit: int = _(1000, "the largest `limit` of a list page", ge=1)
    max_bulk_rows: int = _(
        1000, "rows in one `POST /api/{table}` (and rows a filtered update of a table with rules may change)", ge=1
    )
    max_body_bytes: int = _(10 * 1024 * 1024, "a JSON body's limit (uploads have their own)", ge=1)
    cors_origins: CsvStrs = _((), "comma-separated browser origins allowed to call cross-origin (none by default)")

    # --- files in and out ---
    max_upload_bytes: int = _(10 * 1024**3, "an upload's limit (10 GiB)", ge=1)
    csv_max_record_bytes: int = _(16 * 1024**2, "the longest CSV record (a quote that never ends stops here)", ge=1024)
    import_batch_rows: int = _(5000, "rows per batch (one LOAD DATA or INSERT, one transaction), at most", ge=1)
    import_batch_bytes: int = _(4 * 1024**2, "bytes of text per batch, at most", ge=1024)
    import_writers: int = _(
        3,
        "batches written at once, on separate connections (3 keeps the server busy while Python reads; 2 left it idle)",
        ge=1,
    )
    import_load_data: bool = _(
        True,
        "plain and `ignore` imports go in by `LOAD DATA LOCAL` from memory (never a file)"
        " when the server allows it; off, by multi-row INSERTs like upserts",
    )
    import_max_errors: int = _(100, "bad rows listed in a report (all are counted)", ge=1)
    export_batch_rows: int = _(2000, "rows read from the server-side cursor at a time", ge=1)
    spool_dir: str | None = _(
        None,
        "where spreadsheet uploads and XLSX exports are spooled, and removed after (the"
        " system's temporary directory by default)",
    )
    spreadsheet_max_uncompressed_bytes: int = _(
        256 * 1024**2,
        "a spreadsheet's parts may expand to this much, at most (413 beyond, decided from the zip directory)",
        ge=1024,
    )
    spreadsheet_max_cells: int = _(
        750_000,
        "cells below the header in the sheet read, at most (413 beyond; calamine holds"
        " a sheet while it is read, about 90 MB a million cells)",
        ge=1,
    )
    policies_ttl_s: float = _(
        1.0, "row policies are read again when this instance's copy is older (a policy stored anywhere is"
        " enforced everywhere within this)", ge=0,
    )
    rules_ttl_s: float = _(
        1.0,
        "a write is checked against a table's rules as read at most this long ago (read again,"
        " one query by key, when older); 0: before every write. Imports read them when they"
        " start",
        ge=0,
    )

    # --- import jobs ---
    job_workers: int = _(1, "import jobs each instance runs at once (0: it runs none, but still takes uploads)", ge=0)
    job_lease_s: float = _(15.0, "another instance takes a job over when its lease is this old", gt=0)
    job_heartbeat_s: float = _(
        1.0, "a running job's lease is renewed this often (progress saved, a cancel noticed)", gt=0
    )
    job_poll_s: float = _(
        1.0, "how often an idle worker looks for queued jobs (an upload to the same instance wakes it at once)", gt=0
    )
    job_retry_s: float = _(5.0, "a job stopped by a database outage is resumed after this long", ge=0)
    job_max_attempts: int = _(5, "... for at most this many attempts", ge=1)
    job_retention_s: int = _(7 * 86400, "ended jobs are listed this long, then forgotten", ge=1)
    job_chunk_bytes: int = _(
        1024**2,
        "an async upload is stored in chunks of this size, compressed (4 MiB chunks cost 30 MB more at the peak)",
        ge=4096,
    )
    s3_buckets: CsvStrs = _(
        (),
        "comma-separated buckets jobs may read (`s3://bucket/key`); the endpoint and credentials"
        " are the AWS environment's (`AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, ...)",
    )

    # --- streams ---
    stream_group_rows: int = _(10000, "stream messages are committed in groups of up to this many rows ...", ge=1)
    stream_group_ms: float = _(5.0, "... waiting at most this long for more", ge=0)
    stream_id_retention_s: int = _(
        7 * 86400, "how long a stream message's id is remembered (a resent or redelivered one is recognised)", ge=60
    )
    ws_max_message_bytes: int = _(
        4 * 1024 * 1024, "a WebSocket message over this closes the connection (1009)", ge=1024
    )
    ws_max_in_flight: int = _(64, "unanswered messages per WebSocket before the gateway stops reading it", ge=1)
    ws_auth_timeout_s: float = _(10.0, 'how long a browser has to send `{"token": ...}` first', gt=0)
    ingest_sources: str = _("", "the ingest process's broker sources (docs/data.md, streams)")
    ingest_port: int = _(8001, "the ingest process's `/health` and `/metrics`")

    # --- who may call ---
    auth_mode: Literal["none", "api-key", "jwt"] = _("none", "`none`, `api-key` or `jwt` (docs/api.md, who may call)")
    api_keys: str | None = _(None, 'JSON: `[{"name": ..., "sha256": <hex of the key>, "scopes": [...]}]`')
    api_keys_file: str | None = _(None, "a file holding that JSON")
    jwt_algorithm: Literal["HS256", "RS256", "ES256"] = _("HS256", "`HS256`, `RS256` or `ES256`")
    jwt_secret: str | None = _(None, "the HS256 secret")
    jwt_public_key_file: str | None = _(None, "the RS256 or ES256 public key (PEM)")
    jwt_jwks_url: str | None = _(
        None, "an identity provider's JWKS URL (Keycloak, Auth0, any OpenID provider): RS256/ES256 tokens are checked"
        " against its keys, by the token's `kid`"
    )
    jwt_jwks_min_refresh_s: float = _(
        60.0, "a token naming an unknown `kid` fetches the JWKS again at most this often", gt=0
    )
    jwt_audience: str | None = _(None, "checked when set")
    jwt_issuer: str | None = _(None, "checked when set")
    accounts_ttl_s: float = _(
        1.0, "keys and accounts kept in the database (/api/admin/...) are read again when this instance's copy is"
        " older: a key revoked or rotated anywhere stops working everywhere within this", ge=0,
    )
    token_secret: str | None = _(
        None, "the HS256 secret POST /token signs its access tokens with (at least 32 characters); without it,"
        " GATEWAY_JWT_SECRET when the mode is jwt with HS256; neither: the gateway issues no tokens",
        min_length=32,
    )
    access_token_ttl_s: int = _(300, "how long an access token from POST /token lasts", ge=1, le=86400)
    refresh_token_ttl_s: int = _(
        14 * 86400, "how long a refresh token lasts unused (each use replaces it)", ge=60
    )
    token_rate_limits: str = _(
        "account=10/min,address=60/min",
        "POST /token attempts per account (login or key id) and per client address, per instance (429 past it)",
    )
    audit: bool | None = _(
        None, "the audit trail (`_gateway_audit`, GET /api/admin/audit): who changed which rows, rules, policies"
        " and keys; on by default when the auth mode is not `none` (where every caller is `anonymous`)",
    )
    rate_limits: str = _(
        "", "per caller and action, per instance: `read=200/s,write=50/s,import=2/min,export=10/min` (empty: no limits)"
    )
    idempotency_ttl_s: int = _(86400, "how long an `Idempotency-Key` is remembered", ge=1)

    # --- the read cache ---
    cache_url: str | None = _(
        None,
        "`redis://host:6379/0`: GET by key and list/query answers are kept there, shared by every instance and"
        " dropped when their table changes (docs/api.md, the read cache); unset: no cache",
    )
    cache_ttl_s: float = _(
        300.0, "an answer is kept at most this long (a safety net: a change drops it at once)", gt=0
    )
    cache_timeout_ms: float = _(
        50.0, "each call to Redis gets this long; past it (or on any error) the database answers", gt=0
    )
    cache_namespace: str = _(
        "gateway", "the prefix of the cache's keys (the database's name follows it): gateways serving other"
        " databases may share one Redis", min_length=1,
    )
    cache_max_entry_bytes: int = _(1024 * 1024, "answers larger than this are not kept", ge=1)
    cache_local_entries: int = _(
        10_000,
        "answers each instance also keeps in its own memory (the least recently used go first), dropped by its"
        " own change feed as Redis's are: a hit there costs no round trip; 0: none",
        ge=0,
    )

    # --- the catalog ---
    tables_allow: CsvStrs = _((), "comma-separated glob patterns of the tables to expose (all by default)")
    tables_deny: CsvStrs = _((), "comma-separated glob patterns of tables to hide")
    routines_allow: CsvStrs = _(
        (), "comma-separated glob patterns of the stored procedures and functions POST /api/rpc/{name} calls (all by"
        " default; with auth on, a caller needs `execute:{name}`)"
    )
    routines_deny: CsvStrs = _((), "comma-separated glob patterns of procedures and functions to hide")
    catalog_ttl_s: float = _(
        60.0,
        "after this long the catalog is refreshed in the background: the tables' change stamps"
        " are listed and only new or altered tables read again",
        gt=0,
    )

    # --- the change feed (app/feed) ---
    feed: Literal["auto", "off"] = _(
        "auto",
        "`auto`: the change feed reads the binlog when first needed (a subscriber); it needs"
        " binlog_format=ROW, binlog_row_image=FULL, binlog_row_metadata=FULL and REPLICATION SLAVE and"
        " BINLOG MONITOR (REPLICATION CLIENT) grants; `off`: no feed",
    )
    feed_queue: int = _(10_000, "a subscriber more than this many changes behind is cut off, with the reason", ge=1)
    feed_buffer: int = _(
        10_000, "recent changes kept in memory: a subscriber resuming within them needs no reader of its own", ge=1
    )
    feed_heartbeat_s: float = _(1.0, "the server's heartbeat on the feed's connection when the binlog is quiet", gt=0)
    feed_sinks: str = _(
        "",
        "brokers the changes of chosen tables are published to (app/feed/sinks.py): nats://HOST:PORT?subject=S&tables=a,b,"
        " amqp://USER:PASSWORD@HOST:PORT/VHOST?queue=Q&tables=a, kafka://HOST:PORT/TOPIC?tables=a; commas between",
    )

    # --- logs ---
    log_format: Literal["json", "text"] = _("json", "`json` (one object a line) or `text`")
    log_level: str = _("info", "the log level")
    access_log: bool = _(True, "one line a request (`gateway.access`)")
    log_flush_ms: int = _(
        100,
        "log lines are written in bunches at most this long after the first one waiting (at once"
        " for warnings, and at exit); 0: each line at once. A `kill -9` loses at most this much",
        ge=0,
    )

    @field_validator(
        "attempt_timeouts_ms",
        "retry_waits_ms",
        "bulk_attempt_timeouts_ms",
        "slow_read_attempt_timeouts_ms",
        mode="before",
    )
    @classmethod
    def _ints(cls, value: Any) -> tuple[int, ...]:
        return tuple(int(v) for v in _split(value))

    @field_validator("tables_allow", "tables_deny", "routines_allow", "routines_deny", "cors_origins", "replica_urls",
                     "s3_buckets", mode="before")
    @classmethod
    def _strs(cls, value: Any) -> tuple[str, ...]:
        return _split(value)

    @field_validator("retry_waits_ms")
    @classmethod
    def _waits_fit(cls, waits: tuple[int, ...], info: ValidationInfo) -> tuple[int, ...]:
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
            cls(
                host=host,
                port=port,
                user=unquote(user or "root"),
                password=unquote(password),
                database=database,
                unix_socket=socket,
            )
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
