"""Relations between tables, from their foreign keys (pure): what a read may embed.

A foreign key of `orders` (customer_id -> customers.id) is two relations: on `orders`, to one
customer (an object, or null); on `customers`, to its orders (an array; an object when the key's
columns are unique in `orders`: one-to-one). A relation is selected by a name (the other table's, the
constraint's, the column's, or the column's without `_id`: `customer`) and, where two foreign keys
join the same tables, a hint: `customers!billing_id` (the constraint's name or a column of the key).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from app.core.echo import shown
from app.core.errors import AmbiguousRelation, UnknownRelation

if TYPE_CHECKING:  # the catalog makes relations: it imports this module
    from app.db.catalog import Column, ForeignKey, Table


@dataclass(frozen=True, slots=True)
class Relation:
    source: Table  # the table a request reads
    target: Table  # the table it embeds or filters by
    pairs: tuple[tuple[Column, Column], ...]  # (source column, target column): the rows join where each pair is equal
    many: bool  # the target's rows are an array (else one row or none: an object or null)
    key: ForeignKey
    names: frozenset[str]  # what selects it
    hints: frozenset[str]  # what `name!hint` may say: the constraint's name, the key's columns

    @property
    def spelled(self) -> str:
        """A name that selects this relation and no other of its table."""
        return f"{self.target.name}!{self.key.name}"


def names_alone(relation: Relation, among: Sequence[Relation]) -> list[str]:
    """The names that select `relation` and no other of `among` (its table's), shortest first; when
    none does alone, its spelling with the constraint's name."""
    alone = sorted((n for n in relation.names if sum(n in r.names for r in among) == 1), key=lambda n: (len(n), n))
    return alone or [relation.spelled]


def describe(relation: Relation, among: Sequence[Relation]) -> dict:
    """A relation as GET /api/tables/{table} lists it."""
    return {
        "name": names_alone(relation, among)[0],
        "table": relation.target.name,
        "many": relation.many,
        "columns": {source.name: target.name for source, target in relation.pairs},
        "foreign_key": relation.key.name,
    }


def _stem(column: str) -> str | None:
    return column[:-3] if column.endswith("_id") and len(column) > 3 else None


def relations_of(
    table: Table, tables: Mapping[str, Table], incoming: Iterable[tuple[str, ForeignKey]]
) -> tuple[Relation, ...]:
    """Every relation of `table` to a table in `tables` (the exposed ones): its own foreign keys, and
    `incoming`, the (table name, foreign key) pairs of the keys that reference it."""
    found: list[Relation] = []
    for key in table.foreign_keys:
        target = tables.get(key.target)
        pairs = _pairs(table, key.columns, target, key.target_columns)
        if target is None or pairs is None:
            continue
        names = {key.name, *((key.columns[0], _stem(key.columns[0])) if len(key.columns) == 1 else ())}
        if target.name != table.name:
            names.add(target.name)
        found.append(
            Relation(table, target, pairs, not target.is_unique(key.target_columns), key,
                     frozenset(n for n in names if n), frozenset({key.name, *key.columns}))
        )
    for source_name, key in incoming:
        source = tables.get(source_name)
        pairs = _pairs(table, key.target_columns, source, key.columns)
        if source is None or pairs is None:
            continue
        # A self-reference's constraint name already names the parent: the table's name names the children.
        names = {source.name} if source.name == table.name else {source.name, key.name}
        found.append(
            Relation(table, source, pairs, not source.is_unique(key.columns), key,
                     frozenset(names), frozenset({key.name, *key.columns}))
        )
    return tuple(found)


def _pairs(
    source: Table, columns: tuple[str, ...], target: Table | None, target_columns: tuple[str, ...]
) -> tuple[tuple[Column, Column], ...] | None:
    if target is None:
        return None
    pairs = [(source.column(a), target.column(b)) for a, b in zip(columns, target_columns)]
    if any(a is None or b is None for a, b in pairs):
        return None  # a copy of one table older than the other's: the next catalog look agrees them
    return tuple((a, b) for a, b in pairs if a is not None and b is not None)


def parse_name(text: str) -> tuple[str, str | None]:
    """`customers!billing_id` -> ("customers", "billing_id")."""
    name, bang, hint = text.partition("!")
    return name.strip(), (hint.strip() if bang else None)


def find(table: Table, relations: Iterable[Relation], text: str) -> Relation:
    """The one relation of `table` that `name` or `name!hint` selects: 400 when none does, or
    several do (listing a spelling for each)."""
    name, hint = parse_name(text)
    relations = tuple(relations)
    chosen = [r for r in relations if name in r.names and (hint is None or hint in r.hints)]
    if len(chosen) == 1:
        return chosen[0]
    if chosen:
        choices = sorted(f"{name}!{r.key.name}" for r in chosen)
        raise AmbiguousRelation(
            f"'{shown(text, 60)}' names more than one relation of '{table.name}': say which, as {' or '.join(choices)}",
            {"relation": shown(text, 60), "choices": choices},
        )
    # Not the relations there are: some may lead to tables the caller may not read. Its own
    # GET /api/tables/{table} lists those it may embed.
    raise UnknownRelation(
        f"table '{table.name}' has no relation '{shown(text, 60)}' (GET /api/tables/{table.name} lists its "
        "relations to the tables you may read)",
        {"relation": shown(text, 60)},
    )
