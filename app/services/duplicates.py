"""Duplicate keys in an import, found without bisection (pure, but for one SELECT per key and batch).

A plain `mode=insert` import reports every row whose key is taken, by line and key. Splitting a
failing batch in halves finds them too, but costs about 2n statements per batch of n duplicates and
burns auto-increment values on every failed INSERT. Instead, before a batch is written, one SELECT
per unique key reads which of the batch's keys the table already holds, and the batch itself is
checked for repeats. Those rows are reported and left out; the server's own count of skipped rows
must then agree exactly (see imports/writer.py), or the batch takes the exact path.

The probe costs a query per batch, so it switches itself off after `QUIET_BATCHES` batches without
duplicates (a clean import pays for two probes), and on again when a batch meets a duplicate. After
a batch that was all duplicates, it first counts the batch's keys in the table: when all are there
(a re-import), none need be read back. A unique key cannot hold two rows one key value matches, so
a count equal to the number of keys means every key matched one row.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from app.core.errors import GatewayError
from app.db.catalog import Column, Table
from app.db.database import Database
from app.query import sql

QUIET_BATCHES = 2

Record = tuple[int, list[Any]]
CellToKey = Callable[[Column], Callable[[Any], Any]]  # a column's cell -> its value, None for NULL


@dataclass(frozen=True)
class Duplicate:
    line: int
    key: dict[str, Any]
    first_line: int | None  # the earlier position in the file with the same key, or None: in the table
    unit: str = "line"  # what positions count (line, row, index)

    @property
    def reason(self) -> str:
        shown = ", ".join(f"{name}={value!r}" for name, value in self.key.items())
        where = f"repeats {self.unit} {self.first_line}" if self.first_line is not None else "is already in the table"
        return f"duplicate key: ({shown}) {where}"


@dataclass
class DuplicateProbe:
    table: Table
    keys: tuple[tuple[Column, ...], ...]  # the unique keys whose every column the file gives
    positions: tuple[tuple[int, ...], ...]  # their field positions in a record
    converters: tuple[tuple[Callable[[Any], Any], ...], ...]  # per key, per column: cell -> value
    active: bool = True
    quiet: int = 0  # batches in a row without a duplicate
    all_taken: bool = False  # the last batch probed was all duplicates
    # A dry run writes nothing, so a key repeated in a later batch is not in the table: it is
    # remembered here instead (up to `remember` keys).
    remember: int = 0
    unit: str = "line"
    seen: dict[tuple, int] = field(default_factory=dict)  # (key index, values) -> first line
    found: int = field(default=0)

    @classmethod
    def for_import(cls, table: Table, header: Sequence[Column | None], converter: CellToKey) -> DuplicateProbe | None:
        where = {c.name: i for i, c in enumerate(header) if c is not None}
        keys = [k for k in (table.primary_key, *table.unique_keys) if k and all(c.name in where for c in k)]
        if not keys:
            return None
        return cls(
            table,
            tuple(keys),
            tuple(tuple(where[c.name] for c in k) for k in keys),
            tuple(tuple(converter(c) for c in k) for k in keys),
        )

    def saw(self, duplicates: int) -> None:
        """Adapt to what the last batch held."""
        if duplicates:
            self.active, self.quiet = True, 0
        else:
            self.quiet += 1
            self.active = self.quiet < QUIET_BATCHES

    @staticmethod
    def _key_values(
        converters: tuple[Callable[[Any], Any], ...], positions: tuple[int, ...], fields: list[Any]
    ) -> tuple | None:
        try:
            values = tuple(convert(fields[p]) for convert, p in zip(converters, positions))
        except (GatewayError, IndexError):
            return None  # the row fails conversion anyway, and is reported for that
        return None if any(v is None for v in values) else values  # NULL never collides

    async def find(self, db: Database, records: Sequence[Record]) -> dict[int, Duplicate]:
        """The batch's rows whose key is taken, by line: in the table, or by an earlier row of the batch.
        Only exact equality is claimed, so every claim is a real collision (a case-insensitive one
        is left for the server to report, which sends the batch the exact way)."""
        duplicates: dict[int, Duplicate] = {}
        for index, (key, positions, converters) in enumerate(zip(self.keys, self.positions, self.converters)):
            first: dict[tuple, int] = {}
            for line, fields in records:
                values = self._key_values(converters, positions, fields)
                if values is None or line in duplicates:
                    continue
                earlier = first.get(values)  # a position, and the first of a JSON array is 0
                if earlier is None and self.seen:
                    earlier = self.seen.get((index, values))
                if earlier is not None:
                    duplicates[line] = Duplicate(line, dict(zip((c.name for c in key), values)), earlier, self.unit)
                else:
                    first[values] = line
            if not first:
                continue
            names = [c.name for c in key]
            if self.all_taken:
                counted = (await db.fetch(*sql.existing_keys(self.table, key, list(first), count=True))).rows[0][0]
                if counted == len(first):
                    for values, line in first.items():
                        duplicates[line] = Duplicate(line, dict(zip(names, values)), None)
                    continue
            result = await db.fetch(*sql.existing_keys(self.table, key, list(first)))
            for row in result.rows:
                taken = first.get(tuple(row))
                if taken is not None and taken not in duplicates:
                    duplicates[taken] = Duplicate(taken, dict(zip(names, row)), None)
            for values, line in first.items():
                if len(self.seen) >= self.remember:
                    break
                if line not in duplicates:
                    self.seen[(index, values)] = line
        self.found += len(duplicates)
        self.all_taken = bool(records) and len(duplicates) == len(records)
        return duplicates
