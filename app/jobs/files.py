"""An uploaded file kept in the database for its job, where any instance can read it.

The upload is cut into chunks of `chunk_bytes`, each compressed (Zstandard level 1, in a worker
thread) unless compressing does not pay (spreadsheets are zip files already), and stored as one row
while the next chunk arrives. Measured on these machines for a 4 MiB chunk of CSV: zstd 1 keeps 32%
in 10 ms and restores it in 5 ms; zlib 1 keeps 38% in 35 ms and 14 ms. Fewer bytes matter most:
the database is the shared, busy part (figures in bench/csv.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import zstandard

from app.core.errors import SourceNotFound, UploadInterrupted
from app.jobs.store import JobStore

PAYS = 0.9  # stored compressed only when that saves at least 10%


def _pack(data: bytes) -> tuple[bool, bytes]:
    packed = zstandard.ZstdCompressor(level=1).compress(data)
    return (True, packed) if len(packed) < len(data) * PAYS else (False, data)


def _unpack(data: bytes) -> bytes:
    return zstandard.ZstdDecompressor().decompress(data)


class Arrival:
    """An upload being stored by this instance, followed by the import that runs while it arrives.
    The last few chunks stored are kept as they were read: an import that keeps up takes them from
    memory rather than from the database."""

    KEEP = 8  # chunks (8 MiB by default)

    def __init__(self) -> None:
        self.recent: dict[int, bytes] = {}
        self.stored = 0  # chunks stored so far
        self.total: int | None = None  # chunks in all, once the upload is whole
        self.failed = False
        self.abandoned = False  # the job ended: the rest of the upload need not be stored
        self._changed = asyncio.Event()

    def stored_one(self, data: bytes) -> None:
        self.recent[self.stored] = data
        self.recent.pop(self.stored - self.KEEP, None)
        self.stored += 1
        self._changed.set()

    def take(self, seq: int) -> bytes | None:
        return self.recent.pop(seq, None)

    def finish(self, total: int) -> None:
        self.total = total
        self._changed.set()

    def fail(self) -> None:
        self.failed = True
        self._changed.set()

    async def wait_for(self, seq: int) -> bool:
        """Chunk `seq` is stored (True), or the upload ended before it (False)."""
        while self.stored <= seq:
            if self.failed:
                raise UploadInterrupted("the upload stopped before the whole file arrived")
            if self.total is not None:
                return False
            self._changed.clear()
            await self._changed.wait()
        return True


async def store_upload(
    store: JobStore, job_id: str, chunks: AsyncIterator[bytes], chunk_bytes: int, lease_s: float,
    arrival: Arrival | None = None,
) -> tuple[int, int]:
    """Store the upload's bytes; returns (bytes, chunks). One chunk is written while the next is read."""
    size, seq = 0, 0
    pending: asyncio.Task | None = None
    buffer: list[bytes] = []
    buffered = 0

    async def put(number: int, data: bytes) -> None:
        if arrival is not None and arrival.abandoned:
            return
        compressed, packed = await asyncio.to_thread(_pack, data)
        await store.store_chunk(job_id, number, compressed, packed, lease_s)
        if arrival is not None:
            arrival.stored_one(data)

    async def flush() -> None:
        nonlocal pending, seq, buffer, buffered
        data = b"".join(buffer)
        buffer, buffered = [], 0
        if pending is not None:
            await pending
        pending = asyncio.create_task(put(seq, data))
        seq += 1

    try:
        async for chunk in chunks:
            size += len(chunk)
            buffer.append(chunk)
            buffered += len(chunk)
            if buffered >= chunk_bytes:
                await flush()
        if buffered or seq == 0:
            await flush()
        if pending is not None:
            await pending
    except BaseException:
        if pending is not None and not pending.done():
            pending.cancel()
            await asyncio.gather(pending, return_exceptions=True)
        if arrival is not None:
            arrival.fail()
        raise
    return size, seq


async def read_upload(
    store: JobStore, job_id: str, chunks: int | None, arrival: Arrival | None = None
) -> AsyncIterator[bytes]:
    """The stored upload's bytes, the next chunk fetched while this one is parsed. With `arrival`
    (the upload is still being stored here), each chunk is read as soon as it is stored."""
    if arrival is None and chunks is None:
        raise UploadInterrupted("the upload stopped before the whole file arrived (its instance went away)")

    async def available(seq: int) -> bool:
        return await arrival.wait_for(seq) if arrival is not None else seq < (chunks or 0)

    def stored(seq: int) -> bool:
        return arrival.stored > seq if arrival is not None else seq < (chunks or 0)

    async def fetch(seq: int) -> bytes:
        if arrival is not None and (data := arrival.take(seq)) is not None:
            return data
        found = await store.chunk(job_id, seq)
        if found is None:
            raise SourceNotFound(f"the job's stored upload is incomplete (chunk {seq} is missing)")
        compressed, data = found
        return await asyncio.to_thread(_unpack, data) if compressed else data

    seq = 0
    upcoming: asyncio.Task | None = None
    try:
        while True:
            if upcoming is None:
                if not await available(seq):
                    return
                upcoming = asyncio.create_task(fetch(seq))
            data = await upcoming
            seq += 1
            upcoming = asyncio.create_task(fetch(seq)) if stored(seq) else None
            yield data
    finally:
        if upcoming is not None:
            upcoming.cancel()
            await asyncio.gather(upcoming, return_exceptions=True)
