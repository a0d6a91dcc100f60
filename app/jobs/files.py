"""An uploaded file kept in the database for its job, where any instance can read it.

The upload is cut into chunks of `chunk_bytes`, each compressed (zlib level 1, in a worker thread)
unless compressing does not pay (spreadsheets are zip files already), and stored as one row while
the next chunk arrives. Measured on these machines: InnoDB takes about 50 MB/s of LONGBLOB
rows, and CSV compresses 3-5x, so storing costs a fraction of the import itself (figures in the
closing note of the job issue and in bench/csv.py).
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import AsyncIterator

from app.core.errors import SourceNotFound
from app.jobs.store import JobStore

PAYS = 0.9  # stored compressed only when that saves at least 10%


def _pack(data: bytes) -> tuple[bool, bytes]:
    packed = zlib.compress(data, 1)
    return (True, packed) if len(packed) < len(data) * PAYS else (False, data)


async def store_upload(
    store: JobStore, job_id: str, chunks: AsyncIterator[bytes], chunk_bytes: int, lease_s: float
) -> tuple[int, int]:
    """Store the upload's bytes; returns (bytes, chunks). One chunk is written while the next is read."""
    size, seq = 0, 0
    pending: asyncio.Task | None = None
    buffer: list[bytes] = []
    buffered = 0

    async def put(number: int, data: bytes) -> None:
        compressed, packed = await asyncio.to_thread(_pack, data)
        await store.store_chunk(job_id, number, compressed, packed, lease_s)

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
        raise
    return size, seq


async def read_upload(store: JobStore, job_id: str, chunks: int) -> AsyncIterator[bytes]:
    """The stored upload's bytes, the next chunk fetched while this one is parsed."""

    async def fetch(seq: int) -> bytes:
        found = await store.chunk(job_id, seq)
        if found is None:
            raise SourceNotFound(f"the job's stored upload is incomplete (chunk {seq} is missing)")
        compressed, data = found
        return await asyncio.to_thread(zlib.decompress, data) if compressed else data

    upcoming = asyncio.create_task(fetch(0)) if chunks else None
    try:
        for seq in range(chunks):
            assert upcoming is not None
            data = await upcoming
            upcoming = asyncio.create_task(fetch(seq + 1)) if seq + 1 < chunks else None
            yield data
    finally:
        if upcoming is not None:
            upcoming.cancel()
            await asyncio.gather(upcoming, return_exceptions=True)
