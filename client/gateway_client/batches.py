"""Rows into numbered batches, and the idempotency key of each (pure)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any


@dataclass
class Batch:
    number: int  # from 0, in file order
    rows: list[tuple[int, Any]]  # (the row's line in the file, its cells)


def batches(rows: Iterable[tuple[int, Any]], size: int) -> Iterator[Batch]:
    chunk: list[tuple[int, Any]] = []
    number = 0
    for row in rows:
        chunk.append(row)
        if len(chunk) >= size:
            yield Batch(number, chunk)
            number, chunk = number + 1, []
    if chunk:
        yield Batch(number, chunk)


def batch_key(file_hash: str, table: str, mode: str, batch_rows: int, number: int, attempt: int) -> str:
    """The Idempotency-Key of one send of one batch: the same file, table, mode, batch size and
    batch give the same key, in this run or any later one, so a batch is never written twice. A
    batch sent again without rows the gateway refused (`attempt` 1, 2, ...) is another request,
    with a key of its own."""
    seed = f"{file_hash}\n{table}\n{mode}\n{batch_rows}\n{number}\n{attempt}"
    return "gwc-" + hashlib.sha256(seed.encode()).hexdigest()[:48]
