"""A parsed filter: conditions on columns, grouped by and/or, and conditions on related rows
(pure types; filters.py makes them, sql.py writes them as SQL)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Union

from app.db.catalog import Column
from app.db.relations import Relation


@dataclass(frozen=True, slots=True)
class Condition:
    column: Column  # or anything with a `name` and a `quoted` SQL expression (an aggregate's result)
    op: str  # an operator's name (operators.py)
    value: Any  # converted: a scalar, a tuple for in/nin/between, a bool for is_null


@dataclass(frozen=True, slots=True)
class Group:
    op: Literal["and", "or"]
    items: tuple["Node", ...]


@dataclass(frozen=True, slots=True)
class Exists:
    """The row has a related row (through `relation`) that matches `where` (any, for None); or,
    `negated`, has none."""

    relation: Relation
    where: "Node | None"
    negated: bool = False


@dataclass(frozen=True, slots=True)
class Match:
    """A full-text search: `MATCH (columns) AGAINST (words)` over a FULLTEXT index's columns, in
    natural language mode (ranked by relevance) or boolean mode (`+must -not "a phrase" pre*`)."""

    columns: tuple[Column, ...]
    words: str
    boolean: bool = False


Node = Union[Condition, Group, Exists, Match]


def searches(node: Node | None) -> bool:
    """Does the filter hold a full-text search (anywhere)?"""
    if isinstance(node, Match):
        return True
    if isinstance(node, Group):
        return any(searches(item) for item in node.items)
    if isinstance(node, Exists):
        return searches(node.where)
    return False
