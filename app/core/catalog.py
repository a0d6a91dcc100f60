"""The catalog: INFORMATION_SCHEMA -> Table/Column objects, cached per instance.

Loaded in a few queries, refreshed on a TTL (in the background, serving the old copy meanwhile) and
on a miss: an unknown table or column waits for a load that started after the miss, so a table or
column that existed when a request was sent is found by that request. Loads run one at a time, and
every miss that arrives while one runs shares the next: a storm of made-up names costs one load at
a time, never one each.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from app.core.echo import shown
from app.core.errors import TableNotFound

log = logging.getLogger("gateway.catalog")

# Tables the gateway owns (idempotency keys, jobs): never exposed, whatever the allow list says.
INTERNAL_PREFIX = "_gateway_"

INT_RANGES = {
    "tinyint": 8, "smallint": 16, "mediumint": 24, "int": 32, "integer": 32, "bigint": 64,
}
STRING_TYPES = {"char", "varchar", "tinytext", "text", "mediumtext", "longtext"}
BINARY_TYPES = {"binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob"}


def quote(identifier: str) -> str:
    """Backtick-quote a name taken from the catalog (never user text)."""
    # `%` is doubled because statements go through the driver's `sql % params` formatting.
    return "`" + identifier.replace("`", "``").replace("%", "%%") + "`"


def _members(data_type: str, column_type: str) -> tuple[str, ...]:
    if data_type not in ("enum", "set"):
        return ()
    inner = column_type[column_type.index("(") + 1 : column_type.rindex(")")]
    return tuple(m.replace("''", "'") for m in re.findall(r"'((?:[^']|'')*)'", inner))


def _kind(t: str, column_type: str, is_json: bool) -> str:
    if is_json or t == "json":
        return "json"
    if t == "tinyint" and column_type.startswith("tinyint(1)"):
        return "bool"
    if t in INT_RANGES:
        return "int"
    if t in ("decimal", "numeric"):
        return "decimal"
    if t in ("float", "double", "real"):
        return "float"
    if t in STRING_TYPES:
        return "string"
    if t in BINARY_TYPES:
        return "binary"
    if t in ("date", "datetime", "timestamp", "time", "year", "enum", "set", "bit"):
        return t
    return "string"  # inet6, uuid, geometry as text, ...: passed through as strings


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    data_type: str  # INFORMATION_SCHEMA DATA_TYPE, lower case
    column_type: str  # full COLUMN_TYPE, e.g. "int(10) unsigned", "enum('a','b')"
    nullable: bool
    has_default: bool
    auto_increment: bool = False
    generated: bool = False
    max_length: int | None = None
    precision: int | None = None
    scale: int | None = None
    fsp: int | None = None  # fractional seconds digits of DATETIME/TIMESTAMP/TIME
    is_json: bool = False

    # Derived once (they are asked for per value on the hot paths).
    unsigned: bool = field(init=False, compare=False, repr=False)
    members: tuple[str, ...] = field(init=False, compare=False, repr=False)  # ENUM/SET values
    kind: str = field(init=False, compare=False, repr=False)  # the conversion family (values.py)
    quoted: str = field(init=False, compare=False, repr=False)  # the name as an SQL identifier
    # The type's rules, written out once for every path that checks or describes values.
    int_range: tuple[int, int] | None = field(init=False, compare=False, repr=False)  # integer types (BOOL too)
    whole_digits: int = field(init=False, compare=False, repr=False)  # DECIMAL: digits before the point
    fraction_digits: int = field(init=False, compare=False, repr=False)  # DECIMAL: digits after it
    length_in_chars: bool = field(init=False, compare=False, repr=False)  # max_length counts characters, not bytes

    def __post_init__(self) -> None:
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731 (frozen)
        set_("quoted", quote(self.name))
        set_("unsigned", "unsigned" in self.column_type)
        set_("members", _members(self.data_type, self.column_type))
        set_("kind", _kind(self.data_type, self.column_type, self.is_json))
        bits = INT_RANGES.get(self.data_type)
        if bits is None:
            set_("int_range", None)
        elif self.unsigned:
            set_("int_range", (0, 2**bits - 1))
        else:
            set_("int_range", (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1))
        set_("fraction_digits", self.scale or 0)
        set_("whole_digits", max((self.precision or 65) - (self.scale or 0), 1))
        set_("length_in_chars", self.data_type in ("char", "varchar"))

    @property
    def required(self) -> bool:
        """Must an INSERT name this column? (NOT NULL, no default, not generated or auto)."""
        return not (self.nullable or self.has_default or self.auto_increment or self.generated)

    def describe(self) -> dict:
        return {
            "name": self.name,
            "type": self.column_type,
            "kind": self.kind,
            "nullable": self.nullable,
            "required": self.required,
            "has_default": self.has_default,
            "auto_increment": self.auto_increment,
            "generated": self.generated,
            "max_length": self.max_length,
            "members": list(self.members) or None,
        }


@dataclass(frozen=True, slots=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[Column, ...] = ()
    unique_keys: tuple[tuple[Column, ...], ...] = ()
    by_name: dict[str, Column] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self.by_name.update({c.name: c for c in self.columns})

    @property
    def quoted(self) -> str:
        return quote(self.name)

    def column(self, name: str) -> Column | None:
        return self.by_name.get(name)

    def describe(self) -> dict:
        return {
            "name": self.name,
            "primary_key": [c.name for c in self.primary_key],
            "unique_keys": [[c.name for c in key] for key in self.unique_keys],
            "columns": [c.describe() for c in self.columns],
        }


def exposed(name: str, allow: Iterable[str], deny: Iterable[str]) -> bool:
    if name.startswith(INTERNAL_PREFIX):
        return False
    allow = tuple(allow)
    if allow and not any(fnmatch.fnmatchcase(name, p) for p in allow):
        return False
    return not any(fnmatch.fnmatchcase(name, p) for p in deny)


# --- loading -------------------------------------------------------------------------------

COLUMNS_SQL = (
    "SELECT c.TABLE_NAME, c.COLUMN_NAME, c.DATA_TYPE, c.COLUMN_TYPE, c.IS_NULLABLE, c.COLUMN_DEFAULT,"
    " c.EXTRA, c.CHARACTER_MAXIMUM_LENGTH, c.NUMERIC_PRECISION, c.NUMERIC_SCALE, c.DATETIME_PRECISION"
    " FROM INFORMATION_SCHEMA.COLUMNS c JOIN INFORMATION_SCHEMA.TABLES t"
    " ON t.TABLE_SCHEMA = c.TABLE_SCHEMA AND t.TABLE_NAME = c.TABLE_NAME"
    " WHERE c.TABLE_SCHEMA = %s AND t.TABLE_TYPE IN ('BASE TABLE', 'SYSTEM VERSIONED')"
    " ORDER BY c.TABLE_NAME, c.ORDINAL_POSITION"
)
KEYS_SQL = (
    "SELECT TABLE_NAME, INDEX_NAME, COLUMN_NAME FROM INFORMATION_SCHEMA.STATISTICS"
    " WHERE TABLE_SCHEMA = %s AND NON_UNIQUE = 0 ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX"
)
# MariaDB stores JSON as LONGTEXT with a column-level CHECK (json_valid(`col`)).
JSON_CHECKS_SQL = (
    "SELECT TABLE_NAME, CONSTRAINT_NAME FROM INFORMATION_SCHEMA.CHECK_CONSTRAINTS"
    " WHERE CONSTRAINT_SCHEMA = %s AND LEVEL = 'Column' AND CHECK_CLAUSE LIKE 'json_valid(%%'"
)


def build_tables(
    column_rows: Iterable[tuple], key_rows: Iterable[tuple], json_rows: Iterable[tuple]
) -> dict[str, Table]:
    """Pure: INFORMATION_SCHEMA rows -> {name: Table}."""
    json_columns = {(t, c) for t, c in json_rows}
    columns: dict[str, list[Column]] = {}
    for tname, cname, dtype, ctype, nullable, default, extra, maxlen, prec, scale, fsp in column_rows:
        extra = (extra or "").lower()
        columns.setdefault(tname, []).append(
            Column(
                name=cname,
                data_type=dtype.lower(),
                column_type=ctype.lower(),
                nullable=nullable == "YES",
                # MariaDB: SQL NULL = no default; the string 'NULL' = DEFAULT NULL.
                has_default=default is not None,
                auto_increment="auto_increment" in extra,
                generated="generated" in extra,
                max_length=maxlen,
                precision=prec,
                scale=scale,
                fsp=fsp,
                is_json=(tname, cname) in json_columns,
            )
        )
    keys: dict[str, dict[str, list[str]]] = {}
    for tname, index, cname in key_rows:
        keys.setdefault(tname, {}).setdefault(index, []).append(cname)
    tables = {}
    for tname, cols in columns.items():
        by_name = {c.name: c for c in cols}
        indexes = keys.get(tname, {})
        pk = tuple(by_name[c] for c in indexes.get("PRIMARY", ()))
        uniques = tuple(tuple(by_name[c] for c in cs) for i, cs in indexes.items() if i != "PRIMARY")
        tables[tname] = Table(name=tname, columns=tuple(cols), primary_key=pk, unique_keys=uniques)
    return tables


Fetch = Callable[[str, tuple], Awaitable[list[tuple]]]


async def load(fetch: Fetch, schema: str, is_mariadb: Callable[[], bool]) -> dict[str, Table]:
    column_rows = await fetch(COLUMNS_SQL, (schema,))
    key_rows = await fetch(KEYS_SQL, (schema,))
    # Asked after the first query, once the server has said what it is.
    json_rows = await fetch(JSON_CHECKS_SQL, (schema,)) if is_mariadb() else []
    return build_tables(column_rows, key_rows, json_rows)


class Catalog:
    """The cached, filtered view of the configured schema."""

    def __init__(
        self,
        loader: Callable[[], Awaitable[dict[str, Table]]],
        *,
        allow: Iterable[str] = (),
        deny: Iterable[str] = (),
        ttl_s: float = 60.0,
    ):
        self._loader = loader
        self._allow, self._deny = tuple(allow), tuple(deny)
        self._ttl = ttl_s
        self._tables: dict[str, Table] = {}
        self._loaded_at: float | None = None  # when the last load finished
        self._started_at: float | None = None  # when the last load that finished had started
        self._loading: asyncio.Task | None = None  # the load in flight, shared by everyone waiting
        self.refreshes = 0

    @property
    def loaded(self) -> bool:
        return self._loaded_at is not None

    def tables(self) -> list[Table]:
        return [self._tables[name] for name in sorted(self._tables)]

    async def table(self, name: str) -> Table:
        table = self._tables.get(name)
        if table is None:
            await self.reload()
            table = self._tables.get(name)
            if table is None:
                raise TableNotFound(f"table '{shown(name)}' does not exist or is not exposed", {"table": shown(name)})
        elif time.monotonic() - self._loaded_at > self._ttl:  # type: ignore[operator]
            self._start_load()
        return table

    async def reload(self) -> None:
        """Return once a load that started after this call has finished (what existed when the call
        was made is then known). A load already running started too early: wait for it, then share
        the next one with everyone else who waited."""
        asked = time.monotonic()
        while self._started_at is None or self._started_at < asked:
            await asyncio.shield(self._start_load())


    def _start_load(self) -> asyncio.Task:
        if self._loading is None:
            self._loading = asyncio.get_running_loop().create_task(self._load())
            self._loading.add_done_callback(_log_failure)
        return self._loading

    async def _load(self) -> None:
        started = time.monotonic()
        try:
            tables = await self._loader()
            self._tables = {n: t for n, t in tables.items() if exposed(n, self._allow, self._deny)}
            self._started_at, self._loaded_at = started, time.monotonic()
            self.refreshes += 1
            log.debug("catalog loaded: %d tables exposed", len(self._tables))
        finally:
            self._loading = None


def _log_failure(task: asyncio.Task) -> None:
    # Whoever waits gets the error too; a background (TTL) load has no one else to tell.
    if not task.cancelled() and task.exception() is not None:
        log.warning("catalog load failed: %s", task.exception())


def catalog_of(db: Any, settings: Any) -> "Catalog":
    """The catalog of the permitted tables, loaded from INFORMATION_SCHEMA through `db`."""

    async def load_catalog() -> dict[str, Table]:
        async def fetch(sql: str, params: tuple) -> list[tuple]:
            return list((await db.fetch(sql, params)).rows)

        return await load(fetch, db.address.database, lambda: db.is_mariadb)

    return Catalog(load_catalog, allow=settings.tables_allow, deny=settings.tables_deny, ttl_s=settings.catalog_ttl_s)
