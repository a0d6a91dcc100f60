"""Per-table rules (JSON Schemas), versioned in the database so every instance applies the same one.

`_gateway_schemas` holds every version of every table's schema; the current one is the highest.
PUT adds a version, DELETE removes the current one (rolling back to the one before; none left means
no rules). Each instance keeps the current versions of all tables in memory, refreshed on a TTL (in
the background, serving the old copy meanwhile) and right after its own changes; an import reads
them fresh when it starts. Compiled validators are cached by table and version.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import orjson

from app.core.catalog import Table
from app.core.database import Database, Session
from app.core.errors import Conflict, DatabaseError, SchemaNotFound
from app.core.rules import Rules, compile_rules

log = logging.getLogger("gateway.rules")
TABLE = "`_gateway_schemas`"
CREATE = (
    f"CREATE TABLE IF NOT EXISTS {TABLE} ("
    " `table_name` VARCHAR(64) NOT NULL,"
    " `version` INT UNSIGNED NOT NULL,"
    " `schema_json` LONGTEXT NOT NULL,"
    " `created_at` DATETIME(3) NOT NULL,"
    " `created_by` VARCHAR(255) NOT NULL,"
    " PRIMARY KEY (`table_name`, `version`)"
    ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"
)
CURRENT = (
    f"SELECT s.`table_name`, s.`version`, s.`schema_json` FROM {TABLE} s JOIN"
    f" (SELECT `table_name`, MAX(`version`) AS v FROM {TABLE} GROUP BY `table_name`) m"
    " ON s.`table_name` = m.`table_name` AND s.`version` = m.v"
)
VERSIONS = f"SELECT `version`, `created_at`, `created_by` FROM {TABLE} WHERE `table_name` = %s ORDER BY `version`"
LATEST = f"SELECT MAX(`version`) FROM {TABLE} WHERE `table_name` = %s FOR UPDATE"
ADD = (
    f"INSERT INTO {TABLE} (`table_name`, `version`, `schema_json`, `created_at`, `created_by`)"
    " VALUES (%s, %s, %s, UTC_TIMESTAMP(3), %s)"
)
REMOVE = f"DELETE FROM {TABLE} WHERE `table_name` = %s AND `version` = %s"


class RulesStore:
    def __init__(self, db: Database, ttl_s: float):
        self.db, self.ttl_s = db, ttl_s
        self._current: dict[str, tuple[int, dict]] = {}  # table -> (version, schema)
        self._loaded_at: float | None = None
        self._loading: asyncio.Task | None = None
        self._compiled: dict[tuple[str, int], tuple[Table, Rules]] = {}  # per catalog copy of the table
        self._ready = False

    async def ensure_table(self) -> None:
        if not self._ready:
            await self.db.fetch(CREATE)
            self._ready = True

    # --- reading ------------------------------------------------------------------------------

    async def for_table(self, table: Table, *, fresh: bool = False) -> Rules | None:
        """The table's current rules, compiled (None: it has none). `fresh` reads the database now."""
        if fresh or self._loaded_at is None:
            await self._load()
        elif time.monotonic() - self._loaded_at > self.ttl_s and self._loading is None:
            self._loading = asyncio.get_running_loop().create_task(self._load())
            self._loading.add_done_callback(self._loaded)
        found = self._current.get(table.name)
        if found is None:
            return None
        version, schema = found
        cached = self._compiled.get((table.name, version))
        if cached is not None and cached[0] is table:
            return cached[1]
        # Checked when stored; a column dropped since makes the schema name one the table lacks,
        # and that is the operator's to fix: the write is refused with the reason (400).
        rules = compile_rules(table, schema, version)
        self._compiled[(table.name, version)] = (table, rules)
        return rules

    def _loaded(self, task: asyncio.Task) -> None:
        self._loading = None
        if not task.cancelled() and task.exception() is not None:
            log.warning("rules refresh failed: %s", task.exception())

    async def _load(self) -> None:
        await self.ensure_table()
        rows = (await self.db.fetch(CURRENT)).rows
        self._current = {str(name): (int(version), orjson.loads(text)) for name, version, text in rows}
        self._loaded_at = time.monotonic()

    async def describe(self, table: Table) -> dict:
        """The current schema and every version's number, time and author."""
        await self.ensure_table()
        versions = (await self.db.fetch(VERSIONS, (table.name,))).rows
        if not versions:
            raise SchemaNotFound(f"table '{table.name}' has no rules", {"table": table.name})
        await self._load()
        version, schema = self._current[table.name]
        return {
            "table": table.name,
            "version": version,
            "schema": schema,
            "versions": [
                {"version": int(v), "created_at": at.isoformat(timespec="milliseconds"), "created_by": by}
                for v, at, by in versions
            ],
        }

    # --- changing -----------------------------------------------------------------------------

    async def put(self, table: Table, schema: Any, who: str) -> dict:
        """Store `schema` as the table's next version (checked and compiled first: a 400 stores nothing)."""
        compile_rules(table, schema)
        await self.ensure_table()
        text = orjson.dumps(schema).decode()

        async def add(session: Session) -> int:
            latest = (await session.execute(LATEST, (table.name,))).rows[0][0]
            version = int(latest or 0) + 1
            try:
                await session.execute(ADD, (table.name, version, text, who))
            except DatabaseError as exc:
                if exc.code == 1062:  # another instance stored this version first
                    raise Conflict("the table's rules were changed at the same time: send it again") from exc
                raise
            return version

        await self.db.transaction(add)
        return await self.describe(table)

    async def roll_back(self, table: Table) -> dict | None:
        """Remove the current version; the one before becomes current (None: no rules remain)."""
        await self.ensure_table()

        async def remove(session: Session) -> int | None:
            latest = (await session.execute(LATEST, (table.name,))).rows[0][0]
            if latest is None:
                return None
            await session.execute(REMOVE, (table.name, latest))
            return int(latest)

        if await self.db.transaction(remove) is None:
            raise SchemaNotFound(f"table '{table.name}' has no rules", {"table": table.name})
        try:
            return await self.describe(table)
        except SchemaNotFound:
            await self._load()
            return None
