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
    done: list[int] = field(default_factory=list)  # confirmed batch numbers
    rows: dict[str, int] = field(default_factory=lambda: {"inserted": 0, "updated": 0, "skipped": 0, "failed": 0})
    failed_bytes: int = 0  # the failed file's length when the last batch was confirmed

    def matches(self, other: "State") -> bool:
        return (self.file_hash, self.table, self.mode, self.batch_rows) == (other.file_hash, other.table, other.mode, other.batch_rows)


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
