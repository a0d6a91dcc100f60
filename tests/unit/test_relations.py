"""Relations from foreign keys, `fields` with embedded relations, and their SQL (pure: no database)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.core.errors import AmbiguousRelation, InvalidFilter, UnknownColumn, UnknownRelation
from app.db.catalog import build_tables
from app.db.relations import find, relations_of
from app.query import sql
from app.query.embeds import Embed, parse_items, tables_read
from app.query.filters import merged, parse_filter, parse_query_params
from app.query.lists import list_query
from app.query.nodes import Exists, Group


def column(table, name, kind="int", nullable="YES"):
    return (table, name, kind, kind, nullable, None, "", None, None, None, None)


COLUMNS = [
    column("customers", "id", nullable="NO"), column("customers", "name", "varchar"),
    column("orders", "id", nullable="NO"), column("orders", "customer_id"), column("orders", "billing_id"),
    column("orders", "total", "decimal"),
    column("profiles", "customer_id", nullable="NO"), column("profiles", "bio", "varchar"),
    column("lines", "order_id", nullable="NO"), column("lines", "no", nullable="NO"), column("lines", "qty"),
    column("notes", "id", nullable="NO"), column("notes", "order_id"), column("notes", "line_no"),
    column("people", "id", nullable="NO"), column("people", "boss_id"),
    column("tags", "name", "varchar"), column("tagged", "tag", "varchar"),
]
KEYS = [
    ("customers", "PRIMARY", "id"), ("orders", "PRIMARY", "id"), ("profiles", "PRIMARY", "customer_id"),
    ("lines", "PRIMARY", "order_id"), ("lines", "PRIMARY", "no"), ("notes", "PRIMARY", "id"),
    ("people", "PRIMARY", "id"),
]
FOREIGN_KEYS = [
    ("orders", "orders_customer", "customer_id", "customers", "id"),
    ("orders", "orders_billing", "billing_id", "customers", "id"),
    ("profiles", "profile_of", "customer_id", "customers", "id"),
    ("lines", "line_order", "order_id", "orders", "id"),
    ("notes", "note_line", "order_id", "lines", "order_id"),
    ("notes", "note_line", "line_no", "lines", "no"),
    ("people", "boss", "boss_id", "people", "id"),
    ("tagged", "tagged_tag", "tag", "tags", "name"),  # to a column that is not unique: many either way
]
TABLES = build_tables(COLUMNS, KEYS, [], FOREIGN_KEYS)


def links(table):
    incoming = [(t.name, k) for t in TABLES.values() for k in t.foreign_keys if k.target == table.name]
    return relations_of(table, TABLES, incoming)


def test_foreign_keys_are_read_in_order_and_paired():
    notes = TABLES["notes"]
    (key,) = notes.foreign_keys
    assert (key.name, key.columns, key.target, key.target_columns) == ("note_line", ("order_id", "line_no"), "lines", ("order_id", "no"))


def test_names_hints_and_shapes():
    orders = TABLES["orders"]
    relation = find(orders, links(orders), "customer")
    assert (relation.target.name, relation.many, [(a.name, b.name) for a, b in relation.pairs]) == (
        "customers", False, [("customer_id", "id")])
    assert find(orders, links(orders), "billing").key.name == "orders_billing"
    assert find(orders, links(orders), "customers!billing_id").key.name == "orders_billing"
    assert find(orders, links(orders), "customers!orders_customer").key.name == "orders_customer"
    with pytest.raises(AmbiguousRelation) as caught:
        find(orders, links(orders), "customers")
    assert caught.value.details["choices"] == ["customers!orders_billing", "customers!orders_customer"]
    customers = TABLES["customers"]
    assert find(customers, links(customers), "orders!customer_id").many
    assert not find(customers, links(customers), "profiles").many  # its key is the profile's primary key: one-to-one
    notes = TABLES["notes"]
    assert not find(notes, links(notes), "lines").many  # composite, to a primary key
    assert find(TABLES["lines"], links(TABLES["lines"]), "notes").many
    # A table that references itself: the key's column or constraint names the parent, the table the children.
    people = TABLES["people"]
    assert not find(people, links(people), "boss").many and find(people, links(people), "people").many
    assert find(TABLES["tagged"], links(TABLES["tagged"]), "tags").many
    with pytest.raises(UnknownRelation) as caught:
        find(orders, links(orders), "nope")
    assert caught.value.details == {"relation": "nope"}


def test_fields_grammar():
    customers = TABLES["customers"]
    items = parse_items(customers, "id,o:orders!customer_id(total,lines(qty;order=qty.desc;limit=2;qty=gt.1)),profiles(*)",
                        links, 1000)
    assert [i.name for i in items] == ["id", "o", "profiles"]
    o = items[1]
    assert isinstance(o, Embed) and o.relation.many and o.cap == 1001 and [i.name for i in o.items] == ["total", "lines"]
    lines = o.items[1]
    assert lines.limit == 2 and lines.cap == 2 and [(c.name, d) for c, d in lines.order] == [("qty", True), ("order_id", True), ("no", True)]
    assert lines.where is not None and lines.where.op == "gt"
    assert [c.name for c in items[2].items] == ["customer_id", "bio"]
    assert tables_read(list_query(customers, None, fields="id,o:orders!customer_id(lines(qty))", default_limit=10,
                                  max_limit=10, links=links)) == {"orders", "lines"}
    # The JSON form.
    items = parse_items(customers, ["id", {"orders!billing_id": {"fields": ["id"], "where": {"total": {"gt": 1}}, "limit": 3}}],
                        links, 1000)
    assert items[1].limit == 3 and items[1].where.column.name == "total"
    for bad, error in [
        ("id,orders(id)", AmbiguousRelation), ("id,nope(x)", UnknownRelation), ("id,(x)", InvalidFilter),
        ("id,orders!customer_id(id", InvalidFilter), ("id,orders!customer_id(id;x)", InvalidFilter),
        ("id,orders!customer_id(nope)", UnknownColumn), ("id,profiles(bio;limit=1)", InvalidFilter),
        ("id,id:profiles(bio)", InvalidFilter),
    ]:
        with pytest.raises(error):
            parse_items(customers, bad, links, 1000)
    with pytest.raises(UnknownColumn):  # without the catalog's relations (a write), no embedding
        parse_items(customers, "id,profiles(bio)", None, 1000)


def test_filters_on_related_rows_merge_per_relation():
    orders = TABLES["orders"]
    node = parse_query_params(orders, [("customer.name", "eq.a"), ("customer.id", "gt.1"), ("billing.name", "eq.b")], links)
    assert isinstance(node, Group) and len(node.items) == 2
    first = node.items[0]
    assert isinstance(first, Exists) and isinstance(first.where, Group) and len(first.where.items) == 2
    node = parse_filter(TABLES["customers"], {"orders!customer_id": {"is_null": True}}, links)
    assert isinstance(node, Exists) and node.negated and node.where is None
    assert merged([]) == []


def test_the_sql_of_an_embedding_and_of_a_related_filter():
    orders = TABLES["orders"]
    query = list_query(orders, parse_query_params(orders, [("customer.name", "eq.a'b")], links),
                       fields="id,customer(name),lines(qty;qty=gt.2;limit=5)", default_limit=10, max_limit=10, links=links)
    statement, params = sql.select(orders, query, extra_row=True)
    assert statement == (
        "SELECT `orders`.`id`,"
        " (SELECT JSON_OBJECT('name', `_gateway_1`.`name`) FROM `customers` AS `_gateway_1`"
        " WHERE `_gateway_1`.`id` = `orders`.`customer_id`) AS `customer`,"
        " (SELECT JSON_ARRAYAGG(JSON_OBJECT('qty', `_gateway_1`.`qty`)"
        " ORDER BY `_gateway_1`.`order_id` ASC, `_gateway_1`.`no` ASC LIMIT 5) FROM `lines` AS `_gateway_1`"
        " WHERE `_gateway_1`.`order_id` = `orders`.`id` AND `qty` > %s) AS `lines`"
        " FROM `orders` WHERE EXISTS (SELECT 1 FROM `customers` AS `_gateway_1`"
        " WHERE `_gateway_1`.`id` = `orders`.`customer_id` AND `name` = %s)"
        " ORDER BY `orders`.`id` ASC LIMIT %s"
    )
    assert params == (2, "a'b", 11)


@given(st.text(alphabet="abc(),;:!=*. ", max_size=30))
def test_any_fields_text_parses_or_is_a_400(text):
    try:
        parse_items(TABLES["customers"], text, links, 50)
    except (InvalidFilter, UnknownColumn, AmbiguousRelation):  # UnknownRelation is an UnknownColumn
        pass


def test_describing_a_tables_relations_names_each_by_its_shortest_unambiguous_name():
    from app.db.relations import describe

    among = links(TABLES["orders"])
    described = sorted((describe(r, among) for r in among), key=lambda d: d["foreign_key"])
    assert described == [
        {"name": "lines", "table": "lines", "many": True, "columns": {"id": "order_id"}, "foreign_key": "line_order"},
        {"name": "billing", "table": "customers", "many": False, "columns": {"billing_id": "id"}, "foreign_key": "orders_billing"},
        {"name": "customer", "table": "customers", "many": False, "columns": {"customer_id": "id"}, "foreign_key": "orders_customer"},
    ]


def test_decoding_embedded_json():
    from app.core.errors import PayloadTooLarge
    from app.rows.embedded import decoders

    items = list_query(TABLES["customers"], None, fields="id,orders!orders_customer(id,lines(no))", max_limit=2,
                       default_limit=2, links=links, embed_limit=2).items
    ((name, decode),) = decoders(items, 2)
    assert name == "orders"
    # NULL (no related rows) is an empty array, at every depth; an object's arrays are checked too.
    assert decode(None) == []
    assert decode('[{"id": 1, "lines": null}]') == [{"id": 1, "lines": []}]
    # More rows than the largest page, with no limit asked: refused, not cut short silently.
    with pytest.raises(PayloadTooLarge):
        decode('[{"id": 1, "lines": [{"no": 1}, {"no": 2}, {"no": 3}]}]')
    # JSON cut short by the server's max_allowed_packet: refused.
    with pytest.raises(PayloadTooLarge):
        decode('[{"id": 1, "lines": [{"no": 1}')
    # With a limit asked, the array is what was asked for.
    items = list_query(TABLES["customers"], None, fields="orders!orders_customer(id;limit=2)", max_limit=2,
                       default_limit=2, links=links, embed_limit=2).items
    ((_, decode),) = decoders(items, 2)
    assert decode('[{"id": 1}, {"id": 2}, {"id": 3}]') == [{"id": 1}, {"id": 2}, {"id": 3}]
