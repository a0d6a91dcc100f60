"""Pure SQL builders: (catalog Table, parsed request) -> (sql, params). No I/O.

Identifiers come only from catalog objects (`Column.quoted`, `Table.quoted`); every value is a `%s`
parameter. The only literal SQL words besides those are the fixed keywords written here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

from app.db.catalog import INTERNAL_PREFIX, Column, Table, quote
from app.query.embeds import Embed, Item
from app.query.lists import ListQuery
from app.query.nodes import Exists, Group, Match, Node
from app.query.operators import OPERATORS
from app.rows.values import empty_is_null

if TYPE_CHECKING:
    from app.query.aggregates import AggregateQuery

Statement = tuple[str, tuple[Any, ...]]



def where_sql(node: Node, outer: str = "", depth: int = 0) -> Statement:
    """A filter as SQL. `outer`: how the rows filtered are named (the table, or an embedding's
    alias), which a condition on related rows (Exists) correlates with; `depth`: the subqueries
    around it (each level's alias is its own)."""
    if isinstance(node, Group):
        parts = [where_sql(item, outer, depth) for item in node.items]
        joiner = " AND " if node.op == "and" else " OR "
        return "(" + joiner.join(p[0] for p in parts) + ")", tuple(v for p in parts for v in p[1])
    if isinstance(node, Exists):
        return _exists(node, outer, depth + 1)
    if isinstance(node, Match):
        return match_sql(node)
    column, operator, value = node.column.quoted, OPERATORS[node.op], node.value
    if operator.takes == "flag":
        return f"{column} IS {'' if value else 'NOT '}NULL", ()
    if operator.takes == "list":
        if not value:  # x IN () is not SQL: an empty list matches nothing (in) or everything (nin)
            return ("1=0" if operator.name == "in" else "1=1"), ()
        return f"{column} {operator.sql} ({','.join(['%s'] * len(value))})", tuple(value)
    if operator.takes == "pair":
        return f"{column} {operator.sql} %s AND %s", tuple(value)
    return f"{column} {operator.sql} %s", (value,)


def match_sql(match: Match, qualifier: str = "") -> Statement:
    """MATCH (a, b) AGAINST (%s IN ... MODE): a test in WHERE, and the relevance in ORDER BY."""
    columns = ", ".join(qualifier + c.quoted for c in match.columns)
    mode = "BOOLEAN" if match.boolean else "NATURAL LANGUAGE"
    return f"MATCH ({columns}) AGAINST (%s IN {mode} MODE)", (match.words,)


def _where(node: Node | None, table: Table) -> Statement:
    if node is None:
        return "", ()
    sql, params = where_sql(node, table.quoted)
    return " WHERE " + sql, params


# --- related rows: filters on them, and embedded as JSON ---------------------------------------
# A subquery's table is named `_gateway_<depth>`: never an exposed table's name (catalog.py), so
# never one of the tables a statement reads, and each level can name the one around it.


def _alias(depth: int) -> str:
    return f"`{INTERNAL_PREFIX}{depth}`"


def _correlated(relation: Any, outer: str, alias: str) -> str:
    assert outer, "a related row is correlated with the rows around it"
    return " AND ".join(f"{alias}.{t.quoted} = {outer}.{s.quoted}" for s, t in relation.pairs)


def _exists(node: Exists, outer: str, depth: int) -> Statement:
    alias = _alias(depth)
    sql = f"SELECT 1 FROM {node.relation.target.quoted} AS {alias} WHERE {_correlated(node.relation, outer, alias)}"
    params: tuple[Any, ...] = ()
    if node.where is not None:
        inner, params = where_sql(node.where, alias, depth)
        sql += f" AND {inner}"
    return f"{'NOT ' if node.negated else ''}EXISTS ({sql})", params


def embedded(embed: Embed, outer: str, depth: int = 1) -> Statement:
    """A relation's rows for each row, as JSON text: one object (or NULL), or an array (NULL for
    none) of at most `embed.cap` rows. Each value is spelt as a plain read's JSON spells it."""
    alias = _alias(depth)
    value, params = _json_object(embed.items, alias, depth)
    where = _correlated(embed.relation, outer, alias)
    if embed.where is not None:
        inner, inner_params = where_sql(embed.where, alias, depth)
        where, params = f"{where} AND {inner}", params + inner_params
    if embed.relation.many:
        if embed.order:
            value += " ORDER BY " + ", ".join(f"{alias}.{c.quoted} {'DESC' if d else 'ASC'}" for c, d in embed.order)
        value += f" LIMIT {int(embed.cap or 1)}" + (f" OFFSET {int(embed.offset)}" if embed.offset else "")
        value = f"JSON_ARRAYAGG({value})"
    return f"(SELECT {value} FROM {embed.relation.target.quoted} AS {alias} WHERE {where})", params


def _json_object(items: Sequence[Item], alias: str, depth: int) -> Statement:
    parts: list[str] = []
    params: tuple[Any, ...] = ()
    for item in items:
        if isinstance(item, Embed):
            value, more = embedded(item, alias, depth + 1)
            params += more
        else:
            value = json_value(item, f"{alias}.{item.quoted}")
        parts.append(f"{_key(item.name)}, {value}")
    return f"JSON_OBJECT({', '.join(parts)})", params


def _key(name: str) -> str:
    """A JSON key as an SQL string: plain names as they are, any other by its bytes (_literal)."""
    return f"'{name}'" if _PLAIN_NAME.fullmatch(name) else _literal(name)


_PLAIN_NAME = re.compile(r"[A-Za-z0-9_ ]+")


def json_value(column: Column, c: str) -> str:
    """SQL for `c`, a value of `column`, as JSON_OBJECT should hold it: what a plain read answers
    (app/rows/values.py's output: decimals and times as text, datetimes ISO 8601, binary base64,
    BIT a number, JSON as JSON; SETs in the order of the column's members)."""
    kind = column.kind
    if kind == "decimal":
        return f"CAST({c} AS CHAR)"
    if kind in ("datetime", "timestamp"):
        seconds = "%%Y-%%m-%%dT%%H:%%i:%%s"
        return f"IF(MICROSECOND({c}) = 0, DATE_FORMAT({c}, '{seconds}'), DATE_FORMAT({c}, '{seconds}.%%f'))"
    if kind == "time":
        return f"IF(MICROSECOND({c}) = 0, TIME_FORMAT({c}, '%%H:%%i:%%s'), TIME_FORMAT({c}, '%%H:%%i:%%s.%%f'))"
    if kind == "binary":
        return f"REPLACE(TO_BASE64({c}), CHAR(10), '')"
    if kind == "bit":
        return f"CAST({c} AS UNSIGNED)"
    if kind == "json":
        return f"JSON_EXTRACT({c}, '$')"
    return c


def column_list(columns: Sequence[Column]) -> str:
    return ", ".join(c.quoted for c in columns)


class _Named(Protocol):
    @property
    def quoted(self) -> str: ...


class _Paged(Protocol):
    """What a page's ORDER BY, LIMIT and OFFSET are made from (a list's query, an aggregate's)."""

    @property
    def order(self) -> Sequence[tuple[_Named, bool]]: ...
    @property
    def limit(self) -> int | None: ...
    @property
    def offset(self) -> int: ...


def _order_and_page(
    query: _Paged, *, extra_row: bool = False, qualifier: str = "", rank: Match | None = None
) -> Statement:
    """ORDER BY, LIMIT and OFFSET; `qualifier` (`table.`) names the table's own columns where a
    selected name (an embedding's) might be taken for them; `rank`: a search's relevance first."""
    sql = ""
    params: tuple[Any, ...] = ()
    terms = [f"{qualifier}{c.quoted} {'DESC' if d else 'ASC'}" for c, d in query.order]
    if rank is not None:
        relevance, params = match_sql(rank, qualifier)
        terms.insert(0, f"{relevance} DESC")
    if terms:
        sql += " ORDER BY " + ", ".join(terms)
    if query.limit is not None:
        sql += " LIMIT %s"
        params += (query.limit + 1 if extra_row else query.limit,)
    if query.offset:
        if query.limit is None:
            sql += " LIMIT 18446744073709551615"  # MySQL has no OFFSET without LIMIT
        sql += " OFFSET %s"
        params += (query.offset,)
    return sql, params


def select(table: Table, query: ListQuery, *, extra_row: bool = False) -> Statement:
    """SELECT for a list page (after a cursor's row, when there is one); `extra_row` asks for
    limit+1 rows to learn whether a next page exists. The keyset (order + key) orders it, so pages
    never skip or repeat a row."""
    where_node = query.where if query.after is None else (
        query.after if query.where is None else Group("and", (query.where, query.after))
    )
    where, params = _where(where_node, table)
    page = query if query.keyset is None else _Page(query.keyset, query.limit, query.offset)
    if not query.items:
        tail, tail_params = _order_and_page(page, extra_row=extra_row, rank=query.rank)
        columns = column_list(query.fields + query.extra)
        return f"SELECT {columns} FROM {table.quoted}{where}{tail}", params + tail_params
    selected, select_params = _select_list(table, query.selected)
    tail, tail_params = _order_and_page(page, extra_row=extra_row, qualifier=f"{table.quoted}.", rank=query.rank)
    return f"SELECT {selected} FROM {table.quoted}{where}{tail}", select_params + params + tail_params


def _select_list(table: Table, items: Sequence[Item]) -> Statement:
    """Columns and embedded relations (each as JSON text under its name)."""
    parts: list[str] = []
    params: tuple[Any, ...] = ()
    for item in items:
        if isinstance(item, Embed):
            value, more = embedded(item, table.quoted)
            parts.append(f"{value} AS {quote(item.name)}")
            params += more
        else:
            parts.append(f"{table.quoted}.{item.quoted}")
    return ", ".join(parts), params


@dataclass(frozen=True)
class _Page:
    """A list query's page in the order of its keyset (its order plus the primary key's columns)."""

    order: tuple[tuple[Column, bool], ...]
    limit: int | None
    offset: int


def aggregate(table: Table, query: "AggregateQuery", *, extra_row: bool = False) -> Statement:
    """SELECT group columns and aggregates ... GROUP BY ... HAVING ... ORDER BY ... LIMIT."""
    where, params = _where(query.where, table)
    select_list = ", ".join(f"{r.quoted} AS {r.alias}" for r in query.results)
    sql = f"SELECT {select_list} FROM {table.quoted}{where}"
    if query.group_by:
        sql += " GROUP BY " + ", ".join(g.quoted for g in query.group_by)
    if query.having is not None:
        having, having_params = where_sql(query.having)
        sql += " HAVING " + having
        params += having_params
    tail, tail_params = _order_and_page(query, extra_row=extra_row)
    return sql + tail, params + tail_params


def count(table: Table, where: Node | None) -> Statement:
    clause, params = _where(where, table)
    return f"SELECT COUNT(*) FROM {table.quoted}{clause}", params


def select_where(table: Table, where: Node, columns: Sequence[Column] | None = None) -> Statement:
    clause, params = _where(where, table)
    return f"SELECT {column_list(columns or table.columns)} FROM {table.quoted}{clause}", params


# ignore: INSERT IGNORE (imports, which check its warnings are only duplicates); keep: a row whose
# key exists is left as it is, and any other error still fails (a no-op ON DUPLICATE KEY UPDATE).
Mode = Literal["insert", "ignore", "upsert", "keep"]


def insert(
    table: Table,
    columns: Sequence[Column],
    rows: Sequence[Sequence[Any]],
    *,
    mode: Mode = "insert",
    returning: bool = False,
    defaults: Sequence[Sequence[bool]] | None = None,
) -> Statement:
    """Multi-row INSERT. `defaults[i][j]` writes DEFAULT for that cell (a bulk row that omits a column)."""
    params: list[Any] = []
    tuples = []
    for i, row in enumerate(rows):
        cells = []
        for j, value in enumerate(row):
            if defaults is not None and defaults[i][j]:
                cells.append("DEFAULT")
            else:
                cells.append("%s")
                params.append(value)
        tuples.append("(" + ",".join(cells) + ")")
    verb = "INSERT IGNORE INTO" if mode == "ignore" else "INSERT INTO"
    # With no columns, `INSERT INTO t () VALUES (),()` gives every column its default.
    sql = f"{verb} {table.quoted} ({column_list(columns)}) VALUES " + ",".join(tuples)
    if mode == "upsert" and columns:  # rows that give no column have nothing to update
        keys = {c.name for c in table.primary_key}
        updates = [c for c in columns if c.name not in keys] or list(columns[:1])
        sql += " ON DUPLICATE KEY UPDATE " + ", ".join(f"{c.quoted}=VALUES({c.quoted})" for c in updates)
    elif mode == "keep":
        same = (columns or table.columns)[0].quoted
        sql += f" ON DUPLICATE KEY UPDATE {same}={same}"
    if returning:
        sql += f" RETURNING {column_list(table.columns)}"
    return sql, tuple(params)


def update(table: Table, values: Mapping[Column, Any], where: Node) -> Statement:
    assignments = ", ".join(f"{c.quoted} = %s" for c in values)
    clause, params = _where(where, table)
    return f"UPDATE {table.quoted} SET {assignments}{clause}", tuple(values.values()) + params


def _by_keys(table: Table, keys: Sequence[Sequence[Any]]) -> tuple[str, str, list[Any]]:
    """For rows found by primary key: one key's test (`a = %s AND b = %s`), and the WHERE that any
    of `keys` matches, with its parameters."""
    pk = table.primary_key
    match = " AND ".join(f"{c.quoted} = %s" for c in pk)
    if len(pk) == 1:
        return match, f"{pk[0].quoted} IN ({', '.join('%s' for _ in keys)})", [key[0] for key in keys]
    return match, " OR ".join(f"({match})" for _ in keys), [value for key in keys for value in key]


def found_keys(
    table: Table, keys: Sequence[Sequence[Any]], columns: Sequence[Column], also: Node | None = None
) -> Statement:
    """The rows of `keys` there are (and that meet `also`: a row policy), locked, each with the
    index of the key that found it (the server compares, in the key's collation: 'a' finds 'A' where
    the column ignores case)."""
    match, where, params = _by_keys(table, keys)
    where, params = _also(where, params, also)
    which = " ".join(f"WHEN {match} THEN {i}" for i in range(len(keys)))
    first = [value for key in keys for value in key]
    return (f"SELECT CASE {which} END, {column_list(columns)} FROM {table.quoted} WHERE {where} FOR UPDATE",
            tuple(first + params))


def _also(where: str, params: list[Any], also: Node | None) -> tuple[str, list[Any]]:
    if also is None:
        return where, params
    more, more_params = where_sql(also)
    return f"({where}) AND {more}", params + list(more_params)


def update_by_keys(
    table: Table, columns: Sequence[Column], keys: Sequence[Sequence[Any]], rows: Sequence[Sequence[Any]],
    also: Node | None = None,
) -> Statement:
    """One UPDATE giving each row, found by its primary key (`keys[i]`), its own values of `columns`
    (`rows[i]`): `SET c = CASE WHEN <key i> THEN <value i> ... END WHERE <any key>`. Every value is a
    parameter, so it converts to its column as in an INSERT, whatever the key's collation."""
    match, where, where_params = _by_keys(table, keys)
    where, where_params = _also(where, where_params, also)
    assignments: list[str] = []
    params: list[Any] = []
    for j, column in enumerate(columns):
        whens = " ".join(f"WHEN {match} THEN %s" for _ in keys)
        assignments.append(f"{column.quoted} = CASE {whens} END")
        for key, row in zip(keys, rows):
            params.extend((*key, row[j]))
    return f"UPDATE {table.quoted} SET {', '.join(assignments)} WHERE {where}", tuple(params + where_params)


def delete(table: Table, where: Node) -> Statement:
    clause, params = _where(where, table)
    return f"DELETE FROM {table.quoted}{clause}", params



# --- CSV export: the server formats each line ------------------------------------------------
# No backslash escapes in these literals (they would change meaning under NO_BACKSLASH_ESCAPES):
# special characters are spelled with CHAR().

_QUOTED_KINDS = ("string", "json", "enum", "set")  # the kinds whose text may hold , " CR or LF


# The characters that make Python's csv writer quote a field, as a regular expression. CR and LF
# stand in the SQL string as themselves (no backslash escapes). One REGEXP is about twice as fast
# on the server as four INSTR calls (measured: 442k against 236k rows/s for a 10-column table).
_QUOTE_WHEN = "'[\",\r\n]'"


def csv_cell(column: Column, *, only_field: bool = False, null: str | None = None) -> str:
    """SQL for one column as CSV text: byte for byte what Python's csv writer (QUOTE_MINIMAL) writes
    for the value's text form. NULL: with `null` None, CSV's standard convention (an empty cell,
    while the empty string and the text \\N are quoted, so that neither reads as NULL); otherwise
    the marker `null`, as it is."""
    c = column.quoted
    kind = column.kind
    standard = null is None
    if kind in ("datetime", "timestamp"):
        fraction = ".%%f" if column.fsp else ""
        text = f"DATE_FORMAT({c}, '%%Y-%%m-%%dT%%H:%%i:%%s{fraction}')"
    elif kind == "binary":
        text = f"REPLACE(TO_BASE64({c}), CHAR(10), '')"
        if standard:
            text = f"IF(LENGTH({c}) = 0, '\"\"', {text})"
    elif kind == "bit":
        text = f"CAST({c} AS UNSIGNED)"
    elif kind in _QUOTED_KINDS:
        # As utf8mb4 (what the export writes): a latin1 column mixed with the utf8mb4 literals here
        # is an "illegal mix of collations" otherwise.
        u = f"CONVERT({c} USING utf8mb4)"
        special = f"{u} REGEXP {_QUOTE_WHEN}"
        if standard:  # '' and \N, by length and bytes (a collation pads spaces and folds case). \N is at
            # most 8 bytes in any character set: the byte length first keeps most cells to one test.
            short = f"LENGTH({c}) < 9 AND CHAR_LENGTH({c}) < 3"
            special = f"({short} AND (LENGTH({c}) = 0 OR HEX({u}) = '5C4E')) OR {special}"
        elif only_field:  # Python quotes an empty string that is the whole row
            special += f" OR {u} = ''"
        text = f"IF({special}, CONCAT('\"', REPLACE({u}, '\"', '\"\"'), '\"'), {u})"
    else:
        text = c
    if not column.nullable:
        return text
    return f"IF({c} IS NULL, {_literal(null or '')}, {text})"


def _literal(text: str) -> str:
    """A string literal spelt by its UTF-8 bytes: no quote or backslash in the SQL, whatever the text."""
    return f"CHAR({', '.join(map(str, text.encode()))} USING utf8mb4)" if text else "''"


def csv_select(table: Table, query: ListQuery, null: str | None = None) -> Statement:
    """SELECT one CSV line per row (without its line terminator), for the export stream; `null` as
    in csv_cell."""
    where, params = _where(query.where, table)
    only = len(query.fields) == 1
    cells = ", ".join(csv_cell(c, only_field=only, null=null) for c in query.fields)
    tail, tail_params = _order_and_page(query, rank=query.rank)
    return f"SELECT CONCAT_WS(',', {cells}) FROM {table.quoted}{where}{tail}", params + tail_params


# --- CSV import through LOAD DATA ------------------------------------------------------------


def load_data(table: Table, columns: Sequence[Column], *, ignore: bool = False) -> Statement:
    """LOAD DATA LOCAL INFILE of the canonical CSV the import writes: text fields quoted (inner quotes
    doubled), numbers bare, NULL as the bare word NULL, no escape character, LF line ends; binary
    as base64, and BIT and YEAR as numbers, converted by SET (read as text, the year 0 would be 2000).
    The first `%s` is the data's name (the database layer fills it in); the line terminator is a
    parameter so no backslash is in the SQL."""
    targets, assignments = [], []
    for index, column in enumerate(columns):
        if column.kind in ("binary", "bit", "year"):
            variable = f"@v{index}"
            targets.append(variable)
            expression = f"FROM_BASE64({variable})" if column.kind == "binary" else f"CAST({variable} AS UNSIGNED)"
            assignments.append(f"{column.quoted} = {expression}")
        else:
            targets.append(column.quoted)
    return _load_data(table, targets, assignments, ignore), (",", "\n")


def load_data_json(table: Table, columns: Sequence[Column]) -> Statement:
    """LOAD DATA LOCAL of rows as JSON arrays, one a line (`[1,"a\\"b",NULL]`, what streams.jsonlines
    writes): each line's `[` skipped as a prefix and `]` ending it, fields split at commas outside
    double quotes, backslash escapes as JSON writes them (the writer keeps to the ones LOAD DATA
    reads the same way), the bare word NULL as NULL. Numbers and strings only (no binary or BIT).
    The data's name, separator, escape, prefix and terminator are parameters (no backslash in SQL)."""
    sql = (
        f"LOAD DATA LOCAL INFILE %s INTO TABLE {table.quoted} CHARACTER SET utf8mb4"
        " FIELDS TERMINATED BY %s OPTIONALLY ENCLOSED BY '\"' ESCAPED BY %s LINES STARTING BY %s TERMINATED BY %s"
        f" ({', '.join(c.quoted for c in columns)})"
    )
    return sql, (",", "\\", "[", "]\n")


def load_data_text(
    table: Table, header: Sequence[Column | None], *, null: str, crlf: bool, ignore: bool = False, delimiter: str = ",",
    direct: Sequence[bool] | None = None, standard: bool = False,
) -> Statement:
    """LOAD DATA LOCAL of uploaded CSV text as it is (RFC 4180: fields quoted or not, quotes doubled,
    no escape character). Each field goes through a variable: `null` is NULL everywhere, an empty
    field where values.empty_is_null says (the text then holds no quoted "": the reader sees to it);
    header columns given as None (generated) are read and dropped. `direct[i]`: the field holds no
    NULL marker (and no empty cell where that is NULL) in this batch, so it loads straight into its
    column (no variable, less work on the server). The database layer fills in the first `%s`."""
    targets, assignments, params = [], [], [delimiter, "\r\n" if crlf else "\n"]
    for index, column in enumerate(header):
        if column is not None and direct is not None and direct[index]:
            targets.append(column.quoted)
            continue
        variable = f"@v{index}"
        targets.append(variable)
        if column is None:
            continue
        # BINARY: compared byte for byte (a collation would take `\\n` or `\\N ` for \\N, and spaces for '')
        empty = f" OR BINARY {variable} = ''" if empty_is_null(column, standard) else ""
        assignments.append(f"{column.quoted} = IF(BINARY {variable} = %s{empty}, NULL, {variable})")
        params.append(null)
    return _load_data(table, targets, assignments, ignore), tuple(params)


def _load_data(table: Table, targets: list[str], assignments: list[str], ignore: bool) -> str:
    """The statement both LOAD DATA forms share: RFC 4180 fields, no escape character; the data's
    name, the field separator and the line terminator are the first three parameters."""
    sql = (
        f"LOAD DATA LOCAL INFILE %s {'IGNORE ' if ignore else ''}INTO TABLE {table.quoted} CHARACTER SET utf8mb4"
        " FIELDS TERMINATED BY %s OPTIONALLY ENCLOSED BY '\"' ESCAPED BY '' LINES TERMINATED BY %s"
        f" ({', '.join(targets)})"
    )
    return sql + (" SET " + ", ".join(assignments) if assignments else "")


# --- duplicate keys of an import batch -------------------------------------------------------


def existing_keys(
    table: Table, key: Sequence[Column], keys: Sequence[Sequence[Any]], *, count: bool = False
) -> Statement:
    """Which of `keys` (values of the `key` columns) the table holds already (or, with `count`, how many)."""
    columns = column_list(key)
    selected = "COUNT(*)" if count else columns
    if len(key) == 1:
        marks = ",".join(["%s"] * len(keys))
        return f"SELECT {selected} FROM {table.quoted} WHERE {columns} IN ({marks})", tuple(k[0] for k in keys)
    row = "(" + ",".join(["%s"] * len(key)) + ")"
    marks = ",".join([row] * len(keys))
    return f"SELECT {selected} FROM {table.quoted} WHERE ({columns}) IN ({marks})", tuple(v for k in keys for v in k)
