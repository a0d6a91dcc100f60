"""Per-table rules (JSON Schemas), versioned in the database so every instance applies the same one.

`_gateway_schemas` holds every version of every table's schema, and a version number names one
schema forever: PUT adds the next number (past every number the table ever had), DELETE marks the
current version removed (it stays, as removed, so its number is never given again) and the highest
version not removed becomes current again; none left means no rules.

Each instance knows each table's current version as of a read that started at most `ttl_s` ago
(GATEWAY_RULES_TTL_S): a write after that reads the table's current version again (one small query
by primary key) before it is checked, so a rule stored on any instance is enforced by every instance
within `ttl_s`, and at once on the instance that stored it. `ttl_s = 0` reads it before every write.
Imports read it when they start. The compiled validator is kept per table with what it was compiled
from (the catalog's copy of the table, the version and the schema's text): it is used only for
exactly those.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

from app.core import jsontext
from app.core.errors import Conflict, DatabaseError, SchemaNotFound
from app.db.catalog import Table
from app.db.database import Database, Session
from app.rows.rules import Rules, compile_rules

log = logging.getLogger("gateway.rules")
TABLE = "`_gateway_schemas`"
CREATE = (
    f"CREATE TABLE IF NOT EXISTS {TABLE} ("
    " `table_name` VARCHAR(64) NOT NULL,"
    " `version` INT UNSIGNED NOT NULL,"
    " `schema_json` LONGTEXT NOT NULL,"
    " `created_at` DATETIME(3) NOT NULL,"
    " `created_by` VARCHAR(255) NOT NULL,"
    " `removed_at` DATETIME(3) NULL,"
    " `removed_by` VARCHAR(255) NULL,"
    " PRIMARY KEY (`table_name`, `version`)"
    ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"
)
# Tables made before versions were kept when removed lack the two columns.
HAS_REMOVED = (
    "SELECT COUNT(*) FROM INFORMATION_SCHEMA.COLUMNS"
    " WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = '_gateway_schemas' AND COLUMN_NAME = 'removed_at'"
)
ADD_REMOVED = f"ALTER TABLE {TABLE} ADD COLUMN `removed_at` DATETIME(3) NULL, ADD COLUMN `removed_by` VARCHAR(255) NULL"
CURRENT = (
    f"SELECT `version`, `schema_json` FROM {TABLE} WHERE `table_name` = %s AND `removed_at` IS NULL"
    " ORDER BY `version` DESC LIMIT 1"
)
VERSIONS = (
    f"SELECT `version`, `created_at`, `created_by`, `removed_at`, `removed_by` FROM {TABLE}"
    " WHERE `table_name` = %s ORDER BY `version`"
)
# Both lock the table's versions, so two instances changing one table's rules take turns.
LATEST = f"SELECT MAX(`version`) FROM {TABLE} WHERE `table_name` = %s FOR UPDATE"
LATEST_KEPT = f"SELECT MAX(`version`) FROM {TABLE} WHERE `table_name` = %s AND `removed_at` IS NULL FOR UPDATE"
ADD = (
    f"INSERT INTO {TABLE} (`table_name`, `version`, `schema_json`, `created_at`, `created_by`)"
    " VALUES (%s, %s, %s, UTC_TIMESTAMP(3), %s)"
)
REMOVE = (
    f"UPDATE {TABLE} SET `removed_at` = UTC_TIMESTAMP(3), `removed_by` = %s WHERE `table_name` = %s AND `version` = %s"
)


@dataclass(frozen=True)
class Current:
    """A table's current rules as read by a query that started at `read_at` (monotonic)."""

    version: int | None  # None: no rules
    text: str | None  # the schema as stored
    read_at: float


@dataclass(frozen=True)
class Compiled:
    table: Table  # the catalog's copy it was compiled against (a column dropped since matters)
    version: int
    text: str
    rules: Rules


class RulesStore:
    def __init__(self, db: Database, ttl_s: float):
        self.db, self.ttl_s = db, ttl_s
        self._current: dict[str, Current] = {}
        self._reading: dict[str, tuple[float, asyncio.Task[Current]]] = {}  # table -> the read in flight
        self._compiled: dict[str, Compiled] = {}  # table -> the validator of its current version
        self._ready = False

    async def ensure_table(self) -> None:
        if not self._ready:
            await self.db.fetch(CREATE)
            if not (await self.db.fetch(HAS_REMOVED)).rows[0][0]:
                await self.db.fetch(ADD_REMOVED)
            self._ready = True

    # --- reading ------------------------------------------------------------------------------

    async def for_table(self, table: Table, *, fresh: bool = False) -> Rules | None:
        """The table's current rules, compiled (None: it has none), as read at most `ttl_s` ago;
        `fresh`: by a read that starts now."""
        current = await self._read(table.name, 0.0 if fresh else self.ttl_s)
        if current.version is None or current.text is None:
            return None
        compiled = self._compiled.get(table.name)
        if (
            compiled is not None
            and compiled.table is table
            and compiled.version == current.version
            and compiled.text == current.text
        ):
            return compiled.rules
        # Checked when stored; a column dropped since makes the schema name one the table lacks,
        # and that is the operator's to fix: the write is refused with the reason (400).
        rules = compile_rules(table, jsontext.parse(current.text), current.version)
        self._compiled[table.name] = Compiled(table, current.version, current.text, rules)
        return rules

    async def _read(self, name: str, max_age: float) -> Current:
        """The table's current version, read by a query that started at most `max_age` ago. Callers
        share a read in flight that started recently enough."""
        now = time.monotonic()
        known = self._current.get(name)
        if known is not None and now - known.read_at <= max_age:
            return known
        flying = self._reading.get(name)
        if flying is not None and now - flying[0] <= max_age:
            return await asyncio.shield(flying[1])
        task = asyncio.get_running_loop().create_task(self._query(name, now))
        self._reading[name] = (now, task)
        try:
            return await asyncio.shield(task)
        finally:
            if self._reading.get(name, (None, None))[1] is task:
                del self._reading[name]

    async def _query(self, name: str, started: float) -> Current:
        await self.ensure_table()
        rows = (await self.db.fetch(CURRENT, (name,))).rows
        current = Current(int(rows[0][0]), str(rows[0][1]), started) if rows else Current(None, None, started)
        self._learn(name, current)
        return current

    def _learn(self, name: str, current: Current) -> None:
        """Keep what a read (or this instance's own change) found, unless something newer is known:
        a read that started before a change and ends after it must not undo it."""
        known = self._current.get(name)
        if known is None or current.read_at >= known.read_at:
            self._current[name] = current

    async def describe(self, table: Table) -> dict:
        """The current schema and every version's number, time and author (removed ones marked)."""
        await self.ensure_table()
        versions = (await self.db.fetch(VERSIONS, (table.name,))).rows
        current = await self._read(table.name, 0.0)
        if current.version is None or current.text is None:
            raise SchemaNotFound(f"table '{table.name}' has no rules", {"table": table.name})
        return {
            "table": table.name,
            "version": current.version,
            "schema": jsontext.parse(current.text),
            "versions": [_version(*row) for row in versions],
        }

    # --- changing -----------------------------------------------------------------------------

    async def put(self, table: Table, schema: Any, who: str) -> dict:
        """Store `schema` as the table's next version (checked and compiled first: a 400 stores nothing)."""
        compile_rules(table, schema)
        await self.ensure_table()
        text = jsontext.dumps(schema).decode()

        async def add(session: Session) -> int:
            latest = (await session.execute(LATEST, (table.name,))).rows[0][0]
            version = int(latest or 0) + 1  # past every version the table had, removed ones too
            try:
                await session.execute(ADD, (table.name, version, text, who))
            except DatabaseError as exc:
                if exc.code == 1062:  # another instance stored this version first
                    raise Conflict("the table's rules were changed at the same time: send it again") from exc
                raise
            return version

        version = await self.db.transaction(add)
        # Known as of the COMMIT: a read that started before it may have seen the version before.
        self._learn(table.name, Current(version, text, time.monotonic()))
        return await self.describe(table)

    async def roll_back(self, table: Table, who: str) -> dict | None:
        """Mark the current version removed; the one before becomes current (None: no rules remain)."""
        await self.ensure_table()

        async def remove(session: Session) -> int | None:
            latest = (await session.execute(LATEST_KEPT, (table.name,))).rows[0][0]
            if latest is None:
                return None
            await session.execute(REMOVE, (who, table.name, latest))
            return int(latest)

        if await self.db.transaction(remove) is None:
            raise SchemaNotFound(f"table '{table.name}' has no rules", {"table": table.name})
        try:
            return await self.describe(table)
        except SchemaNotFound:
            return None


def _version(version: Any, created_at: Any, created_by: str, removed_at: Any, removed_by: str | None) -> dict:
    shown: dict[str, Any] = {
        "version": int(version),
        "created_at": _moment(created_at),
        "created_by": created_by,
        "removed": removed_at is not None,
    }
    if removed_at is not None:
        shown |= {"removed_at": _moment(removed_at), "removed_by": removed_by}
    return shown


def _moment(value: Any) -> str:
    return value.isoformat(timespec="milliseconds")
