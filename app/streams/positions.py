"""Where a stream has got to, and what it could not apply (three `_gateway_` tables).

    _gateway_stream_ids      one row per applied message that has an id (a RabbitMQ message_id, a
                             NATS stream sequence, a WebSocket message's "id"), per source
    _gateway_stream_offsets  one row per Kafka partition of a source: the next offset to apply
    _gateway_dead_letters    messages a broker stream could not apply: source, position, payload,
                             reason, time

Every write here happens inside the transaction that writes the messages' rows (applier.py): a
message's id or offset is recorded exactly when its rows are, so a message redelivered after a
crash is recognised and skipped, never applied twice. Ids are kept `retention` (a week by default):
a broker redelivers within minutes.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from typing import Any

from app.core.errors import TableNotFound
from app.db.database import Database, Session

IDS, OFFSETS, DEAD = "`_gateway_stream_ids`", "`_gateway_stream_offsets`", "`_gateway_dead_letters`"
NOW = "UTC_TIMESTAMP(6)"
UNKNOWN = -1  # an offsets row made before the first message of the partition was applied
ID_CHARS = 191  # the longest id a row holds (utf8mb4 keys of 191 characters fit InnoDB's index limit)

CREATE = [
    f"CREATE TABLE IF NOT EXISTS {IDS} ("
    f" `source` VARCHAR(191) NOT NULL, `id` VARCHAR({ID_CHARS}) NOT NULL, `rows_written` INT NOT NULL,"
    " `applied_at` DATETIME(6) NOT NULL,"
    " PRIMARY KEY (`source`, `id`), KEY `applied` (`applied_at`)"
    ") ENGINE=InnoDB",
    f"CREATE TABLE IF NOT EXISTS {OFFSETS} ("
    " `source` VARCHAR(191) NOT NULL, `partition` INT NOT NULL, `next_offset` BIGINT NOT NULL,"
    " `updated_at` DATETIME(6) NOT NULL,"
    " PRIMARY KEY (`source`, `partition`)"
    ") ENGINE=InnoDB",
    f"CREATE TABLE IF NOT EXISTS {DEAD} ("
    " `id` BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, `source` VARCHAR(191) NOT NULL,"
    " `table_name` VARCHAR(64) NOT NULL, `position` VARCHAR(191) NOT NULL, `payload` LONGBLOB NOT NULL,"
    " `reason` TEXT NOT NULL, `created_at` DATETIME(6) NOT NULL,"
    " KEY `by_source` (`source`, `created_at`)"
    ") ENGINE=InnoDB",
]


def key_of(ident: str) -> str:
    """A broker's message id as the key recorded: as it is, or when longer than a key may be, its
    SHA-256 (never cut short: two long ids with the same beginning are two messages)."""
    if len(ident) <= ID_CHARS:
        return ident
    return "sha256:" + hashlib.sha256(ident.encode("utf-8", "surrogatepass")).hexdigest()


async def ensure_tables(db: Database) -> None:
    for statement in CREATE:
        await db.fetch(statement)


async def applied_ids(session: Session, source: str, keys: Sequence[str]) -> dict[str, int]:
    """Which of these ids are recorded already (committed by anyone), with their rows written."""
    marks = ", ".join(["%s"] * len(keys))
    result = await session.execute(
        f"SELECT `id`, `rows_written` FROM {IDS} WHERE `source` = %s AND `id` IN ({marks})", (source, *keys)
    )
    return {str(ident): int(rows) for ident, rows in result.rows}


async def record_ids(session: Session, source: str, applied: Sequence[tuple[str, int]]) -> None:
    """(id, rows written) of messages applied in this transaction. A duplicate key (error 1062)
    means another consumer applied one of them since `applied_ids` looked: the caller starts over."""
    marks = ", ".join([f"(%s, %s, %s, {NOW})"] * len(applied))
    params = [v for ident, rows in applied for v in (source, ident, rows)]
    await session.execute(f"INSERT INTO {IDS} (`source`, `id`, `rows_written`, `applied_at`) VALUES {marks}", params)


async def next_offsets(session: Session, source: str, partitions: Sequence[int]) -> dict[int, int]:
    """The next offset to apply per partition, its row locked until COMMIT: two consumers that both
    think they own a partition (a rebalance in flight) take turns, and the second sees what the
    first applied. UNKNOWN: nothing applied yet."""
    marks = ", ".join(["%s"] * len(partitions))
    result = await session.execute(
        f"SELECT `partition`, `next_offset` FROM {OFFSETS} WHERE `source` = %s AND `partition` IN ({marks}) FOR UPDATE",
        (source, *partitions),
    )
    return {int(p): int(o) for p, o in result.rows}


async def store_offsets(session: Session, source: str, offsets: dict[int, int]) -> None:
    marks = ", ".join([f"(%s, %s, %s, {NOW})"] * len(offsets))
    params = [v for partition, offset in offsets.items() for v in (source, partition, offset)]
    await session.execute(
        f"INSERT INTO {OFFSETS} (`source`, `partition`, `next_offset`, `updated_at`) VALUES {marks}"
        " ON DUPLICATE KEY UPDATE `next_offset` = GREATEST(`next_offset`, VALUES(`next_offset`)),"
        " `updated_at` = VALUES(`updated_at`)",
        params,
    )


async def stored_offsets(db: Database, source: str, partitions: Sequence[int]) -> dict[int, int]:
    """Where a consumer given these partitions starts: rows made (as UNKNOWN) for partitions never
    seen, so the lock in `next_offsets` always has a row to take."""
    marks = ", ".join([f"(%s, %s, {UNKNOWN}, {NOW})"] * len(partitions))

    async def work(session: Session) -> dict[int, int]:
        await session.execute(
            f"INSERT IGNORE INTO {OFFSETS} (`source`, `partition`, `next_offset`, `updated_at`) VALUES {marks}",
            [v for p in partitions for v in (source, p)],
        )
        found = await session.execute(
            f"SELECT `partition`, `next_offset` FROM {OFFSETS} WHERE `source` = %s AND `partition` IN"
            f" ({', '.join(['%s'] * len(partitions))})",
            (source, *partitions),
        )
        return {int(p): int(o) for p, o in found.rows}

    return await db.transaction(work)


async def dead_letter(session: Session, source: str, table: str, letters: Sequence[tuple[str, bytes, str]]) -> None:
    """(position, payload, reason) of messages that could not be applied, in their transaction."""
    marks = ", ".join([f"(%s, %s, %s, %s, %s, {NOW})"] * len(letters))
    params = [v for position, payload, reason in letters for v in (source, table, position, payload, reason)]
    await session.execute(
        f"INSERT INTO {DEAD} (`source`, `table_name`, `position`, `payload`, `reason`, `created_at`) VALUES {marks}",
        params,
    )


async def forget_ids(db: Database, older_than_s: int, limit: int = 10_000) -> int:
    """Drop id records past the retention (a batch at a time); returns how many went."""
    result = await db.fetch(
        f"DELETE FROM {IDS} WHERE `applied_at` < {NOW} - INTERVAL %s SECOND LIMIT %s", (older_than_s, limit)
    )
    return result.affected


SHOWN_BYTES = 4096  # of a dead letter's payload, in a listing


async def dead_letters(
    db: Database, tables: Sequence[str] | None, source: str | None, before: int | None, limit: int
) -> list[dict]:
    """Dead letters, newest first: of `tables` (None: any), of `source`, with ids below `before`. A
    payload is shown as text when it is UTF-8 (else base64), its first SHOWN_BYTES only."""
    if tables is not None and not tables:
        return []
    where: list[str] = ["1"]
    params: list[Any] = []
    if tables is not None:
        where.append(f"`table_name` IN ({', '.join(['%s'] * len(tables))})")
        params.extend(tables)
    if source is not None:
        where.append("`source` = %s")
        params.append(source)
    if before is not None:
        where.append("`id` < %s")
        params.append(before)
    try:
        result = await db.fetch(
            f"SELECT `id`, `source`, `table_name`, `position`, LEFT(`payload`, {SHOWN_BYTES}), LENGTH(`payload`),"
            f" `reason`, `created_at` FROM {DEAD} WHERE {' AND '.join(where)} ORDER BY `id` DESC LIMIT %s",
            (*params, limit),
        )
    except TableNotFound:  # no broker stream has run against this database: none
        return []
    return [_letter(*row) for row in result.rows]


def _letter(ident: int, source: str, table: str, position: str, head: bytes, size: int, reason: str,
            created: Any) -> dict:
    head = bytes(head)
    payload, encoding = base64.b64encode(head).decode("ascii"), "base64"  # binary: shown exactly
    for cut in range(4 if size > len(head) else 1):  # text cut inside a character: up to its start
        try:
            payload, encoding = head[: len(head) - cut].decode("utf-8"), "utf-8"
            break
        except UnicodeDecodeError:
            continue
    return {
        "id": int(ident), "source": source, "table": table, "position": position, "reason": reason,
        "payload": payload, "payload_encoding": encoding, "payload_bytes": int(size),
        "truncated": int(size) > len(head), "created_at": created,
    }
