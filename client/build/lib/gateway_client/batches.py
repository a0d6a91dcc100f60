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


def batches(blocks: Iterable[list[tuple[int, Any]]], size: int) -> Iterator[Batch]:
    """Blocks of rows (as a reader gives them) cut into numbered batches of `size` rows; the cut
    depends only on the rows, never on the blocks, so a file always gives the same batches."""
    chunk: list[tuple[int, Any]] = []
    number = 0
    for block in blocks:
        at = 0
        while at < len(block):
            take = block[at : at + size - len(chunk)]
            chunk = take if not chunk else chunk + take
            at += len(take)
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
