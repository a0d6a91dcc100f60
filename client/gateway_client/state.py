"""What a run has confirmed, saved after every batch so that Ctrl-C or a crash loses nothing:
FILE.gateway-state.json. `--resume` sends only the batches not yet confirmed (and even without it,
a batch sent again replays the gateway's first answer: its key is the same)."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass
class State:
    file_hash: str
    table: str
    mode: str
    batch_rows: int
    done: list[int] = field(default_factory=list)  # confirmed batches from done_below on (few: those done out of order)
    rows: dict[str, int] = field(default_factory=lambda: {"inserted": 0, "updated": 0, "skipped": 0, "failed": 0})
    failed_bytes: int = 0  # the failed file's length when the last batch was confirmed
    done_below: int = 0  # every batch numbered below it is confirmed (the file stays small, however many batches)

    def matches(self, other: "State") -> bool:
        return (self.file_hash, self.table, self.mode, self.batch_rows) == (
            other.file_hash,
            other.table,
            other.mode,
            other.batch_rows,
        )

    def confirmed(self, number: int) -> bool:
        return number < self.done_below or number in self.done

    def confirm(self, number: int) -> None:
        ahead = set(self.done) | {number}
        while self.done_below in ahead:
            ahead.discard(self.done_below)
            self.done_below += 1
        self.done = sorted(ahead)

    @property
    def batches_done(self) -> int:
        return self.done_below + len(self.done)


def state_path(path: Path) -> Path:
    return path.with_name(f"{path.name}.gateway-state.json")


def load(path: Path) -> State | None:
    try:
        return State(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def save(state: State, path: Path) -> None:
    """Written to a temporary file and renamed: a crash mid-write leaves the previous state whole."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(asdict(state)))
    os.replace(temporary, path)
