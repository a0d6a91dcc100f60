"""Pure pieces of issue 32: the Prefer header, the SQL of keyed updates and upserts, the rows of a
PATCH list, and what a routine's call runs (no database)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.core.errors import InvalidBody, InvalidValue
from app.db.catalog import build_tables
from app.db.routines import build_routines
from app.http.prefer import parse
from app.query import sql
from app.services.keyed import keyed_changes
from app.services.rpc import arguments, statements


def column(table, name, kind="int", nullable="YES", ctype=None):
    return (table, name, kind, ctype or kind, nullable, None, "", None, None, None, None)


TABLES = build_tables(
    [column("stock", "shop", "char", "NO", "char(3)"), column("stock", "sku", "varchar", "NO", "varchar(10)"),
     column("stock", "qty"), ("stock", "price", "decimal", "decimal(8,2)", "YES", None, "", None, 8, 2, None)],
    [("stock", "PRIMARY", "shop"), ("stock", "PRIMARY", "sku")], [],
)
STOCK = TABLES["stock"]


def test_prefer_reads_as_rfc_7240_says():
    assert parse([]).returning == "representation" and parse([]).headers() == {}
    prefs = parse(["return=minimal, resolution=merge-duplicates"], resolution=True)
    assert (prefs.returning, prefs.resolution, prefs.minimal) == ("minimal", "merge-duplicates", True)
    assert prefs.headers() == {"Preference-Applied": "return=minimal, resolution=merge-duplicates"}
    # Not on a route that does not insert; the first of a repeated one; unknown ones and values ignored.
    assert parse(["resolution=merge-duplicates"]).resolution is None
    assert parse(["return=headers-only", "return=representation"]).returning == "headers-only"
    assert parse(['RETURN="Minimal"; x=y, wait=5, tx=rollback, return=everything']).returning == "minimal"
    assert parse(["return=everything"]).applied == ()


@given(st.lists(st.text(max_size=30), max_size=3))
def test_any_prefer_header_reads(values):
    prefs = parse(values, resolution=True)
    assert prefs.returning in ("representation", "minimal", "headers-only")


def test_keyed_updates_and_upserts_in_sql():
    qty, price = STOCK.column("qty"), STOCK.column("price")
    statement, params = sql.update_by_keys(STOCK, [qty, price], [("PAR", "a"), ("LYO", "b")], [(1, "2.50"), (3, None)])
    assert statement == (
        "UPDATE `stock` SET `qty` = CASE WHEN `shop` = %s AND `sku` = %s THEN %s WHEN `shop` = %s AND `sku` = %s "
        "THEN %s END, `price` = CASE WHEN `shop` = %s AND `sku` = %s THEN %s WHEN `shop` = %s AND `sku` = %s THEN %s "
        "END WHERE (`shop` = %s AND `sku` = %s) OR (`shop` = %s AND `sku` = %s)"
    )
    assert params == ("PAR", "a", 1, "LYO", "b", 3, "PAR", "a", "2.50", "LYO", "b", None, "PAR", "a", "LYO", "b")
    statement, params = sql.found_keys(STOCK, [("PAR", "a")], STOCK.primary_key)
    assert statement.startswith("SELECT CASE WHEN `shop` = %s AND `sku` = %s THEN 0 END, `shop`, `sku`")
    assert statement.endswith("FOR UPDATE") and params == ("PAR", "a", "PAR", "a")
    columns = list(STOCK.columns[:3])
    assert sql.insert(STOCK, columns, [["P", "a", 1]], mode="keep")[0].endswith("ON DUPLICATE KEY UPDATE `shop`=`shop`")
    assert sql.insert(STOCK, columns, [["P", "a", 1]], mode="upsert")[0].endswith(
        "ON DUPLICATE KEY UPDATE `qty`=VALUES(`qty`)")


def test_a_patch_lists_rows_grouped_by_the_columns_they_set():
    keys, values, groups = keyed_changes(STOCK, [
        {"shop": "PAR", "sku": "a", "qty": 1}, {"shop": "LYO", "sku": "a", "price": "1.5"},
        {"shop": "NCE", "sku": "b", "qty": 2},
    ])
    assert keys == [("PAR", "a"), ("LYO", "a"), ("NCE", "b")]
    assert {tuple(c.name for c in cs): members for cs, members in groups.items()} == {("qty",): [0, 2], ("price",): [1]}
    for rows, at in (([{"shop": "PAR", "qty": 1}], 0), ([{"shop": "P", "sku": "a", "qty": 1}, {"shop": "P", "sku": "a", "qty": 2}], 1),
                     ([{"shop": "P", "sku": "a"}], 0), (["x"], 0)):
        with pytest.raises(InvalidBody) as refused:
            keyed_changes(STOCK, rows)
        assert refused.value.details["row"] == at


ROUTINES = build_routines(
    [("bump", "PROCEDURE", "MODIFIES SQL DATA"), ("greet", "FUNCTION", "NO SQL"), ("greet", "PROCEDURE", "CONTAINS SQL")],
    [("bump", "PROCEDURE", 1, "IN", "who", "varchar", "varchar(20)", 20, None, None, None),
     ("bump", "PROCEDURE", 2, "INOUT", "counter", "int", "int(11)", None, 10, 0, None),
     ("bump", "PROCEDURE", 3, "OUT", "at", "datetime", "datetime", None, None, None, 0),
     ("greet", "FUNCTION", 0, None, None, "varchar", "varchar(40)", 40, None, None, None),
     ("greet", "FUNCTION", 1, "IN", "who", "varchar", "varchar(10)", 10, None, None, None)],
)


def test_what_a_routines_call_runs():
    bump = ROUTINES["bump"]
    assert [p.name for p in bump.arguments] == ["who", "counter"] and not bump.reads_only
    values = arguments(bump, {"WHO": "me", "counter": 41})
    assert statements(bump, values) == [
        ("SET @_gateway_out_1 = %s", (41,)),
        ("CALL `bump`(%s, @_gateway_out_1, @_gateway_out_2)", ("me",)),
        ("SELECT CAST(@_gateway_out_1 AS SIGNED), CAST(@_gateway_out_2 AS DATETIME(6))", ()),
        ("COMMIT", ()),
    ]
    # A procedure and a function of one name: the procedure is served.
    assert ROUTINES["greet"].kind == "procedure"
    with pytest.raises(InvalidBody) as refused:
        arguments(bump, {"who": "me", "extra": 1})
    assert refused.value.details == {"missing": ["counter"], "unknown": ["extra"], "takes": ["who", "counter"]}
    with pytest.raises(InvalidValue) as refused:
        arguments(bump, {"who": "x" * 21, "counter": 1})
    assert refused.value.details == {"argument": "who"} and "argument 'who'" in refused.value.message
