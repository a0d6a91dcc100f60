"""CRUD use cases: resolve the table, parse the request, build SQL, run it through the database."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from functools import lru_cache
from itertools import groupby
from typing import Any, TypeVar

from app.core import context
from app.core.auth import NOBODY
from app.core.errors import (
    Forbidden,
    GatewayError,
    InvalidBody,
    InvalidFilter,
    PayloadTooLarge,
    RowNotFound,
    UnknownColumn,
    UnknownRelation,
    WhereRequired,
)
from app.db import relations
from app.db.catalog import Catalog, Column, Table
from app.db.database import Database, Session, StatementResult
from app.query import aggregates, cursors, estimates, sql
from app.query.aggregates import AggregateQuery
from app.query.embeds import Item, parse_items, tables_read
from app.query.filters import equals, key_condition, key_values, parse_filter, parse_query_params
from app.query.lists import ListQuery, list_query
from app.query.nodes import Group, Node, searches
from app.query.sql import Mode, Statement
from app.rows.embedded import decoders
from app.rows.objects import ObjectRows, Problems, Rows, refusal
from app.rows.rules import Rules, row_maker
from app.rows.values import OMITTED, output_fixers, rows_to_dicts
from app.services.keyed import (
    as_details,
    given_columns,
    has_omitted_cells,
    keyed_changes,
    named_key,
    one_row_per_key,
    prepare_values,
    written_keys,
)
from app.services.policies import PolicyStore, Restriction
from app.services.rules_store import RulesStore

T = TypeVar("T")
# Checks that the caller may read a table (a read's embedded and filtered-by relations): raises 403.
Permit = Callable[[str], None]


@lru_cache(maxsize=2048)
def _fixers(columns: tuple[Column, ...], json_as_text: bool = False) -> list[tuple[str, Callable[[Any], Any]]]:
    fixers = output_fixers(columns)
    if json_as_text:
        json_columns = {c.name for c in columns if c.kind == "json"}
        fixers = [(name, fix) for name, fix in fixers if name not in json_columns]
    return fixers


def to_records(table_columns: tuple[Column, ...], result: StatementResult, json_as_text: bool = False) -> list[dict]:
    """Rows as dicts of the values JSON shows; `json_as_text`: a JSON column's value as its stored
    text (CSV: the JSON value null is then `null`, not the empty cell of SQL NULL)."""
    return rows_to_dicts(result.names, result.rows, _fixers(table_columns, json_as_text))


Hook = Callable[[Session, Any], Awaitable[None]]  # runs inside a write's transaction, after the write
# A write by key's precondition (If-Match): given the row as GET by key shows it, read FOR UPDATE in
# the write's transaction; raises to refuse the write.
Precondition = Callable[[dict], None]


def check_updated_rows(rules: Rules, table: Table, rows: list[tuple], assignments: dict[Column, Any]) -> None:
    """Whole rows as an update leaves them (read FOR UPDATE, then the new values), against the rules."""
    make = row_maker(table.columns, rules.names)
    positions = {column: i for i, column in enumerate(table.columns)}
    for index, row in enumerate(rows):
        after = list(row)
        for column, value in assignments.items():
            after[positions[column]] = value
        if problems := rules.problems(make(after)):
            raise rules.violation(problems, index if len(rows) > 1 else None)


def _affected(result: StatementResult) -> int:
    return result.affected


def _page(result: StatementResult, limit: int | None) -> bool:
    """Cut a page read with one row extra (`extra_row`) to its limit; was there a next page?"""
    more = limit is not None and len(result.rows) > limit
    if more:
        result.rows = result.rows[:limit]
    return more


def _meta(records: list[dict], limit: int | None, offset: int, more: bool) -> dict:
    return {"count": len(records), "limit": limit, "offset": offset, "next": offset + limit if more and limit else None}


class CrudService:
    def __init__(
        self,
        db: Database,
        catalog: Catalog,
        rules: RulesStore,
        *,
        default_limit: int,
        max_limit: int,
        max_bulk_rows: int,
        single_statement_writes: bool = True,
        policies: PolicyStore | None = None,
    ):
        self.db, self.catalog, self.rules, self.policies = db, catalog, rules, policies
        self.single_statement_writes = single_statement_writes
        self.default_limit, self.max_limit, self.max_bulk_rows = default_limit, max_limit, max_bulk_rows
        self._objects: dict[str, ObjectRows] = {}  # per table: its rows' plans, for its catalog copy and rules

    async def resolve(self, name: str, build: Callable[[Table], T], *, writing: bool = False) -> tuple[Table, T]:
        """Look the table up and parse the request against it; an unknown column may be one added
        since the catalog loaded, so wait for a fresh load and parse once more before answering 400.
        `writing`: a view is refused (405)."""
        find = self.catalog.writable if writing else self.catalog.table
        table = await find(name)
        try:
            return table, build(table)
        except UnknownRelation:  # a foreign key made since, perhaps by a new table: the listing tells
            await self.catalog.refreshed()
        except UnknownColumn:
            await self.catalog.look(table.name)
        except InvalidFilter as exc:
            if not (isinstance(exc.details, dict) and "fulltext" in exc.details):
                raise
            await self.catalog.look(table.name)  # a FULLTEXT index made since the catalog read the table?
        table = await find(name)
        return table, build(table)

    async def restriction(self) -> Restriction | None:
        """The caller's view of the tables with row policies (None: there are none). Outside a
        request there is no caller, and no claim: a table with a policy is a 403 there."""
        policies = await self.policies.all() if self.policies is not None else {}
        return Restriction(policies, context.current().who or NOBODY) if policies else None

    async def visible(self, table: Table, query: ListQuery) -> ListQuery:
        """A read as the caller may see it: the row policies of the table and of every table it
        embeds or filters by, ANDed in."""
        restriction = await self.restriction()
        return restriction.read(table, query) if restriction is not None else query

    async def _owned(self, table: Table, where: Node, assignments: Mapping[Column, Any] | None = None) -> Node:
        """An update's or a delete's filter, kept to the caller's rows where `table` has a row
        policy; an update's values may not give a row away, nor refer to a row the caller does not see."""
        restriction = await self.restriction()
        if restriction is None:
            return where
        if assignments:
            restriction.changes(table, assignments)
            await self._referenced(restriction, table, list(assignments), [list(assignments.values())])
        return restriction.where(table, where) or where

    async def _referenced(
        self, restriction: Restriction | None, table: Table, columns: Sequence[Column], rows: Iterable[Sequence[Any]]
    ) -> None:
        """Rows may refer (by a foreign key) only to rows of a table with a policy that the caller
        sees: else one tenant's row would hold another's in place (its DELETE refused, or cascaded)."""
        if restriction is None:
            return
        rows, names = list(rows), [c.name for c in columns]
        for key in table.foreign_keys:
            if key.target not in restriction.policies or not all(c in names for c in key.columns):
                continue
            at = [names.index(c) for c in key.columns]
            wanted = {tuple(row[i] for i in at) for row in rows}
            wanted = {k for k in wanted if all(v is not None and v is not OMITTED for v in k)}
            if not wanted:
                continue
            target = await self.catalog.table(key.target)
            pairs = tuple(target.by_name[c] for c in key.target_columns)
            found = Group("or", tuple(equals(pairs, k) for k in wanted))
            counted = await self.db.fetch(*sql.count(target, restriction.where(target, found)))
            if int(counted.rows[0][0]) < len(wanted):
                raise Forbidden(
                    f"'{table.name}' rows may refer only to rows of '{target.name}' the caller sees (its row policy)",
                    {"table": target.name, "foreign_key": key.name},
                )

    async def _transaction(
        self, work: Callable[[Session], Awaitable[T]], after: Hook | None, *, bulk: bool = False
    ) -> T:
        """A write's transaction; `after` (an idempotency key's record, say) commits or vanishes with it."""
        if after is None:
            return await self.db.transaction(work, bulk=bulk)

        async def work_then_after(session: Session) -> T:
            result = await work(session)
            await after(session, result)
            return result

        return await self.db.transaction(work_then_after, bulk=bulk)

    async def _statement(
        self, statement: Statement, answer: Callable[[StatementResult], T], after: Hook | None, *, bulk: bool = False
    ) -> T:
        """A write that is one statement, and what its result answers: committed by itself (one round
        trip: app/db/database.py, `write`), or in a transaction when a hook commits with it (an
        Idempotency-Key's record) or single-statement writes are off."""
        if after is None and self.single_statement_writes:
            return answer(await self.db.write(*statement, bulk=bulk))

        async def work(session: Session) -> T:
            return answer(await session.execute(*statement))

        return await self._transaction(work, after, bulk=bulk)

    # --- catalog ------------------------------------------------------------------------------

    async def describe_tables(self) -> list[dict]:
        if not self.catalog.loaded:
            await self.catalog.reload()
        return [
            {"name": t.name, "kind": "view" if t.view else "table", "primary_key": [c.name for c in t.primary_key],
             "columns": len(t.columns)}
            for t in self.catalog.tables()
        ]

    async def describe_table(self, name: str, may_read: Callable[[str], bool]) -> dict:
        """A table's columns and keys, and its relations to the tables the caller may read."""
        table = await self.catalog.table(name)
        among = self.catalog.relations(table)
        readable = [r for r in among if may_read(r.target.name)]
        return table.describe() | {"relations": [relations.describe(r, among) for r in readable]}

    # --- create -------------------------------------------------------------------------------

    async def _rows(self, table: Table, rows: list[Any]) -> Rows | Problems:
        """The rows as app/rows takes any JSON rows (a stream's too): each by its own keys, converted,
        checked against the table's current rules."""
        rules = await self.rules.for_table(table)
        objects = self._objects.get(table.name)
        if objects is None or objects.table is not table or objects.rules is not rules:
            objects = self._objects[table.name] = ObjectRows(table, rules)
        return objects.check(rows)

    async def create(
        self, name: str, payload: dict | list, after: Hook | None = None, *, duplicates: Mode = "insert",
        read_back: bool = True,
    ) -> list[dict]:
        """Insert rows and answer them as stored (RETURNING, or read back by key on MySQL).
        `duplicates`: `insert` (a duplicate key is a 409), `upsert` (it updates the given columns) or
        `keep` (it is left as it is; the answer holds it as stored). Without `read_back`, nothing is
        read: the answer is each row's key where it is known (given, or a new AUTO_INCREMENT id)."""
        rows = payload if isinstance(payload, list) else [payload]
        if not rows:
            raise InvalidBody("'input' is an empty list: nothing to insert")
        if len(rows) > self.max_bulk_rows:
            raise PayloadTooLarge(
                f"at most {self.max_bulk_rows} rows per request; use /api/batch/import for more",
                {"rows": len(rows), "max": self.max_bulk_rows},
            )
        table = await self.catalog.writable(name)
        restriction = await self.restriction()
        if restriction is not None and restriction.of(table) is not None:
            if duplicates != "insert":  # a duplicate key may be another caller's row
                raise Forbidden(f"'{table.name}' has a row policy: upserts into it are not offered",
                                {"table": table.name})
            rows = restriction.rows(table, rows)
        checked = await self._rows(table, rows)
        if isinstance(checked, dict) and any(p.code == UnknownColumn.code for found in checked.values() for p in found):
            await self.catalog.look(table.name)  # a column added since the catalog read the table?
            table = await self.catalog.writable(name)
            checked = await self._rows(table, rows)
        if isinstance(checked, dict):
            raise refusal(checked)
        columns, values = list(checked.plan.columns), checked.values
        await self._referenced(restriction, table, columns, values)
        if duplicates != "insert":
            one_row_per_key(table, columns, values)
        bulk = len(rows) > 100  # large bulk inserts get the bulk schedule's longer attempts
        if duplicates == "upsert" and has_omitted_cells(values):
            # An update sets only what its row gives: one INSERT per run of rows giving the same columns.
            runs = [given_columns(columns, list(run))
                    for _, run in groupby(values, key=lambda v: [c is OMITTED for c in v])]
        else:
            runs = [(columns, values)]

        def statement(columns: list[Column], values: list[list[Any]], returning: bool) -> Statement:
            defaults = [[v is OMITTED for v in row] for row in values] if has_omitted_cells(values) else None
            if defaults is not None:
                values = [[None if v is OMITTED else v for v in row] for row in values]
            return sql.insert(table, columns, values, mode=duplicates, returning=returning, defaults=defaults)

        returning = read_back and self.db.supports_returning
        answered = await self._inserted(table, runs, statement, duplicates, returning, read_back, after, bulk)
        if duplicates != "insert" and returning and len(answered) > 1:
            answered = await self._as_stored(table, answered)
        return answered

    async def _inserted(
        self, table: Table, runs: list[tuple[list[Column], list[list[Any]]]],
        statement: Callable[[list[Column], list[list[Any]], bool], Statement], duplicates: Mode, returning: bool,
        read_back: bool, after: Hook | None, bulk: bool,
    ) -> list[dict]:
        """Run the INSERTs of `create`: the rows as RETURNING (or MySQL's read back) gives them."""
        if len(runs) == 1 and (returning or not read_back):  # one statement: one round trip
            columns, values = runs[0]
            return await self._statement(
                statement(columns, values, returning),
                lambda result: to_records(table.columns, result) if returning
                else written_keys(table, columns, values, result, duplicates),
                after, bulk=bulk,
            )

        async def work(session: Session) -> list[dict]:
            answered: list[dict] = []
            for columns, values in runs:
                result = await session.execute(*statement(columns, values, returning))
                if returning:
                    answered += to_records(table.columns, result)
                elif read_back:
                    answered += await self._reread(session, table, columns, values, result,
                                                   new_ids=duplicates == "insert")
                else:
                    answered += written_keys(table, columns, values, result, duplicates)
            return answered

        return await self._transaction(work, after, bulk=bulk)

    async def _as_stored(self, table: Table, rows: list[dict]) -> list[dict]:
        """An upsert's answer when two of its rows met the same stored row (a unique key, or a key
        its column's collation finds equal): RETURNING gave each as it was then, so each is answered
        as the row it ended as, read again."""
        pk = table.primary_key
        keys = [tuple(row.get(c.name) for c in pk) for row in rows]
        if not pk or len(set(keys)) == len(keys):
            return rows
        where = parse_filter(table, {"or": [{c.name: v for c, v in zip(pk, key)} for key in set(keys)]})
        assert where is not None
        stored = to_records(table.columns, await self.db.fetch(*sql.select_where(table, where)))
        final = {tuple(row.get(c.name) for c in pk): row for row in stored}
        return [final.get(key, row) for key, row in zip(keys, rows)]

    async def _reread(
        self, session: Session, table: Table, columns: list[Column], values: list[list[Any]], result: StatementResult,
        new_ids: bool,
    ) -> list[dict]:
        """Servers without INSERT ... RETURNING (MySQL): read the rows back by key in the same transaction."""
        pk = table.primary_key
        if new_ids and len(pk) == 1 and pk[0].auto_increment and pk[0] not in columns and result.last_id:
            # One multi-row INSERT gets consecutive ids (innodb_autoinc_lock_mode 0/1, or 2 for simple inserts).
            keys: list[Any] = list(range(result.last_id, result.last_id + len(values)))
            where = parse_filter(table, {pk[0].name: {"in": keys}})
        elif pk and all(c in columns for c in pk):
            positions = [columns.index(c) for c in pk]
            where = parse_filter(table, {"or": [{c.name: row[p] for c, p in zip(pk, positions)} for row in values]})
        else:
            return [{c.name: v for c, v in zip(columns, row)} for row in values]
        assert where is not None  # a filter naming every new row's key
        return to_records(table.columns, await session.execute(*sql.select_where(table, where)))

    # --- read ---------------------------------------------------------------------------------

    def list_request(
        self, table: Table, where: Node | None, options: Mapping[str, Any], *, limited: bool = True
    ) -> ListQuery:
        """A parsed list request; `limited=False` (exports) has no default or maximum limit."""
        return list_query(
            table,
            where,
            fields=options.get("fields"),
            order=options.get("order"),
            limit=options.get("limit"),
            offset=options.get("offset"),
            cursor=options.get("cursor") if limited else None,
            count=options.get("count") if limited else None,
            default_limit=self.default_limit if limited else None,
            max_limit=self.max_limit if limited else None,
            links=self.catalog.relations,
            embed_limit=self.max_limit,
        )

    async def list_from_params(
        self, name: str, params: Iterable[tuple[str, str]], *, json_as_text: bool = False, permit: Permit | None = None
    ) -> tuple[list[dict], dict]:
        params = list(params)
        options = dict(p for p in params if p[0] in ("fields", "order", "limit", "offset", "cursor", "count"))
        links = self.catalog.relations
        return await self._list(
            name, lambda t: self.list_request(t, parse_query_params(t, params, links), options), json_as_text, permit
        )

    async def list_from_body(
        self, name: str, spec: Any, options: Mapping[str, Any], *, json_as_text: bool = False,
        permit: Permit | None = None,
    ) -> tuple[list[dict], dict]:
        links = self.catalog.relations
        return await self._list(
            name, lambda t: self.list_request(t, parse_filter(t, spec, links), options), json_as_text, permit
        )

    def permitted(self, query: ListQuery | Node | None, permit: Permit | None) -> None:
        """Every other table a read touches (embedded, or filtered by) needs the caller's `read`, and
        embedding needs MariaDB: MySQL's JSON_ARRAYAGG takes neither ORDER BY nor LIMIT."""
        if isinstance(query, ListQuery) and query.embeds and not self.db.is_mariadb:
            raise InvalidFilter("embedding related rows in fields= needs MariaDB (10.5 or later); this server is MySQL",
                                {"fields": [e.name for e in query.embeds]})
        if permit is not None and query is not None:
            for name in sorted(tables_read(query)):
                permit(name)

    def records(self, query: ListQuery, result: StatementResult, json_as_text: bool = False) -> list[dict]:
        """A read's rows as JSON shows them, embedded relations read into objects and arrays."""
        records = to_records(query.fields, result, json_as_text)
        for name, decode in decoders(query.items, self.max_limit):
            for record in records:
                record[name] = decode(record[name])
        return records

    async def _fresh(self, run: Callable[[], Awaitable[T]]) -> T:
        """Run a read; a column the server no longer has (an ALTER since the catalog's copy) makes
        the catalog refresh, and the read is built and run once more against the new copy."""
        try:
            return await run()
        except UnknownColumn as exc:
            if not (isinstance(exc.details, dict) and "db_code" in exc.details):
                raise  # the request's own unknown column: resolve() has looked already
        await self.catalog.refreshed()
        return await run()

    async def _list(
        self, name: str, build: Callable[[Table], ListQuery], json_as_text: bool = False, permit: Permit | None = None
    ) -> tuple[list[dict], dict]:
        return await self._fresh(lambda: self._list_once(name, build, json_as_text, permit))

    async def _list_once(
        self, name: str, build: Callable[[Table], ListQuery], json_as_text: bool, permit: Permit | None
    ) -> tuple[list[dict], dict]:
        table, query = await self.resolve(name, build)
        self.permitted(query, permit)
        restricted = await self.visible(table, query)
        if restricted is not query and query.count == "estimated":
            # A plan's estimate may ignore the policy's condition (no index on its column): it would
            # count other callers' rows. A read under a policy is counted.
            restricted = dataclasses.replace(restricted, count="exact")
        query = restricted
        # A full-text search may read much of its index: the slow-read schedule, as a count's.
        page = self.db.fetch(*sql.select(table, query, extra_row=True), replica=True, slow=searches(query.where))
        if query.count is not None:  # the total runs beside the page
            result, (total, kind) = await asyncio.gather(page, self._total(table, query))
        else:
            result = await page
        more = _page(result, query.limit)
        next_cursor = None
        if more and query.keyset is not None and result.rows:
            at = {name: i for i, name in enumerate(result.names)}
            last = result.rows[-1]
            next_cursor = cursors.encode(query.keyset, [last[at[c.name]] for c, _ in query.keyset])
        if query.extra:
            width = len(query.items or query.fields)
            result.names, result.rows = result.names[:width], [row[:width] for row in result.rows]
        records = self.records(query, result, json_as_text)
        # After a cursor there is no offset to offer: the next page is the next cursor's.
        meta = _meta(records, query.limit, query.offset, more and query.after is None) | {"next_cursor": next_cursor}
        if query.count is not None:
            meta["total"], meta["total_kind"] = total, kind
        return records, meta

    async def _total(self, table: Table, query: ListQuery) -> tuple[int, str]:
        """meta.total and what it is. `estimated`: the table's statistics with no filter, else the
        plan's row estimate; an estimate within one page of rows (max_limit) is counted instead, as
        the count costs about what a page does."""
        if query.count == "estimated":
            if query.where is None:
                rows = (await self.db.fetch(*estimates.table_rows(table), replica=True)).rows
                estimate = int(rows[0][0]) if rows and rows[0][0] is not None else None
            else:
                rows = (await self.db.fetch(*estimates.plan(table, query.where), replica=True)).rows
                estimate = estimates.planned_rows(rows[0][0], table) if rows else None
            if estimate is not None and estimate > self.max_limit:
                return estimate, "estimated"
        # On the slow-read schedule: a count reads every row the filter keeps.
        counted = await self.db.fetch(*sql.count(table, query.where), replica=True, slow=True)
        return int(counted.rows[0][0]), "exact"

    # --- aggregates ---------------------------------------------------------------------------

    async def aggregate_from_params(
        self, name: str, params: Iterable[tuple[str, str]], permit: Permit | None = None
    ) -> tuple[list[dict], dict]:
        params = list(params)
        filters = [p for p in params if p[0] not in aggregates.PARAMS]
        links = self.catalog.relations
        return await self._aggregate(
            name,
            lambda t: aggregates.from_params(
                t, params, parse_query_params(t, filters, links), default_limit=self.default_limit,
                max_limit=self.max_limit,
            ),
            permit,
        )

    async def aggregate_from_body(
        self, name: str, body: Mapping[str, Any], permit: Permit | None = None
    ) -> tuple[list[dict], dict]:
        links = self.catalog.relations
        return await self._aggregate(
            name,
            lambda t: aggregates.from_body(
                t, parse_filter(t, body.get("input"), links), body, default_limit=self.default_limit,
                max_limit=self.max_limit,
            ),
            permit,
        )

    async def _aggregate(
        self, name: str, build: Callable[[Table], AggregateQuery], permit: Permit | None
    ) -> tuple[list[dict], dict]:
        """A question over the table: the slow-read schedule (a GROUP BY may take seconds)."""
        table, query = await self.resolve(name, build)
        self.permitted(query.where, permit)
        if (restriction := await self.restriction()) is not None:
            query = dataclasses.replace(query, where=restriction.where(table, query.where))
        result = await self.db.fetch(*sql.aggregate(table, query, extra_row=True), replica=True, slow=True)
        more = _page(result, query.limit)
        records = rows_to_dicts(result.names, result.rows, aggregates.fixers(query))
        return records, _meta(records, query.limit, query.offset, more)

    async def items(self, name: str, fields: Any) -> tuple[Item, ...]:
        """What a read with `fields` answers, in order: columns and embedded relations (a CSV header
        names them, rows or none)."""
        return (await self.resolve(name, lambda t: parse_items(t, fields, self.catalog.relations, self.max_limit)))[1]

    async def get(
        self, name: str, key: str, fields: str | None = None, *, json_as_text: bool = False,
        permit: Permit | None = None,
    ) -> dict:
        def build(t: Table) -> ListQuery:
            query = self.list_request(t, key_condition(t, key), {"fields": fields})
            return ListQuery(where=query.where, fields=query.fields, order=(), limit=None, offset=0, items=query.items)

        async def run() -> dict:
            table, query = await self.resolve(name, build)
            self.permitted(query, permit)
            query = await self.visible(table, query)
            result = await self.db.fetch(*sql.select(table, query), replica=True)
            if not result.rows:
                raise RowNotFound(f"no row in '{table.name}' with key {key}", {"key": key})
            return self.records(query, result, json_as_text)[0]

        return await self._fresh(run)

    # --- update / delete ----------------------------------------------------------------------

    async def update(self, name: str, values: Mapping[str, Any], where_spec: Any, after: Hook | None = None) -> int:
        def build(t: Table) -> tuple[dict[Column, Any], Node]:
            where = parse_filter(t, where_spec)
            if where is None:
                raise WhereRequired("refusing to update every row: give a non-empty 'where' filter")
            return prepare_values(t, values), where

        table, (assignments, where) = await self.resolve(name, build, writing=True)
        where = await self._owned(table, where, assignments)
        statement = sql.update(table, assignments, where)
        rules = await self.rules.for_table(table)
        if rules is None:
            return await self._statement(statement, _affected, after)

        async def work(session: Session) -> int:
            await self._check_update(session, rules, table, where, assignments)
            return (await session.execute(*statement)).affected

        return await self._transaction(work, after)

    async def update_by_key(
        self, name: str, key: str, values: Mapping[str, Any], after: Hook | None = None, *, read_back: bool = True,
        precondition: Precondition | None = None,
    ) -> dict | None:
        table, (assignments, old_key) = await self.resolve(
            name, lambda t: (prepare_values(t, values), key_values(t, key)), writing=True
        )
        by_key = await self._owned(table, equals(table.primary_key, old_key), assignments)
        statement = sql.update(table, assignments, by_key)
        # The update may change the key itself: read the row back by its new key.
        new_key = tuple(assignments.get(c, v) for c, v in zip(table.primary_key, old_key))
        reread = sql.select_where(table, equals(table.primary_key, new_key))

        rules = await self.rules.for_table(table)

        async def work(session: Session) -> dict | None:
            if precondition is not None:
                await self._precondition(session, table, by_key, key, precondition)
            if rules is not None:
                await self._check_update(session, rules, table, by_key, assignments)
            if (await session.execute(*statement)).affected == 0:
                raise RowNotFound(f"no row in '{table.name}' with key {key}", {"key": key})
            return to_records(table.columns, await session.execute(*reread))[0] if read_back else None

        return await self._transaction(work, after)

    async def update_many(self, name: str, payload: Any, after: Hook | None = None) -> dict:
        """PATCH a list of rows, each holding its whole primary key and its own new values: one
        transaction, one UPDATE per set of columns the rows change. Keys not found are named, not
        created; the rest are updated. A row that is refused (a value, a rule) refuses them all."""
        if not isinstance(payload, list) or not payload:
            raise InvalidBody("'input' must be a non-empty list of rows, each with its primary key")
        if len(payload) > self.max_bulk_rows:
            raise PayloadTooLarge(
                f"at most {self.max_bulk_rows} rows per request", {"rows": len(payload), "max": self.max_bulk_rows}
            )
        table, (keys, values, groups) = await self.resolve(name, lambda t: keyed_changes(t, payload), writing=True)
        rules = await self.rules.for_table(table)
        restriction = await self.restriction()
        also = restriction.of(table) if restriction is not None else None  # only the caller's rows are found
        if restriction is not None:
            for columns, members in groups.items():
                for i in members:
                    restriction.changes(table, dict(zip(columns, values[i])), i)
                await self._referenced(restriction, table, columns, [values[i] for i in members])
        found = sql.found_keys(table, keys, table.columns if rules is not None else table.primary_key, also)

        async def work(session: Session) -> dict:
            stored = {row[0]: row[1:] for row in (await session.execute(*found)).rows}
            affected = 0
            for columns, members in groups.items():
                present = [i for i in members if i in stored]
                if not present:
                    continue
                if rules is not None:
                    for i in present:
                        try:
                            check_updated_rows(rules, table, [stored[i]], dict(zip(columns, values[i])))
                        except GatewayError as exc:
                            raise type(exc)(f"row {i}: {exc.message}", {"row": i} | as_details(exc.details)) from None
                statement = sql.update_by_keys(
                    table, columns, [keys[i] for i in present], [values[i] for i in present], also
                )
                affected += (await session.execute(*statement)).affected
            missing = [i for i in range(len(keys)) if i not in stored]
            if missing:
                # Found now, alone: its key names the row another row's key found first (a key
                # column that ignores case or trailing spaces). One row named twice is refused.
                again = await session.execute(
                    *sql.found_keys(table, [keys[i] for i in missing], table.primary_key, also)
                )
                if again.rows:
                    i = missing[again.rows[0][0]]
                    raise InvalidBody(f"row {i}: its key names the same row as another row's key (as the key's "
                                      "column compares them)", {"row": i})
            return {"affected": affected, "missing": [named_key(table.primary_key, keys[i]) for i in missing]}

        return await self._transaction(work, after, bulk=len(payload) > 100)

    async def _check_update(
        self, session: Session, rules: Rules, table: Table, where: Node, assignments: dict[Column, Any]
    ) -> None:
        """The rows an update changes, locked and checked as they will be. A filtered update on a table
        with rules checks every row it changes, so it may change at most `max_bulk_rows` at a time."""
        statement, params = sql.select_where(table, where)
        limit = self.max_bulk_rows
        rows = (await session.execute(f"{statement} LIMIT {limit + 1} FOR UPDATE", params)).rows
        if len(rows) > limit:
            raise PayloadTooLarge(
                f"the update would change more than {limit} rows of '{table.name}', which has rules: every "
                "changed row is checked, so narrow the filter",
                {"max": limit},
            )
        check_updated_rows(rules, table, list(rows), assignments)

    async def delete(self, name: str, where_spec: Any, after: Hook | None = None) -> int:
        def build(t: Table) -> Node:
            where = parse_filter(t, where_spec)
            if where is None:
                raise WhereRequired(
                    "refusing to delete every row: give a non-empty filter, as {\"where\": {...}} (or 'input')"
                )
            return where

        table, where = await self.resolve(name, build, writing=True)
        where = await self._owned(table, where)
        return await self._statement(sql.delete(table, where), _affected, after)

    async def delete_by_key(
        self, name: str, key: str, after: Hook | None = None, *, precondition: Precondition | None = None
    ) -> int:
        table, where = await self.resolve(name, lambda t: key_condition(t, key), writing=True)
        where = await self._owned(table, where)

        def found(result: StatementResult) -> int:
            if result.affected == 0:
                raise RowNotFound(f"no row in '{table.name}' with key {key}", {"key": key})
            return result.affected

        if precondition is None:
            return await self._statement(sql.delete(table, where), found, after)

        async def work(session: Session) -> int:
            await self._precondition(session, table, where, key, precondition)
            return found(await session.execute(*sql.delete(table, where)))

        return await self._transaction(work, after)

    async def _precondition(
        self, session: Session, table: Table, where: Node, key: str, precondition: Precondition
    ) -> None:
        """The row a write by key changes, locked, as GET by key shows it, given to `precondition`.
        A row the caller does not see (`where` holds its policy) is not found: a 404, never a 412
        that would tell it exists."""
        statement, params = sql.select_where(table, where)
        result = await session.execute(f"{statement} FOR UPDATE", params)
        if not result.rows:
            raise RowNotFound(f"no row in '{table.name}' with key {key}", {"key": key})
        precondition(to_records(table.columns, result)[0])
