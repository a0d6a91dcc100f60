"""The filter operators, in one registry: the parser (filters.py), the SQL (sql.py), the OpenAPI
text (http/openapi.py) and the table in docs/api.md all read it. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# What an operator takes: a value; a list (in, nin: `in.1,2,3` or a JSON array); two values
# (between); true or false (is_null); a LIKE pattern.
Takes = Literal["value", "list", "pair", "flag", "pattern", "words"]


@dataclass(frozen=True)
class Operator:
    name: str
    takes: Takes
    sql: str  # the comparison (for "value" and "pattern"); the others are written out in sql.py
    meaning: str
    example: str  # as a query string filter on a column `age` or `name`


OPERATORS: dict[str, Operator] = {op.name: op for op in (
    Operator("eq", "value", "=", "equal (a bare value means eq; null means IS NULL)", "?age=eq.18, ?age=18"),
    Operator("ne", "value", "<>", "not equal (null means IS NOT NULL)", "?age=ne.18"),
    Operator("gt", "value", ">", "greater than", "?age=gt.18"),
    Operator("gte", "value", ">=", "greater than or equal", "?age=gte.18"),
    Operator("lt", "value", "<", "less than", "?age=lt.18"),
    Operator("lte", "value", "<=", "less than or equal", "?age=lte.18"),
    Operator("like", "pattern", "LIKE", "SQL LIKE pattern (% any run, _ one character)", "?name=like.A%25"),
    Operator("in", "list", "IN", "one of a list (at most 1,000 values)", "?age=in.1,2,3"),
    Operator("nin", "list", "NOT IN", "none of a list", "?age=nin.1,2,3"),
    Operator("between", "pair", "BETWEEN", "between two values, both included", "?age=between.18,65"),
    Operator("is_null", "flag", "IS NULL", "true: IS NULL; false: IS NOT NULL", "?age=is_null.true"),
    Operator("fts", "words", "MATCH", "full-text search, natural language (a FULLTEXT index on the column alone)",
             "?bio=fts.mariadb tuning"),
    Operator("bfts", "words", "MATCH", "full-text search, boolean mode: +must -not \"a phrase\" pre*",
             "?bio=bfts.%2Bmariadb -mysql"),
)}
LIST_OPERATORS = tuple(name for name, op in OPERATORS.items() if op.takes in ("list", "pair"))


def summary() -> str:
    """The operators in a line, for descriptions: eq ne gt ..."""
    return " ".join(OPERATORS)
