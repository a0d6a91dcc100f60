"""The audit trail, `_gateway_audit`: who changed which rows, rules, policies or keys, and when.

Each entry: the time, the request id, the subject (the caller's name), the table (for keys and
accounts: `_gateway_credentials`), the action (the route's operation: `create`, `update_many`,
`put_rules`, `revoke_key`, ...) and a count (rows affected, or 1). Never a row's values or a secret.

Two ways in, by what is at stake:
- keys and accounts: written in the change's own transaction, so a change and its entry commit or
  fail together;
- rows, rules and policies: recorded once the write has committed (never for a write that failed or
  whose outcome is unknown, never again for an Idempotency-Key's replay), then written in the
  background in batches, off the request's path: a crash loses at most the last batch (about
  FLUSH_S), and an audit write that fails is logged and counted, never turned into the request's
  failure.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any

from app.core import context
from app.core.errors import GatewayError, TableNotFound
from app.db.database import Database, Session
from app.services.accounts import now

log = logging.getLogger("gateway.audit")
TABLE = "`_gateway_audit`"
CREATE = (
    f"CREATE TABLE IF NOT EXISTS {TABLE} ("
    " `id` BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY,"
    " `at` DATETIME(3) NOT NULL,"
    " `request_id` VARCHAR(128) NOT NULL,"
    " `subject` VARCHAR(255) NOT NULL,"
    " `table_name` VARCHAR(64) NOT NULL,"
    " `action` VARCHAR(32) NOT NULL,"
    " `count` BIGINT NOT NULL,"
    " KEY `by_time` (`at`), KEY `by_table` (`table_name`, `at`), KEY `by_subject` (`subject`, `at`)"
    ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"
)
INSERT = f"INSERT INTO {TABLE} (`at`, `request_id`, `subject`, `table_name`, `action`, `count`) VALUES "
ROW = "(%s, %s, %s, %s, %s, %s)"
CREDENTIALS = "_gateway_credentials"
Entry = tuple[datetime, str, str, str, str, int]


def entry(subject: str, table: str, action: str, count: int) -> Entry:
    return (now(), context.current().request_id, subject[:255], table[:64], action[:32], int(count))


def count_of(result: Any) -> int:
    """What a write's service call answered, as a count of rows."""
    if isinstance(result, list):
        return len(result)
    if isinstance(result, dict) and isinstance(result.get("affected"), int):
        return int(result["affected"])
    if isinstance(result, int) and not isinstance(result, bool):
        return result
    return 1


class AuditTrail:
    FLUSH_S = 0.2
    BATCH = 500

    def __init__(self, db: Database):
        self.db = db
        self._pending: list[Entry] = []
        self._flushing: asyncio.Task | None = None
        self.failed = 0  # entries that could not be written (metrics, logs)

    async def ensure_table(self) -> None:
        await self.db.fetch(CREATE)

    async def in_transaction(self, session: Session, subject: str, action: str, count: int) -> None:
        """A key's or an account's change: in its transaction (app/services/accounts.py)."""
        await session.execute(INSERT + ROW, entry(subject, CREDENTIALS, action, count))

    def record(self, subject: str, table: str, action: str, count: int) -> None:
        """A committed write: written soon, in the background."""
        self._pending.append(entry(subject, table, action, count))
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.ensure_future(self._flush_later())

    async def _flush_later(self) -> None:
        await asyncio.sleep(self.FLUSH_S)
        await self.flush()

    async def stop(self) -> None:
        """At shutdown: what is pending is written now, the timer dropped."""
        if self._flushing is not None and not self._flushing.done():
            self._flushing.cancel()
        await self.flush()

    async def flush(self) -> None:
        """Write what is pending now (a read of the trail, and the shutdown, call this)."""
        while self._pending:
            batch, self._pending = self._pending[: self.BATCH], self._pending[self.BATCH:]
            params = [value for item in batch for value in item]
            statement = INSERT + ",".join([ROW] * len(batch))
            try:
                try:
                    await self.db.write(statement, params)
                except TableNotFound:
                    await self.ensure_table()
                    await self.db.write(statement, params)
            except (GatewayError, OSError) as exc:
                self.failed += len(batch)
                log.error("audit entries not written (%d): %r", len(batch), exc)

    async def read(self, table: str | None, subject: str | None, since: datetime | None, until: datetime | None,
                   limit: int, offset: int) -> list[dict]:
        await self.flush()
        where, params = ["1 = 1"], []
        for column, value in (("`table_name` = %s", table), ("`subject` = %s", subject),
                              ("`at` >= %s", since), ("`at` < %s", until)):
            if value is not None:
                where.append(column)
                params.append(value)
        sql = (f"SELECT `id`, `at`, `request_id`, `subject`, `table_name`, `action`, `count` FROM {TABLE}"
               f" WHERE {' AND '.join(where)} ORDER BY `at` DESC, `id` DESC LIMIT %s OFFSET %s")
        try:
            rows = (await self.db.fetch(sql, (*params, limit, offset))).rows
        except TableNotFound:
            return []
        return [
            {"id": id_, "at": at.isoformat(timespec="milliseconds") + "Z", "request_id": request_id,
             "subject": subject_, "table": table_, "action": action, "count": count}
            for id_, at, request_id, subject_, table_, action, count in rows
        ]
