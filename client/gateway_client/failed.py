"""Rows the gateway refused, written beside the input with their line and reason, ready to fix and
send again: FILE.failed.csv (or .tsv, .jsonl, as the input; sheets give CSV)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, TextIO

from gateway_client.readers import Kind


def failed_path(path: Path, kind: Kind) -> Path:
    extension = {"csv": "csv", "tsv": "tsv", "jsonl": "jsonl", "xlsx": "csv"}[kind]
    return path.with_name(f"{path.stem}.failed.{extension}")


class FailedFile:
    """Opened on the first refused row (a run with none leaves no file); appended to on --resume."""

    def __init__(self, path: Path, kind: Kind, header: list[str], *, append: bool):
        self.path, self.kind, self.header, self.append = path, kind, header, append
        self.count = 0
        self._file: TextIO | None = None
        self._csv: Any = None

    def _open(self) -> TextIO:
        exists = self.append and self.path.exists() and self.path.stat().st_size > 0
        file = self._file = self.path.open(
            "a" if self.append else "w", newline="", encoding="utf-8", errors="surrogateescape"
        )
        if self.kind != "jsonl":
            self._csv = csv.writer(file, delimiter="\t" if self.kind == "tsv" else ",", lineterminator="\n")
            if not exists:
                self._csv.writerow([*self.header, "_line", "_reason"])
        return file

    def write(self, line: int, row: Any, reason: str) -> None:
        file = self._file or self._open()
        if self.kind == "jsonl":
            record = dict(row) if isinstance(row, dict) else {"_text": getattr(row, "reason", str(row))}
            file.write(json.dumps(record | {"_line": line, "_reason": reason}, ensure_ascii=False) + "\n")
        elif isinstance(row, dict):  # a sheet's row
            self._csv.writerow([*("" if row.get(h) is None else row.get(h) for h in self.header), line, reason])
        elif isinstance(row, bytes):  # a CSV or TSV record as it was in the file, two cells added
            text = row.decode("utf-8", "surrogateescape").rstrip("\r\n")
            file.write(text + ("\t" if self.kind == "tsv" else ","))
            self._csv.writerow([line, reason])
        else:
            self._csv.writerow([*row, line, reason])
        self.count += 1

    def flush(self) -> int:
        """Written through; the file's length (0 while there is none)."""
        if self._file is not None:
            self._file.flush()
        return self.path.stat().st_size if self.path.exists() else 0

    def cut(self, length: int) -> None:
        """Resuming: drop what an unconfirmed batch wrote after the last confirmed one."""
        if self.path.exists() and self.path.stat().st_size > length:
            with self.path.open("r+b") as f:
                f.truncate(length)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
