"""The WebSocket streams of one gateway process: one applier and group committer per (table, mode),
shared by every connection to that table."""

from __future__ import annotations

from app.core.config import Settings
from app.db.catalog import Catalog
from app.db.database import Database
from app.services.policies import PolicyStore
from app.services.rules_store import RulesStore
from app.streams.applier import Counters, StreamApplier, StreamMode
from app.streams.committer import GroupCommitter


def websocket_source(table: str) -> str:
    """The position namespace of a table's WebSocket messages: their ids are unique per table."""
    return f"ws:{table}"


class Streams:
    def __init__(
        self, db: Database, catalog: Catalog, rules: RulesStore, settings: Settings, policies: PolicyStore | None = None
    ):
        self.db, self.catalog, self.rules, self.settings, self.policies = db, catalog, rules, settings, policies
        self._committers: dict[tuple[str, StreamMode], GroupCommitter] = {}

    def committer(self, table: str, mode: StreamMode) -> GroupCommitter:
        found = self._committers.get((table, mode))
        if found is None:
            applier = StreamApplier(
                self.db, self.catalog, self.rules, table, websocket_source(table),
                mode=mode, dead_letters=False, load_data=self.settings.import_load_data, policies=self.policies,
            )
            found = GroupCommitter(applier, self.settings.stream_group_rows, self.settings.stream_group_ms / 1000)
            self._committers[(table, mode)] = found
        return found

    def counters(self) -> dict[tuple[str, StreamMode], Counters]:
        """(table, mode) -> the applier's counters, for metrics."""
        return {key: c.applier.counters for key, c in self._committers.items()}

    async def stop(self) -> None:
        for committer in self._committers.values():
            await committer.stop()
