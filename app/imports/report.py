"""The import report: every record read is accounted for, by position (pure).

    rows_read = rows_inserted + rows_updated + rows_skipped + rows_failed + rows_not_applied + rows_outcome_unknown

Positions are named for what the source counts (`unit`): errors carry `line`, `row` or `index`, and
the ranges are `committed_lines`, `committed_rows` or `committed_indexes`. A validation (dry run)
writes nothing: its good rows are `rows_valid`, and also `rows_not_applied`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from app.rows.problems import RowProblem

PLURAL = {"line": "lines", "row": "rows", "index": "indexes"}


@dataclass
class ImportReport:
    table: str
    mode: str
    atomic: bool
    max_errors: int
    unit: str = "line"
    dry_run: bool = False
    source: dict[str, Any] | None = None  # what was read: the format, the sheet
    rows_read: int = 0
    rows_inserted: int = 0
    rows_updated: int = 0
    rows_skipped: int = 0
    rows_failed: int = 0
    rows_not_applied: int = 0
    rows_outcome_unknown: int = 0
    rows_valid: int = 0
    rules_version: int | None = None
    errors: list[dict] = field(default_factory=list)
    errors_total: int = 0
    committed: list[list[int]] = field(default_factory=list)  # position ranges, merged in as_dict
    not_committed: list[list[int]] = field(default_factory=list)
    outcome_unknown: list[list[int]] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def fail(self, position: int, problem: RowProblem) -> None:
        """A record that is not written, and why (said as a POST of the row would say it)."""
        self.rows_failed += 1
        self.errors_total += 1
        if len(self.errors) < self.max_errors:
            self.errors.append(problem.at(self.unit, position))

    @property
    def listing(self) -> bool:
        """Are failures still listed (not only counted)?"""
        return len(self.errors) < self.max_errors

    def counted_failure(self) -> None:
        """A failure past the listed ones: counted, its reason never built."""
        self.rows_failed += 1
        self.errors_total += 1

    def not_written(self, span: list[int], rows: int) -> None:
        """Rows read and never written (the import stopped before their batch)."""
        self.not_committed.append(span)
        self.rows_not_applied += rows

    def as_dict(self) -> dict:
        elapsed = time.monotonic() - self.started
        written = self.rows_inserted + self.rows_updated + self.rows_skipped
        report: dict[str, Any] = {"table": self.table, "mode": self.mode, "atomic": self.atomic}
        if self.source is not None:
            report["source"] = self.source
        if self.dry_run:
            report["validated_only"] = True
        report |= {
            "rows_read": self.rows_read,
            "rows_inserted": self.rows_inserted,
            "rows_updated": self.rows_updated,
            "rows_skipped": self.rows_skipped,
            "rows_failed": self.rows_failed,
            "rows_not_applied": self.rows_not_applied,
            "rows_outcome_unknown": self.rows_outcome_unknown,
        }
        if self.dry_run:
            report["rows_valid"] = self.rows_valid
        report["rules_version"] = self.rules_version  # the version every row was checked against; None: no rules
        report |= {
            "errors": sorted(self.errors, key=lambda e: e[self.unit]),
            "errors_total": self.errors_total,
            "elapsed_s": round(elapsed, 3),
            "rows_per_s": round((self.rows_valid if self.dry_run else written) / elapsed) if elapsed > 0 else None,
        }
        units = PLURAL[self.unit]
        report[f"committed_{units}"] = merge(self.committed)
        if self.not_committed or self.outcome_unknown:
            report[f"not_committed_{units}"] = merge(self.not_committed)
            report[f"outcome_unknown_{units}"] = merge(self.outcome_unknown)
        return report


def merge(ranges: list[list[int]]) -> list[list[int]]:
    merged: list[list[int]] = []
    for start, end in sorted(ranges):
        if merged and start <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return merged


def span(rows: Sequence[Any]) -> list[int]:
    """The first and last positions of a batch's rows (or records)."""
    return [rows[0][0], rows[-1][0]]
