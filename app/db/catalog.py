"""The catalog: INFORMATION_SCHEMA -> Table/Column objects, cached per instance.

Loaded whole at start in a few queries; refreshed on a TTL in the background (serving the old copy
meanwhile), reading again only the tables whose change stamp moved; and on a miss: an unknown table
or column waits for a look at that table that started after the miss, so a table or column that
existed when a request was sent is found by that request. Reads run one at a time, and every miss
that arrives while one runs shares the next: a storm of made-up names costs one small read at a
time, never one each, and never a read of the whole schema.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import re
import time
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from app.core.echo import shown
from app.core.errors import MethodNotAllowed, TableNotFound
from app.db.relations import Relation, relations_of

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
class ForeignKey:
    """A FOREIGN KEY of a table: its columns reference `target`'s `target_columns`, pair by pair."""

    name: str  # the constraint's name (unique in a schema)
    columns: tuple[str, ...]
    target: str
    target_columns: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[Column, ...] = ()
    unique_keys: tuple[tuple[Column, ...], ...] = ()
    foreign_keys: tuple[ForeignKey, ...] = ()
    view: bool = False  # read-only: every write is 405
    fulltext: tuple[tuple[str, tuple[Column, ...]], ...] = ()  # FULLTEXT indexes: (name, columns)
    by_name: dict[str, Column] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self.by_name.update({c.name: c for c in self.columns})

    @property
    def quoted(self) -> str:
        return quote(self.name)

    def column(self, name: str) -> Column | None:
        return self.by_name.get(name)

    def is_unique(self, names: Iterable[str]) -> bool:
        """Do these columns hold one row at most for any values (they include a unique key)?"""
        given = set(names)
        return any(key and {c.name for c in key} <= given for key in (self.primary_key, *self.unique_keys))

    def describe(self) -> dict:
        return {
            "name": self.name,
            "kind": "view" if self.view else "table",
            "primary_key": [c.name for c in self.primary_key],
            "unique_keys": [[c.name for c in key] for key in self.unique_keys],
            "fulltext": {name: [c.name for c in columns] for name, columns in self.fulltext},
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
# One query per INFORMATION_SCHEMA table and no joins between them: joined, COLUMNS and TABLES made
# MariaDB open every table's definition once per column (30 s for 3,000 tables: every request was a
# 504); apart, a whole schema of 3,000 tables and 50,000 columns loads in about half a second, and a
# few named tables in milliseconds.

# Every table's kind and change stamp (CREATE_TIME moves with every CREATE and ALTER, to the
# second); `recent`: changed in the last two seconds, so a second change within the same second may
# still come (such a table is looked at again on the next refresh, whatever its stamp).
LISTING_SQL = (
    "SELECT TABLE_NAME, TABLE_TYPE, CREATE_TIME, CREATE_TIME IS NULL OR CREATE_TIME >= NOW() - INTERVAL 2 SECOND"
    " FROM INFORMATION_SCHEMA.TABLES WHERE TABLE_SCHEMA = %s"
)
KINDS_SQL = "SELECT TABLE_NAME, TABLE_TYPE FROM INFORMATION_SCHEMA.TABLES WHERE TABLE_SCHEMA = %s{names}"
COLUMNS_SQL = (
    "SELECT TABLE_NAME, COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE, COLUMN_DEFAULT, EXTRA,"
    " CHARACTER_MAXIMUM_LENGTH, NUMERIC_PRECISION, NUMERIC_SCALE, DATETIME_PRECISION"
    " FROM INFORMATION_SCHEMA.COLUMNS WHERE TABLE_SCHEMA = %s{names} ORDER BY TABLE_NAME, ORDINAL_POSITION"
)
KEYS_SQL = (
    "SELECT TABLE_NAME, INDEX_NAME, COLUMN_NAME FROM INFORMATION_SCHEMA.STATISTICS"
    " WHERE TABLE_SCHEMA = %s AND NON_UNIQUE = 0{names} ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX"
)
FULLTEXT_SQL = (
    "SELECT TABLE_NAME, INDEX_NAME, COLUMN_NAME FROM INFORMATION_SCHEMA.STATISTICS"
    " WHERE TABLE_SCHEMA = %s AND INDEX_TYPE = 'FULLTEXT'{names} ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX"
)
# Foreign keys within the schema, a row per column pair, in the key's order.
FOREIGN_KEYS_SQL = (
    "SELECT TABLE_NAME, CONSTRAINT_NAME, COLUMN_NAME, REFERENCED_TABLE_NAME, REFERENCED_COLUMN_NAME"
    " FROM INFORMATION_SCHEMA.KEY_COLUMN_USAGE"
    " WHERE TABLE_SCHEMA = %s AND REFERENCED_TABLE_SCHEMA = TABLE_SCHEMA{names}"
    " ORDER BY TABLE_NAME, CONSTRAINT_NAME, ORDINAL_POSITION"
)
# MariaDB stores JSON as LONGTEXT with a column-level CHECK (json_valid(`col`)).
JSON_CHECKS_SQL = (
    "SELECT TABLE_NAME, CONSTRAINT_NAME FROM INFORMATION_SCHEMA.CHECK_CONSTRAINTS"
    " WHERE CONSTRAINT_SCHEMA = %s AND LEVEL = 'Column' AND CHECK_CLAUSE LIKE 'json_valid(%%'{names}"
)
TABLE_TYPES = ("BASE TABLE", "SYSTEM VERSIONED", "VIEW")  # a view is served read-only


def build_tables(
    column_rows: Iterable[tuple], key_rows: Iterable[tuple], json_rows: Iterable[tuple],
    foreign_key_rows: Iterable[tuple] = (), views: Collection[str] = (), fulltext_rows: Iterable[tuple] = (),
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
    texts: dict[str, dict[str, list[str]]] = {}
    for tname, index, cname in fulltext_rows:
        texts.setdefault(tname, {}).setdefault(index, []).append(cname)
    pairs: dict[str, dict[tuple[str, str], list[tuple[str, str]]]] = {}
    for tname, constraint, cname, target, target_column in foreign_key_rows:
        pairs.setdefault(tname, {}).setdefault((constraint, target), []).append((cname, target_column))
    tables = {}
    for tname, cols in columns.items():
        by_name = {c.name: c for c in cols}
        indexes = keys.get(tname, {})
        pk = tuple(by_name[c] for c in indexes.get("PRIMARY", ()))
        uniques = tuple(tuple(by_name[c] for c in cs) for i, cs in indexes.items() if i != "PRIMARY")
        foreign = tuple(
            ForeignKey(name, tuple(c for c, _ in ps), target, tuple(t for _, t in ps))
            for (name, target), ps in pairs.get(tname, {}).items()
        )
        tables[tname] = Table(
            name=tname, columns=tuple(cols), primary_key=pk, unique_keys=uniques, foreign_keys=foreign,
            view=tname in views,
            fulltext=tuple((i, tuple(by_name[c] for c in cs)) for i, cs in texts.get(tname, {}).items()),
        )
    return tables


Fetch = Callable[[str, tuple], Awaitable[list[tuple]]]


@dataclass(frozen=True)
class Listing:
    """What INFORMATION_SCHEMA.TABLES says of every base table: its change stamp, and whether it
    changed too recently for the stamp to tell a second change (look again next time)."""

    stamps: dict[str, Any]
    recent: frozenset[str]
    kinds: dict[str, str] = field(default_factory=dict)  # TABLE_TYPE by name


class InformationSchema:
    """The catalog's source: a schema's tables read from INFORMATION_SCHEMA. `fetch` runs a query
    (the gateway's database through the retry wrapper); whole-schema reads may take a second on a
    big catalog, so they get `fetch_slow` (the slow-read schedule)."""

    def __init__(self, fetch: Fetch, fetch_slow: Fetch, schema: str, is_mariadb: Callable[[], bool]):
        self.fetch, self.fetch_slow, self.schema, self.is_mariadb = fetch, fetch_slow, schema, is_mariadb

    async def listing(self) -> Listing:
        rows = await self.fetch_slow(LISTING_SQL, (self.schema,))
        base = [(name, kind, stamp, recent) for name, kind, stamp, recent in rows if kind in TABLE_TYPES]
        # A view has no CREATE_TIME (recent: looked at on every refresh; a view's columns are cheap to read).
        return Listing({name: stamp for name, _, stamp, _ in base}, frozenset(n for n, _, _, recent in base if recent),
                       {name: kind for name, kind, _, _ in base})

    async def tables(
        self, names: Sequence[str] | None = None, *, kinds: Mapping[str, str] | None = None
    ) -> dict[str, Table]:
        """The named tables and views (all of them for None) that exist. `kinds`: each one's
        TABLE_TYPE, when a listing has just said."""
        fetch = self.fetch_slow if names is None or len(names) > 50 else self.fetch
        where = ""
        params: tuple[str, ...] = (self.schema,)
        if names is not None:
            if not names:
                return {}
            where, params = f" AND TABLE_NAME IN ({', '.join(['%s'] * len(names))})", (self.schema, *names)
        if kinds is None:
            kinds = dict(await fetch(KINDS_SQL.format(names=where), params))
        column_rows = await fetch(COLUMNS_SQL.format(names=where), params)
        key_rows = await fetch(KEYS_SQL.format(names=where), params)
        # Asked after the first queries, once the server has said what it is.
        json_rows = await fetch(JSON_CHECKS_SQL.format(names=where), params) if self.is_mariadb() else []
        foreign_key_rows = await fetch(FOREIGN_KEYS_SQL.format(names=where), params)
        fulltext_rows = await fetch(FULLTEXT_SQL.format(names=where), params)
        views = {name for name, kind in kinds.items() if kind == "VIEW"}
        tables = build_tables(column_rows, key_rows, json_rows, foreign_key_rows, views, fulltext_rows)
        return {name: table for name, table in tables.items() if kinds.get(name) in TABLE_TYPES}


class Catalog:
    """The cached, filtered view of the configured schema.

    Everything that reads INFORMATION_SCHEMA runs in one worker task, one job at a time, so no two
    reads overlap and none can undo a newer one. A job is one of: a whole load (at start, and when
    asked), a look at named tables (a request for a table it does not know, or a column it does not
    know), a refresh (after `ttl_s`, in the background: the listing's change stamps say which tables
    changed, and only those are read again). A request waits for a job that starts after it asked,
    so what existed when it was sent is found; requests that ask while a job runs share the next one.
    """

    def __init__(
        self,
        source: InformationSchema,
        *,
        allow: Iterable[str] = (),
        deny: Iterable[str] = (),
        ttl_s: float = 60.0,
    ):
        self._source = source
        self._allow, self._deny = tuple(allow), tuple(deny)
        self._ttl = ttl_s
        self._tables: dict[str, Table] = {}
        self._stamps: dict[str, Any] = {}  # exposed tables read, by the stamp they had when read
        self._recent: frozenset[str] = frozenset()  # to look at again at the next refresh
        self._loaded_at: float | None = None  # when the last whole load or refresh finished
        self._whole: list[asyncio.Future[None]] = []  # waiting for a whole load
        self._looks: dict[str, list[asyncio.Future[None]]] = {}  # waiting for a look at these names
        self._refresh_due = False
        self._refreshes: list[asyncio.Future[None]] = []  # waiting for a refresh
        self._worker: asyncio.Task | None = None
        # Derived from _tables when asked (reset whenever it changes): which keys reference each
        # table, and each table's relations (app/db/relations.py), with the copy they were made for.
        self._incoming: dict[str, list[tuple[str, ForeignKey]]] | None = None
        self._relations: dict[str, tuple[Table, tuple[Relation, ...]]] = {}
        self.refreshes = 0  # reads of INFORMATION_SCHEMA (whole loads, refreshes, looks)

    @property
    def loaded(self) -> bool:
        return self._loaded_at is not None

    def tables(self) -> list[Table]:
        return [self._tables[name] for name in sorted(self._tables)]

    def known(self, name: str) -> Table | None:
        """The table as the catalog knows it now, without looking (None: not known)."""
        return self._tables.get(name)

    def relations(self, table: Table) -> tuple[Relation, ...]:
        """The relations of `table` to the exposed tables, as the catalog knows them now."""
        if self._incoming is None:
            incoming: dict[str, list[tuple[str, ForeignKey]]] = {}
            for source in self._tables.values():
                for key in source.foreign_keys:
                    incoming.setdefault(key.target, []).append((source.name, key))
            self._incoming, self._relations = incoming, {}
        known = self._relations.get(table.name)
        if known is None or known[0] is not table:
            known = (table, relations_of(table, self._tables, self._incoming.get(table.name, ())))
            self._relations[table.name] = known
        return known[1]

    def _changed(self) -> None:
        self._incoming, self._relations = None, {}

    async def writable(self, name: str) -> Table:
        """The table a write, an import or a stream goes to: a view is read-only (405)."""
        table = await self.table(name)
        if table.view:
            raise MethodNotAllowed(
                f"'{shown(name)}' is a view: it is read-only (read it, query it, aggregate or export it)",
                {"table": shown(name), "kind": "view"},
            )
        return table

    async def table(self, name: str) -> Table:
        table = self._tables.get(name)
        if table is None:
            await self.look(name)
            table = self._tables.get(name)
            if table is None:
                raise TableNotFound(f"table '{shown(name)}' does not exist or is not exposed", {"table": shown(name)})
        elif self._loaded_at is not None and time.monotonic() - self._loaded_at > self._ttl:
            self._refresh_due = True
            self._wake()
        return table

    async def reload(self) -> None:
        """Return once a whole load that started after this call has finished."""
        await self._wait(self._whole)

    async def refreshed(self) -> None:
        """Return once a refresh that started after this call has finished (tables created or
        altered before the call, a new foreign key to a table say, are then known)."""
        self._refresh_due = True
        await self._wait(self._refreshes)

    async def look(self, name: str) -> None:
        """Return once a look at table `name` that started after this call has finished (a table
        created, altered or dropped before the call is then known as it is)."""
        if not exposed(name, self._allow, self._deny):
            return  # never served, so never read
        await self._wait(self._looks.setdefault(name, []))

    async def _wait(self, waiters: list[asyncio.Future[None]]) -> None:
        future = asyncio.get_running_loop().create_future()
        waiters.append(future)
        self._wake()
        await asyncio.shield(future)

    def _wake(self) -> None:
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(self._work())

    async def _work(self) -> None:
        try:
            while self._whole or self._looks or self._refresh_due:
                if self._whole:
                    waiters, self._whole = self._whole, []
                    looks, self._looks = self._looks, {}  # a whole load answers them too
                    waiters += [f for fs in looks.values() for f in fs]
                    await self._job(self._load_all, waiters)
                elif self._looks:
                    looks, self._looks = self._looks, {}
                    await self._job(lambda: self._read(list(looks)), [f for fs in looks.values() for f in fs])
                else:
                    self._refresh_due = False
                    waiters, self._refreshes = self._refreshes, []
                    await self._job(self._refresh, waiters)
        finally:
            self._worker = None

    async def _job(self, job: Callable[[], Awaitable[None]], waiters: list[asyncio.Future[None]]) -> None:
        """Run one job; its waiters get its outcome (a background refresh's failure is logged)."""
        try:
            await job()
            self.refreshes += 1
        except Exception as exc:
            if not waiters:
                log.warning("catalog refresh failed: %s", exc)
            for future in waiters:
                if not future.done():
                    future.set_exception(exc)
                    future.exception()  # retrieved: a waiter that left is not an unhandled error
            return
        for future in waiters:
            if not future.done():
                future.set_result(None)

    async def _load_all(self) -> None:
        listing = await self._source.listing()
        tables = await self._source.tables(None, kinds=listing.kinds)
        self._tables = {n: t for n, t in tables.items() if exposed(n, self._allow, self._deny)}
        self._changed()
        self._stamps = {n: listing.stamps.get(n) for n in self._tables}
        self._recent = listing.recent
        self._loaded_at = time.monotonic()
        log.debug("catalog loaded: %d tables exposed", len(self._tables))

    async def _read(self, names: list[str]) -> None:
        """Read these tables again: each is replaced, added, or dropped (it no longer exists)."""
        found = await self._source.tables(names)
        for name in names:
            table = found.get(name)
            if table is None:
                if self._tables.pop(name, None) is not None:
                    self._changed()
                self._stamps.pop(name, None)
            elif table != self._tables.get(name):  # unchanged tables keep their object (caches key on it)
                self._tables[name] = table
                self._changed()
                self._stamps[name] = None  # its stamp is read by the next refresh

    async def _refresh(self) -> None:
        """The listing, then only the tables it says are new, changed (or recently changed)."""
        if self._loaded_at is None:
            await self._load_all()
            return
        listing = await self._source.listing()
        stamps = {n: s for n, s in listing.stamps.items() if exposed(n, self._allow, self._deny)}
        for gone in set(self._tables) - set(stamps):
            self._tables.pop(gone, None)
            self._changed()
            self._stamps.pop(gone, None)
        changed = [
            n for n, s in stamps.items() if n not in self._tables or s != self._stamps.get(n) or n in self._recent
        ]
        if changed:
            await self._read(changed)
            for name in changed:
                if name in self._tables:
                    self._stamps[name] = stamps[name]
        self._recent = listing.recent
        self._loaded_at = time.monotonic()


def catalog_of(db: Any, settings: Any) -> "Catalog":
    """The catalog of the permitted tables, loaded from INFORMATION_SCHEMA through `db`."""

    async def fetch(sql: str, params: tuple) -> list[tuple]:
        return list((await db.fetch(sql, params)).rows)

    async def fetch_slow(sql: str, params: tuple) -> list[tuple]:
        return list((await db.fetch(sql, params, slow=True)).rows)

    source = InformationSchema(fetch, fetch_slow, db.address.database, lambda: db.is_mariadb)
    return Catalog(source, allow=settings.tables_allow, deny=settings.tables_deny, ttl_s=settings.catalog_ttl_s)
