"""Embedded relations as a row holds them: the JSON text the database built (sql.embedded) read
into objects and arrays, and flattened into `customer.name` cells for CSV and spreadsheets."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

from app.core import jsontext
from app.core.errors import PayloadTooLarge
from app.db.catalog import Column
from app.query.embeds import Embed, Item

Decode = Callable[[Any], Any]


def decoder(embed: Embed, max_limit: int) -> Decode:
    """JSON text -> the embedded object (None) or array ([] for none). An array read to its cap
    without a `limit` asked (more than `max_limit` rows) is refused, at any depth: a row's related
    rows are all there or the answer says why not."""
    checks = [(e.name, decoder(e, max_limit)) for e in embed.embeds if _checked(e)]
    floats = _floats(embed)
    unlimited = embed.relation.many and embed.limit is None

    def one(value: Any) -> Any:
        for name, check in checks:
            value[name] = check(value[name])
        for name in floats:  # JSON writes a whole FLOAT as 1, a plain read answers 1.0
            if type(value[name]) is int:
                value[name] = float(value[name])
        return value

    def decode(text: Any) -> Any:
        value = parse(text, embed) if isinstance(text, (str, bytes)) else text
        if value is None:
            return [] if embed.relation.many else None
        if not embed.relation.many:
            return one(value) if checks or floats else value
        if unlimited and len(value) > max_limit:
            raise PayloadTooLarge(
                f"a row has more than {max_limit} '{embed.name}': embed a page of them "
                f"('{embed.name}(...;limit=N;offset=M)'), or read /api/{embed.relation.target.name} with a filter",
                {"relation": embed.name, "max": max_limit},
            )
        return [one(v) for v in value] if checks or floats else value

    return decode


def _floats(embed: Embed) -> list[str]:
    return [i.name for i in embed.items if isinstance(i, Column) and i.kind == "float"]


def _checked(embed: Embed) -> bool:
    """Has the embedding (or one inside it) an array to check, NULL to make [], or a float?"""
    return embed.relation.many or bool(_floats(embed)) or any(_checked(e) for e in embed.embeds)


def parse(text: str | bytes, embed: Embed) -> Any:
    try:
        return jsontext.parse(text)  # exact: a JSON column may hold an integer past 64 bits
    except ValueError:
        # JSON_ARRAYAGG stops at the server's max_allowed_packet (the text is cut short).
        raise PayloadTooLarge(
            f"the '{embed.name}' of one row are larger than the database sends in one value (max_allowed_packet): "
            "embed fewer rows or fields",
            {"relation": embed.name},
        ) from None


def decoders(items: Sequence[Item], max_limit: int) -> list[tuple[str, Decode]]:
    return [(i.name, decoder(i, max_limit)) for i in items if isinstance(i, Embed)]


# --- flat: CSV, spreadsheets ----------------------------------------------------------------


def flat_columns(items: Sequence[Item], prefix: str = "") -> list[Column]:
    """The cells a flat row has: columns, an embedded object's columns as `customer.name` (at any
    depth: `customer.address.city`), an embedded array as one JSON cell."""
    columns: list[Column] = []
    for item in items:
        if isinstance(item, Column):
            columns.append(_renamed(item, prefix + item.name, nullable=item.nullable or bool(prefix)))
        elif item.relation.many:
            columns.append(Column(prefix + item.name, "json", "json", True, False, is_json=True))
        else:
            columns.extend(flat_columns(item.items, f"{prefix}{item.name}."))
    return columns


def _renamed(column: Column, name: str, *, nullable: bool) -> Column:
    if name == column.name and nullable == column.nullable:
        return column
    return dataclasses.replace(column, name=name, nullable=nullable)


def flat_row(
    items: Sequence[Item], row: dict | None, out: dict | None = None, prefix: str = "", *, typed_values: bool = False
) -> dict:
    """A row with embedded objects spread into `customer.name` keys, and arrays as JSON text;
    `typed_values`: embedded values as the driver gives them (typed)."""
    out = {} if out is None else out
    for item in items:
        value = row.get(item.name) if row is not None else None
        if isinstance(item, Column):
            out[prefix + item.name] = typed(item, value) if typed_values and prefix else value
        elif item.relation.many:
            out[prefix + item.name] = jsontext.dumps(value).decode() if value is not None else None
        else:
            flat_row(item.items, value, out, f"{prefix}{item.name}.", typed_values=typed_values)
    return out


def typed(column: Column, value: Any) -> Any:
    """An embedded value (as JSON shows it) as the driver gives the column's values, for the writers
    of typed cells (spreadsheets, Parquet)."""
    if value is None:
        return None
    kind = column.kind
    if kind == "decimal":
        return Decimal(value)
    if kind in ("datetime", "timestamp"):
        return dt.datetime.fromisoformat(value)
    if kind == "date":
        return dt.date.fromisoformat(value)
    if kind == "time":
        sign, text = (-1, value[1:]) if value.startswith("-") else (1, value)
        hours, minutes, seconds = text.split(":")
        return sign * dt.timedelta(hours=int(hours), minutes=int(minutes), seconds=float(seconds))
    if kind == "binary":
        return base64.b64decode(value)
    if kind == "json":
        return jsontext.dumps(value).decode()
    return value


def flat_tuples(items: Sequence[Item], columns: Sequence[Column], rows: Sequence[dict]) -> list[tuple]:
    """Flat rows as tuples in `columns` (flat_columns) order, each embedded value typed as the driver
    types its column's (the row's own values are the driver's already)."""
    names = [c.name for c in columns]
    return [tuple(flat[name] for name in names) for flat in (flat_row(items, row, typed_values=True) for row in rows)]
