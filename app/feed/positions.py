"""Where a change is in the binlog: `file:offset:index`, the file and offset of its transaction's
first event (a reader can only start at a transaction's start) and the change's place in that
transaction. Totally ordered in commit order on one server. Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass

from app.core.errors import InvalidPosition

_TEXT = re.compile(r"(?P<file>[^:\s]{1,255}\.(?P<seq>\d{1,10})):(?P<offset>\d{1,20}):(?P<index>-1|\d{1,10})")


@dataclass(frozen=True, order=True)
class Position:
    """A change's place: after this one comes the next. `index` -1: before the transaction's first
    change (a reader starting there misses nothing at `offset`)."""

    seq: int  # the file's number (binlog.000042 -> 42): files are read in this order
    offset: int
    index: int
    file: str

    @classmethod
    def start(cls, file: str, offset: int, index: int = -1) -> "Position":
        return cls(_seq(file), offset, index, file)

    def __str__(self) -> str:
        return f"{self.file}:{self.offset}:{self.index}"

    @property
    def transaction(self) -> tuple[int, int]:
        return self.seq, self.offset


def parse(text: str) -> Position:
    found = _TEXT.fullmatch(text.strip())
    if found is None:
        raise InvalidPosition(
            "a change feed position is file:offset:index, as each event's id gives it (binlog.000012:4711:0)",
            {"position": text[:100]},
        )
    return Position(int(found["seq"]), int(found["offset"]), int(found["index"]), found["file"])


def _seq(file: str) -> int:
    return int(file.rsplit(".", 1)[1]) if "." in file and file.rsplit(".", 1)[1].isdigit() else 0
