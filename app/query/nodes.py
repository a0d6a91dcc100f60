"""A parsed filter: conditions on columns, grouped by and/or (pure types; filters.py makes them,
sql.py writes them as SQL)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Union

from app.db.catalog import Column


@dataclass(frozen=True, slots=True)
class Condition:
    column: Column  # or anything with a `name` and a `quoted` SQL expression (an aggregate's result)
    op: str  # an operator's name (operators.py)
    value: Any  # converted: a scalar, a tuple for in/nin/between, a bool for is_null


@dataclass(frozen=True, slots=True)
class Group:
    op: Literal["and", "or"]
    items: tuple["Node", ...]


Node = Union[Condition, Group]
