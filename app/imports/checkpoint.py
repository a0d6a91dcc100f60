"""Resumable imports (pure): what earlier attempts of a job committed, and the hook that records
each transaction's rows inside that transaction.

An import job (app/jobs) hands the engine a `Checkpoint`. Every transaction the writer commits also
calls `record(session, ranges, counts)` before its COMMIT, so the job's record of which positions
are in the table commits or vanishes with the rows themselves. A later attempt (another
instance, after a crash) reads those records back as `done`: the engine reads the source again from
the start, skips every record whose position is committed (counting it in the report as the first
attempt did) and writes the rest. Rows that failed are never recorded, so they are checked and
reported again; nothing committed is written twice.
"""

from __future__ import annotations

import bisect
from collections.abc import Awaitable, Callable, Container, Iterable
from dataclasses import dataclass, field
from typing import Any

Counts = tuple[int, int, int]  # inserted, updated, skipped
Ranges = list[list[int]]  # [first, last] position ranges, inclusive


def ranges(positions: Iterable[int]) -> Ranges:
    """Sorted positions as inclusive ranges: [1, 2, 3, 7] -> [[1, 3], [7, 7]]."""
    out: Ranges = []
    for p in positions:
        if out and p == out[-1][1] + 1:
            out[-1][1] = p
        else:
            out.append([p, p])
    return out


def written(rows: list, skip: Container[int]) -> Ranges:
    """The ranges of the rows' positions (`(position, ...)` tuples, in order), but those in `skip`.
    Contiguous rows, the usual batch, take no loop (a loop over every row cost an import 4%)."""
    if not skip and rows:
        first, last = rows[0][0], rows[-1][0]
        if last - first + 1 == len(rows):
            return [[first, last]]
    return ranges(r[0] for r in rows if r[0] not in skip)


@dataclass
class Committed:
    """Positions committed by earlier attempts, and what they counted (from the job's records)."""

    spans: Ranges = field(default_factory=list)
    inserted: int = 0
    updated: int = 0
    skipped: int = 0

    def add(self, spans: Ranges, counts: Counts) -> None:
        self.spans.extend(spans)
        self.inserted += counts[0]
        self.updated += counts[1]
        self.skipped += counts[2]

    def merged(self) -> Ranges:
        merged: Ranges = []
        for first, last in sorted(self.spans):
            if merged and first <= merged[-1][1] + 1:
                merged[-1][1] = max(merged[-1][1], last)
            else:
                merged.append([first, last])
        return merged


class SkipCommitted:
    """Answers "was this position committed?" for positions in any order, by bisection over the
    merged ranges (records arrive in increasing order; a lookup is O(log ranges))."""

    def __init__(self, committed: Committed):
        merged = committed.merged()
        self.firsts = [first for first, _ in merged]
        self.lasts = [last for _, last in merged]

    def __bool__(self) -> bool:
        return bool(self.firsts)

    def __contains__(self, position: int) -> bool:
        i = bisect.bisect_right(self.firsts, position) - 1
        return i >= 0 and position <= self.lasts[i]


@dataclass
class Checkpoint:
    done: Committed
    record: Callable[[Any, Ranges, Counts], Awaitable[None]]  # (session, position ranges, counts)
    # Called before each batch is handed on: raises to stop the import there (a job cancelled).
    check: Callable[[], None] | None = None
    # The live report, for progress (set by the engine when the import starts).
    report: Any = None
