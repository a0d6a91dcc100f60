"""Stored procedures and functions: what INFORMATION_SCHEMA says of them (ROUTINES, PARAMETERS),
read whole and kept, read again after `ttl_s`, or when a name is not known (by a read that started
after the miss, so a routine created just before a call is found; misses waiting share one read)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from app.core.echo import shown
from app.core.errors import RoutineNotFound
from app.db.catalog import Column, exposed

ROUTINES_SQL = (
    "SELECT ROUTINE_NAME, ROUTINE_TYPE, SQL_DATA_ACCESS FROM INFORMATION_SCHEMA.ROUTINES WHERE ROUTINE_SCHEMA = %s"
)
PARAMETERS_SQL = (
    "SELECT SPECIFIC_NAME, ROUTINE_TYPE, ORDINAL_POSITION, PARAMETER_MODE, PARAMETER_NAME, DATA_TYPE, DTD_IDENTIFIER,"
    " CHARACTER_MAXIMUM_LENGTH, NUMERIC_PRECISION, NUMERIC_SCALE, DATETIME_PRECISION"
    " FROM INFORMATION_SCHEMA.PARAMETERS WHERE SPECIFIC_SCHEMA = %s ORDER BY SPECIFIC_NAME, ORDINAL_POSITION"
)
Kind = Literal["procedure", "function"]


@dataclass(frozen=True, slots=True)
class Parameter:
    column: Column  # its name and type, as a column's: values are checked and converted the same way
    mode: Literal["IN", "OUT", "INOUT"]

    @property
    def name(self) -> str:
        return self.column.name


@dataclass(frozen=True, slots=True)
class Routine:
    name: str
    kind: Kind
    parameters: tuple[Parameter, ...]
    returns: Column | None  # a function's value
    reads_only: bool  # NO SQL or READS SQL DATA: safe to run again (a function's call is then retried)

    @property
    def arguments(self) -> tuple[Parameter, ...]:
        """What a caller gives: IN and INOUT parameters."""
        return tuple(p for p in self.parameters if p.mode != "OUT")

    def describe(self) -> dict:
        return {
            "name": self.name,
            "kind": self.kind,
            "parameters": [{"name": p.name, "mode": p.mode, "type": p.column.column_type} for p in self.parameters],
            "returns": self.returns.column_type if self.returns is not None else None,
        }


def build_routines(routine_rows: list[tuple], parameter_rows: list[tuple]) -> dict[str, Routine]:
    """Pure: INFORMATION_SCHEMA rows -> {name: Routine}. A procedure and a function of one name (MySQL
    keeps them apart): the procedure is served."""
    params: dict[tuple[str, str], list[Parameter]] = {}
    returns: dict[str, Column] = {}
    for name, rtype, position, mode, pname, dtype, dtd, maxlen, prec, scale, fsp in parameter_rows:
        column = Column(name=pname or "", data_type=str(dtype).lower(), column_type=str(dtd).lower(),
                        nullable=True, has_default=False, max_length=maxlen, precision=prec, scale=scale, fsp=fsp)
        if int(position) == 0:  # a function's return value
            returns[name] = column
        else:
            params.setdefault((name, str(rtype).lower()), []).append(Parameter(column, mode or "IN"))
    found: dict[str, Routine] = {}
    for name, rtype, access in sorted(routine_rows, key=lambda r: r[1] != "PROCEDURE"):
        kind: Kind = "procedure" if rtype == "PROCEDURE" else "function"
        if name not in found:
            found[name] = Routine(name, kind, tuple(params.get((name, kind), ())),
                                  returns.get(name) if kind == "function" else None,
                                  access in ("NO SQL", "READS SQL DATA"))
    return found


Fetch = Callable[[str, tuple], Awaitable[list[tuple]]]


class Routines:
    """The exposed routines of the configured schema (GATEWAY_ROUTINES_ALLOW / _DENY)."""

    def __init__(self, fetch: Fetch, schema: str, *, allow: tuple[str, ...] = (), deny: tuple[str, ...] = (),
                 ttl_s: float = 60.0):
        self._fetch, self._schema, self._allow, self._deny, self._ttl = fetch, schema, allow, deny, ttl_s
        self._routines: dict[str, Routine] = {}
        self._read_at: float | None = None
        self._lock = asyncio.Lock()

    async def _read(self, since: float) -> None:
        """Make sure what is held was read after `since`: one read at a time, and callers waiting
        share the read that starts after they asked."""
        async with self._lock:
            if self._read_at is not None and self._read_at >= since:
                return
            started = time.monotonic()
            routines = build_routines(await self._fetch(ROUTINES_SQL, (self._schema,)),
                                      await self._fetch(PARAMETERS_SQL, (self._schema,)))
            # MariaDB's routine names ignore case, as its column names do.
            self._routines = {n.lower(): r for n, r in routines.items() if exposed(n, self._allow, self._deny)}
            self._read_at = started

    async def reread(self) -> None:
        """Read them again (by a read that starts after this call)."""
        await self._read(time.monotonic())

    async def all(self) -> list[Routine]:
        await self._read(time.monotonic() - self._ttl)
        return sorted(self._routines.values(), key=lambda r: r.name)

    async def routine(self, name: str) -> Routine:
        await self._read(time.monotonic() - self._ttl)
        found = self._routines.get(name.lower())
        if found is None:  # made since the last read? Misses that arrive together share one read.
            await self.reread()
            found = self._routines.get(name.lower())
        if found is None:
            raise RoutineNotFound(f"no procedure or function '{shown(name)}' is exposed", {"routine": shown(name)})
        return found


def routines_of(db: Any, settings: Any) -> Routines:
    async def fetch(sql: str, params: tuple) -> list[tuple]:
        return list((await db.fetch(sql, params, slow=True)).rows)

    return Routines(fetch, db.address.database, allow=settings.routines_allow, deny=settings.routines_deny,
                    ttl_s=settings.catalog_ttl_s)
