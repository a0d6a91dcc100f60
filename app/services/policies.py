"""Row policies: a table's column bound to a claim of the caller (a token's claim, an API key's
`claims`), so a caller sees and touches only the rows whose column holds its claim's value.

Stored in `_gateway_policies`, one row per table; every instance reads them all again when its copy
is older than `ttl_s` (GATEWAY_POLICIES_TTL_S, 1 s), so a policy stored on one instance is enforced
by all within that, and at once by the one that stored it. `ttl_s = 0` reads before every use.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from app.core.auth import Principal
from app.core.errors import Forbidden, GatewayError, TableNotFound
from app.db.catalog import Column, Table
from app.db.copies import SharedCopy
from app.db.database import Database
from app.query.embeds import Embed, Item
from app.query.lists import ListQuery
from app.query.nodes import Condition, Exists, Group, Node
from app.rows.values import to_compare

log = logging.getLogger("gateway.policies")
TABLE = "`_gateway_policies`"
CREATE = (
    f"CREATE TABLE IF NOT EXISTS {TABLE} ("
    " `table_name` VARCHAR(64) NOT NULL PRIMARY KEY,"
    " `column_name` VARCHAR(64) NOT NULL,"
    " `claim` VARCHAR(255) NOT NULL,"
    " `updated_at` DATETIME(3) NOT NULL,"
    " `updated_by` VARCHAR(255) NOT NULL"
    ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"
)
ALL = f"SELECT `table_name`, `column_name`, `claim` FROM {TABLE}"
PUT = (
    f"INSERT INTO {TABLE} (`table_name`, `column_name`, `claim`, `updated_at`, `updated_by`)"
    " VALUES (%s, %s, %s, UTC_TIMESTAMP(3), %s)"
    " ON DUPLICATE KEY UPDATE `column_name` = VALUES(`column_name`), `claim` = VALUES(`claim`),"
    " `updated_at` = VALUES(`updated_at`), `updated_by` = VALUES(`updated_by`)"
)
REMOVE = f"DELETE FROM {TABLE} WHERE `table_name` = %s"


@dataclass(frozen=True, slots=True)
class Policy:
    table: str
    column: str
    claim: str

    def describe(self) -> dict:
        return {"table": self.table, "column": self.column, "claim": self.claim}


def bound(policy: Policy, table: Table, who: Principal) -> tuple[Column, Any]:
    """The column and the value the caller's rows of `table` hold: 403 without the claim (never every
    row), or when the policy names a column the table no longer has."""
    column = table.column(policy.column)
    value = who.claims.get(policy.claim)
    if column is None or value is None or isinstance(value, (dict, list)) or str(value).strip() == "":
        raise Forbidden(
            f"'{table.name}' has a row policy: its rows are seen by the claim '{policy.claim}', which "
            f"'{who.name}' does not hold" if column is not None else
            f"'{table.name}' has a row policy on a column it no longer has ('{policy.column}'): it serves no rows",
            {"table": table.name, "claim": policy.claim},
        )
    return column, value


def condition(policy: Policy, table: Table, who: Principal) -> Condition:
    column, value = bound(policy, table, who)
    return Condition(column, "eq", _as_text_value(column, value))


def _as_text_value(column: Column, value: Any) -> Any:
    """A claim's (or a written) value as the column compares it, read as a filter's text is."""
    return to_compare(column, value if isinstance(value, str) else str(value), text=True)


async def refuse_bulk(policies: "PolicyStore | None", table: Table, what: str) -> None:
    """Imports, jobs and streams write rows no caller's claim has been checked against: a table with
    a policy takes none (403), rather than rows its policy never saw."""
    if policies is not None and table.name in await policies.all():
        raise Forbidden(
            f"'{table.name}' has a row policy: {what} into it are not offered (write its rows through "
            f"POST /api/{table.name}, which sets the policy's column)",
            {"table": table.name},
        )


class PolicyStore:
    """Every table's policy, as a shared copy (app/db/copies.py) read again after `ttl_s`."""

    def __init__(self, db: Database, ttl_s: float = 1.0):
        self.db, self.ttl_s = db, ttl_s
        self._copy: SharedCopy[dict[str, Policy]] = SharedCopy(self._read, {}, ttl_s, "row policies")

    async def ensure_table(self) -> None:
        await self.db.fetch(CREATE)

    async def all(self) -> dict[str, Policy]:
        """Every table's policy, as read at most `ttl_s` ago."""
        return await self._copy.get()

    async def _read(self) -> dict[str, Policy]:
        try:
            rows = (await self.db.fetch(ALL)).rows
        except TableNotFound:  # never made (a read-only user, say): nobody has stored a policy
            rows = []
        return {t: Policy(t, c, claim) for t, c, claim in rows}

    async def put(self, table: Table, column: str, claim: str, who: str) -> Policy:
        await self.ensure_table()
        await self.db.transaction(lambda session: session.execute(PUT, (table.name, column, claim, who)))
        self._copy.forget()  # this instance enforces it from the next request
        return Policy(table.name, column, claim)

    async def remove(self, table: Table) -> bool:
        try:
            removed = await self.db.transaction(lambda session: session.execute(REMOVE, (table.name,)))
        except TableNotFound:
            return False
        self._copy.forget()
        return removed.affected > 0


# --- a read, restricted (pure): the policy's condition ANDed wherever a policy table's rows are read


def _and(first: Node | None, second: Node | None) -> Node | None:
    if first is None or second is None:
        return first if second is None else second
    return Group("and", (first, second))


class Restriction:
    """The caller's view of the tables with policies: each one's condition, made once a request."""

    def __init__(self, policies: dict[str, Policy], who: Principal):
        self.policies, self.who = policies, who
        self._made: dict[str, Condition] = {}

    def of(self, table: Table) -> Condition | None:
        policy = self.policies.get(table.name)
        if policy is None:
            return None
        made = self._made.get(table.name)
        if made is None:
            made = self._made[table.name] = condition(policy, table, self.who)
        return made

    def node(self, node: Node | None) -> Node | None:
        """Every related table a filter reads (EXISTS) is read as the caller may see it."""
        if isinstance(node, Group):
            return Group(node.op, tuple(self.node(item) or item for item in node.items))
        if isinstance(node, Exists):
            return Exists(node.relation, _and(self.of(node.relation.target), self.node(node.where)), node.negated)
        return node

    def items(self, items: tuple[Item, ...]) -> tuple[Item, ...]:
        return tuple(self.embed(i) if isinstance(i, Embed) else i for i in items)

    def embed(self, embed: Embed) -> Embed:
        return dataclasses.replace(
            embed, where=_and(self.of(embed.relation.target), self.node(embed.where)), items=self.items(embed.items)
        )

    def where(self, table: Table, where: Node | None) -> Node | None:
        """A read's or a write's filter on `table`: its own policy's condition, and its relations'."""
        return _and(self.of(table), self.node(where))

    def read(self, table: Table, query: ListQuery) -> ListQuery:
        """`query` itself when no table it reads has a policy."""
        where, items = self.where(table, query.where), self.items(query.items)
        if where == query.where and items == query.items:
            return query
        return dataclasses.replace(query, where=where, items=items)

    # --- writes: every row holds the caller's value; a row naming another is refused

    def rows(self, table: Table, rows: list[Any]) -> list[Any]:
        """New rows with the policy's column set to the caller's value (403 for a row naming another)."""
        policy = self.policies.get(table.name)
        if policy is None:
            return rows
        column, value = bound(policy, table, self.who)
        made = self.of(table)
        out: list[Any] = []
        for index, row in enumerate(rows):
            if isinstance(row, dict) and column.name in row:
                if not holds(made, row[column.name]):
                    raise _other(table, column, index)
                out.append(row)
            else:
                out.append(row | {column.name: value} if isinstance(row, dict) else row)
        return out

    def changes(self, table: Table, values: Mapping[Column, Any], index: int | None = None) -> None:
        """An update may set the policy's column only to the caller's own value."""
        made = self.of(table)
        if made is not None and made.column in values and not holds(made, values[made.column]):
            raise _other(table, made.column, index)


def holds(made: Condition | None, value: Any) -> bool:
    """Does `value` (as given, or as converted for the column) equal the caller's value?"""
    if made is None:
        return True
    if value is None:
        return False
    try:
        return _as_text_value(made.column, value) == made.value
    except GatewayError:
        return False


def _other(table: Table, column: Column, index: int | None) -> Forbidden:
    where = f"row {index}: " if index is not None else ""
    return Forbidden(
        f"{where}'{table.name}' has a row policy: '{column.name}' holds the caller's own value, not another",
        {"table": table.name, "column": column.name} | ({"row": index} if index is not None else {}),
    )
