"""Joins (issue 26): related rows embedded through the foreign keys, in one statement, and filters
by related rows; checked against plain reads of the same rows and against SQL written by hand."""

import datetime as dt
import hashlib
import io
import json
import random

import openpyxl
import pandas as pd
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as examples
from hypothesis import strategies as st
from starlette.testclient import TestClient

from app.main import create_app
from tests.conftest import only, run_sql, running
from tests.integration.test_analysts import json_values, maybe, moments, texts
from tests.integration.test_crud import assert_error

SHOP = [
    """CREATE TABLE customers (id INT PRIMARY KEY AUTO_INCREMENT, name VARCHAR(40) NOT NULL, email VARCHAR(80),
        country CHAR(2), balance DECIMAL(12,8))""",
    """CREATE TABLE orders (id INT PRIMARY KEY AUTO_INCREMENT, customer_id INT, total DECIMAL(10,2), placed DATE,
        status ENUM('open','paid'), FOREIGN KEY (customer_id) REFERENCES customers(id))""",
    "CREATE TABLE products (sku VARCHAR(20) PRIMARY KEY, title VARCHAR(40))",
    """CREATE TABLE `lines` (order_id INT NOT NULL, line_no INT NOT NULL, sku VARCHAR(20), qty INT,
        PRIMARY KEY (order_id, line_no), FOREIGN KEY (order_id) REFERENCES orders(id),
        FOREIGN KEY (sku) REFERENCES products(sku))""",
    "CREATE TABLE warehouses (id INT PRIMARY KEY, city VARCHAR(40))",
    # A composite foreign key, and two keys to one table.
    """CREATE TABLE shipments (id INT PRIMARY KEY, order_id INT, line_no INT, from_id INT, to_id INT,
        CONSTRAINT shipment_line FOREIGN KEY (order_id, line_no) REFERENCES `lines` (order_id, line_no),
        CONSTRAINT shipment_from FOREIGN KEY (from_id) REFERENCES warehouses(id),
        CONSTRAINT shipment_to FOREIGN KEY (to_id) REFERENCES warehouses(id))""",
    """CREATE TABLE employees (id INT PRIMARY KEY, name VARCHAR(20), manager_id INT,
        CONSTRAINT reports_to FOREIGN KEY (manager_id) REFERENCES employees(id))""",
    # Not exposed (the tests deny secret_*): never embedded, never named.
    """CREATE TABLE secret_notes (id INT PRIMARY KEY, customer_id INT, note TEXT,
        FOREIGN KEY (customer_id) REFERENCES customers(id))""",
    """INSERT INTO customers VALUES (1, 'Ann', 'ann@example.org', 'FR', 0.00000001), (2, 'Bob', NULL, 'DE', 12.5),
        (3, 'Cy', NULL, 'FR', NULL)""",
    """INSERT INTO orders VALUES (1, 1, 10.50, '2024-03-01', 'open'), (2, 1, 99.99, '2024-03-02', 'paid'),
        (3, 2, 5.00, NULL, 'open'), (4, NULL, 1.00, NULL, NULL)""",
    "INSERT INTO products VALUES ('A', 'Apple'), ('B', 'Bean')",
    "INSERT INTO `lines` VALUES (1, 1, 'A', 2), (1, 2, 'B', 1), (2, 1, 'A', 5)",
    "INSERT INTO warehouses VALUES (1, 'Lyon'), (2, 'Oslo')",
    "INSERT INTO shipments VALUES (1, 1, 1, 1, 2), (2, 1, 2, 2, 1)",
    "INSERT INTO employees VALUES (1, 'Boss', NULL), (2, 'Mid', 1), (3, 'Low', 2)",
    "INSERT INTO secret_notes VALUES (1, 1, 'private')",
]


@pytest.fixture
def shop(schema):
    return only(schema, SHOP)


async def rows(client, path, **params):
    response = await client.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json()["data"]


async def test_an_order_with_its_customer_and_a_customer_with_its_orders(shop, settings):
    async with running(settings()) as client:
        assert await rows(client, "/api/orders/query", fields="id,total,customer(name,email)") == [
            {"id": 1, "total": "10.50", "customer": {"name": "Ann", "email": "ann@example.org"}},
            {"id": 2, "total": "99.99", "customer": {"name": "Ann", "email": "ann@example.org"}},
            {"id": 3, "total": "5.00", "customer": {"name": "Bob", "email": None}},
            {"id": 4, "total": "1.00", "customer": None},
        ]
        # The many side: an array (empty for none), ordered and cut inside the parentheses.
        assert await rows(client, "/api/customers/query", fields="id,orders(id,total;order=total.desc;limit=1)") == [
            {"id": 1, "orders": [{"id": 2, "total": "99.99"}]},
            {"id": 2, "orders": [{"id": 3, "total": "5.00"}]},
            {"id": 3, "orders": []},
        ]
        assert await rows(client, "/api/customers/query", fields="id,orders(id;order=id.desc;offset=1)", id="eq.1") == [
            {"id": 1, "orders": [{"id": 1}]}
        ]
        # Two levels and more, in the order asked, with `*` and a name of one's own.
        assert await rows(client, "/api/customers/query", fields="buys:orders(id,lines(qty,products(title))),name",
                          id="eq.1") == [{"buys": [
                              {"id": 1, "lines": [{"qty": 2, "products": {"title": "Apple"}},
                                                  {"qty": 1, "products": {"title": "Bean"}}]},
                              {"id": 2, "lines": [{"qty": 5, "products": {"title": "Apple"}}]},
                          ], "name": "Ann"}]
        assert await rows(client, "/api/orders/query", fields="*,customers(*)", id="eq.3") == [
            {"id": 3, "customer_id": 2, "total": "5.00", "placed": None, "status": "open",
             "customers": {"id": 2, "name": "Bob", "email": None, "country": "DE", "balance": "12.50000000"}}
        ]
        # A GET by key embeds too; so does the JSON body of /query, in either form.
        response = await client.get("/api/orders/2", params={"fields": "id,customer(name)"})
        assert response.json()["data"] == {"id": 2, "customer": {"name": "Ann"}}
        response = await client.post("/api/customers/query", json={
            "input": {"id": 1}, "fields": ["id", {"orders": {"fields": ["id"], "where": {"total": {"gt": 50}}}},
                                           "last:orders(id;order=id.desc;limit=1)"]})
        assert response.json()["data"] == [{"id": 1, "orders": [{"id": 2}], "last": [{"id": 2}]}]


async def test_composite_keys_two_keys_to_one_table_and_a_table_that_references_itself(shop, settings):
    async with running(settings()) as client:
        body = assert_error(await client.get("/api/shipments/query", params={"fields": "id,warehouses(city)"}),
                            400, "ambiguous_relation")
        assert body["details"]["choices"] == ["warehouses!shipment_from", "warehouses!shipment_to"]
        # Named by the constraint, or by the key's column; a composite key to a primary key is one row.
        assert await rows(client, "/api/shipments/query",
                          fields="id,from:warehouses!from_id(city),to:warehouses!shipment_to(city),lines(sku)") == [
            {"id": 1, "from": {"city": "Lyon"}, "to": {"city": "Oslo"}, "lines": {"sku": "A"}},
            {"id": 2, "from": {"city": "Oslo"}, "to": {"city": "Lyon"}, "lines": {"sku": "B"}},
        ]
        # From the other side: the lines' shipments (one-to-many through two columns).
        assert await rows(client, "/api/lines/query", fields="order_id,line_no,shipments(id)", order_id="eq.1") == [
            {"order_id": 1, "line_no": 1, "shipments": [{"id": 1}]},
            {"order_id": 1, "line_no": 2, "shipments": [{"id": 2}]},
        ]
        assert await rows(client, "/api/warehouses/query", fields="city,shipments!to_id(id)") == [
            {"city": "Lyon", "shipments": [{"id": 2}]}, {"city": "Oslo", "shipments": [{"id": 1}]},
        ]
        # A self-reference: the key's column (or constraint) names the parent, the table the children.
        assert await rows(client, "/api/employees/query", fields="name,manager(name),reports_to(id),employees(name)") == [
            {"name": "Boss", "manager": None, "reports_to": None, "employees": [{"name": "Mid"}]},
            {"name": "Mid", "manager": {"name": "Boss"}, "reports_to": {"id": 1}, "employees": [{"name": "Low"}]},
            {"name": "Low", "manager": {"name": "Mid"}, "reports_to": {"id": 2}, "employees": []},
        ]


async def test_what_cannot_be_embedded_is_a_clear_400(shop, settings):
    async with running(settings(max_limit=50)) as client:
        for fields, code in [
            ("id,nope(x)", "unknown_relation"),
            ("id,secret_notes(note)", "unknown_relation"),  # a table that is not exposed is not there
            ("id,orders(nope)", "unknown_column"),
            ("id,orders(id", "invalid_filter"),
            ("id,orders(id))", "invalid_filter"),
            ("id,orders(id;limit=0)", "invalid_filter"),
            ("id,orders(id;limit=51)", "invalid_filter"),
            ("id,orders(id;order=nope.desc)", "unknown_column"),
            ("id,orders(id;nope=eq.1)", "unknown_column"),
            ("id,orders(id;total=gt.x)", "invalid_value"),
            ("id,orders(id;junk)", "invalid_filter"),
            ("id,orders(id),orders(total)", "invalid_filter"),  # one name twice
            ("name,name:orders(id)", "invalid_filter"),
            ("id,:orders(id)", "invalid_filter"),
            ("id," + ",".join(f"o{i}:orders(id)" for i in range(21)), "invalid_filter"),
            ("id,orders(customer(orders(customer(orders(customer(id))))))", "invalid_filter"),
        ]:
            status = 422 if code == "invalid_value" else 400
            body = assert_error(await client.get("/api/customers/query", params={"fields": fields}), status, code)
            assert "secret" not in json.dumps(body["details"].get("relations") if body["details"] else None)
        body = assert_error(await client.get("/api/customers/query", params={"fields": "id,nope(x)"}), 400, "unknown_relation")
        # The relations there are are not listed (some may lead to tables the caller may not read):
        # the message points at the table's description, which lists those it may.
        assert body["details"] == {"relation": "nope"} and "/api/tables/customers" in body["message"]
        # Inside the parentheses: a page's options are refused, and an option given twice.
        for fields in ("id,orders(id;cursor=x)", "id,orders(id;count=exact)", "id,orders(id;limit=1;limit=2)",
                       "id," + "a" * 65 + ":orders(id)", "id,c\x00:orders(id)"):
            assert_error(await client.get("/api/customers/query", params={"fields": fields}), 400, "invalid_filter")
        assert_error(await client.post("/api/customers/query", json={"fields": [{}]}), 400, "invalid_filter")
        # A filter follows at most 5 relations (each is a nested EXISTS; MariaDB stops at 64).
        deep = "orders.customer." * 40 + "name"
        for request in (client.get("/api/orders/query", params={"customer." + deep: "eq.x"}),
                        client.post("/api/orders/query", json={"input": {"customer." + deep: "x"}}),
                        client.get("/api/orders/aggregate", params={"count": "*", "customer." + deep: "eq.x"})):
            assert_error(await request, 400, "invalid_filter")
        assert await rows(client, "/api/orders/query", **{"customer.orders.customer.country": "eq.DE"}) != []
        # {"relation": null} is is_null, as {"column": null} is.
        response = await client.post("/api/customers/query", json={"input": {"orders": None}, "fields": "id"})
        assert response.json()["data"] == [{"id": 3}]
        assert_error(await client.get("/api/orders/query", params={"fields": "id,customer(name;limit=2)"}), 400, "invalid_filter")
        assert_error(await client.post("/api/customers/query", json={"fields": [{"orders": {"where": 1}}]}), 400, "invalid_filter")
        assert_error(await client.post("/api/customers/query", json={"fields": [{"orders": {"joins": 1}}]}), 400, "invalid_filter")
        assert_error(await client.post("/api/customers/query", json={"fields": [{"orders": []}]}), 400, "invalid_filter")
        # Writes take no relations: a dotted name there is a column's.
        assert_error(await client.request("DELETE", "/api/orders", json={"input": {"customer.country": "FR"}}),
                     400, "unknown_column")


async def test_an_array_past_max_limit_is_refused_unless_a_page_of_it_is_asked(shop, settings):
    run_sql(shop, "INSERT INTO orders (customer_id, total) SELECT 3, seq FROM seq_1_to_6")
    async with running(settings(max_limit=5)) as client:
        body = assert_error(await client.get("/api/customers/query", params={"fields": "id,orders(id)"}),
                            413, "payload_too_large")
        assert body["details"] == {"relation": "orders", "max": 5}
        # Deeper too: the customer of each order, with all of that customer's orders.
        assert_error(await client.get("/api/orders/query", params={"fields": "id,customer(orders(id))"}),
                     413, "payload_too_large")
        page = await rows(client, "/api/customers/query", fields="id,orders(total;order=total.desc;limit=5)", id="eq.3")
        assert page == [{"id": 3, "orders": [{"total": f"{n}.00"} for n in (6, 5, 4, 3, 2)]}]
        assert await rows(client, "/api/customers/query", fields="id,orders(id)", id="eq.1") == [
            {"id": 1, "orders": [{"id": 1}, {"id": 2}]}
        ]


async def test_filters_on_related_rows(shop, settings):
    async with running(settings()) as client:
        async def ids(path, **params):
            return [r["id"] for r in await rows(client, path, fields="id", **params)]

        assert await ids("/api/orders/query", **{"customer.country": "eq.FR"}) == [1, 2]
        assert await ids("/api/orders/query", **{"customer.country": "in.FR,DE", "customer.name": "Bob"}) == [3]
        assert await ids("/api/customers/query", **{"orders.total": "gt.50"}) == [1]
        # Two conditions on one relation ask for one related row that meets both.
        assert await ids("/api/customers/query", **{"orders.total": "lt.50", "orders.status": "eq.paid"}) == []
        assert await ids("/api/customers/query", **{"orders.total": "gt.50", "orders.status": "eq.paid"}) == [1]
        assert await ids("/api/customers/query", orders="is_null.true") == [3]
        assert await ids("/api/customers/query", orders="is_null.false") == [1, 2]
        assert await ids("/api/customers/query", **{"orders.lines.products.title": "eq.Bean"}) == [1]
        # The JSON filter: dotted names, inside or and and.
        response = await client.post("/api/orders/query", json={
            "input": {"or": [{"customer.country": "DE"}, {"customer": {"is_null": True}}]}, "fields": ["id"]})
        assert [r["id"] for r in response.json()["data"]] == [3, 4]
        # Only the embedded array is shaped by a filter inside it; the rows by one outside.
        assert await rows(client, "/api/customers/query", fields="id,orders(id;status=eq.paid)") == [
            {"id": 1, "orders": [{"id": 2}]}, {"id": 2, "orders": []}, {"id": 3, "orders": []}]
        # Counts, aggregates and exports take the same filters.
        response = await client.get("/api/orders/query", params={"customer.country": "eq.FR", "count": "exact", "limit": 1})
        assert response.json()["meta"]["total"] == 2
        response = await client.get("/api/orders/aggregate", params={"sum": "total", "customer.country": "eq.FR"})
        assert response.json()["data"] == [{"sum_total": "110.49"}]
        response = await client.get("/api/batch/orders/export", params={"fields": "id", "customer.name": "Bob"})
        assert response.text == "id\r\n3\r\n"
        assert_error(await client.get("/api/orders/query", params={"customer": "eq.1"}), 400, "invalid_filter")
        assert_error(await client.get("/api/orders/query", params={"customer.nope": "eq.1"}), 400, "unknown_column")
        assert_error(await client.get("/api/orders/query", params={"nope.x": "eq.1"}), 400, "unknown_column")


async def test_an_embedded_table_needs_read_on_it(shop, settings):
    keys = json.dumps([
        {"name": "clerk", "sha256": hashlib.sha256(b"clerk").hexdigest(), "scopes": ["read:orders", "export:orders"]},
        {"name": "boss", "sha256": hashlib.sha256(b"boss").hexdigest(), "scopes": ["read:*", "export:*"]},
    ])
    async with running(settings(auth_mode="api-key", api_keys=keys)) as client:
        clerk, boss = {"X-API-Key": "clerk"}, {"X-API-Key": "boss"}
        for path, params in [
            ("/api/orders/query", {"fields": "id,customer(name)"}),
            ("/api/orders/query", {"customer.country": "eq.FR"}),
            ("/api/orders/1", {"fields": "id,customer(name)"}),
            ("/api/orders/aggregate", {"count": "*", "customer.country": "eq.FR"}),
            ("/api/batch/orders/export", {"fields": "id,customer(name)"}),
        ]:
            body = assert_error(await client.get(path, params=params, headers=clerk), 403, "forbidden")
            assert body["details"] == {"needs": "read:customers"}
            assert (await client.get(path, params=params, headers=boss)).status_code == 200
        body = assert_error(await client.get("/api/orders/query", params={"fields": "id,lines(sku,products(title))"},
                                             headers=clerk), 403, "forbidden")
        assert body["details"] == {"needs": "read:lines"}
        assert (await client.get("/api/orders/query", params={"fields": "id,total"}, headers=clerk)).status_code == 200


async def test_cursor_pages_and_counts_with_embedded_rows(shop, settings):
    run_sql(shop, "INSERT INTO orders (customer_id, total) SELECT 1 + MOD(seq, 3), seq FROM seq_1_to_40")
    async with running(settings()) as client:
        seen, cursor = [], None
        while True:
            params = {"fields": "id,customer(name)", "order": "total.desc", "limit": "7", "count": "exact"}
            response = await client.get("/api/orders/query", params=params | ({"cursor": cursor} if cursor else {}))
            body = response.json()
            assert body["meta"]["total"] == 44
            seen += body["data"]
            cursor = body["meta"]["next_cursor"]
            if cursor is None:
                break
        want = run_sql(shop, "SELECT o.id, c.name FROM orders o LEFT JOIN customers c ON c.id = o.customer_id "
                             "ORDER BY o.total DESC, o.id DESC")
        assert [(r["id"], r["customer"] and r["customer"]["name"]) for r in seen] == [tuple(w) for w in want]


async def test_exports_and_csv_reads_flatten_embedded_rows(shop, settings):
    fields = "id,total,customer(name,balance),lines(sku,qty)"
    async with running(settings()) as client:
        response = await client.get("/api/batch/orders/export", params={"fields": fields})
        assert response.status_code == 200, response.text
        assert response.text.splitlines()[:3] == [
            "id,total,customer.name,customer.balance,lines",
            '1,10.50,Ann,0.00000001,"[{""sku"":""A"",""qty"":2},{""sku"":""B"",""qty"":1}]"',
            '2,99.99,Ann,0.00000001,"[{""sku"":""A"",""qty"":5}]"',
        ]
        frame = pd.read_csv(io.StringIO(response.text), dtype={"customer.balance": str})
        assert list(frame["customer.name"].fillna("-")) == ["Ann", "Ann", "Bob", "-"]
        # A CSV read says the same (its own convention for the page).
        read = await client.get("/api/orders/query", params={"fields": fields}, headers={"accept": "text/csv"})
        assert read.text == response.text
        lines = (await client.get("/api/batch/orders/export", params={"fields": fields, "format": "jsonl"})).text
        assert [json.loads(line) for line in lines.splitlines()] == await rows(client, "/api/orders/query", fields=fields)
        xlsx = await client.get("/api/batch/orders/export", params={"fields": fields, "format": "xlsx"})
        sheet = list(openpyxl.load_workbook(io.BytesIO(xlsx.content)).active.iter_rows(values_only=True))
        assert sheet[0] == ("id", "total", "customer.name", "customer.balance", "lines")
        assert sheet[3] == (3, 5, "Bob", 12.5, "[]") and sheet[4] == (4, 1, None, None, "[]")
        parquet = await client.get("/api/batch/orders/export", params={"fields": fields, "format": "parquet"})
        table = pq.read_table(io.BytesIO(parquet.content)).to_pylist()
        assert str(table[0]["customer.balance"]) in ("1E-8", "1.00000000E-8") and table[3]["customer.name"] is None
        assert_error(await client.get("/api/batch/orders/export", params={"fields": fields, "null": "\\N"}),
                     400, "invalid_body")


async def test_a_foreign_key_made_after_start_is_found(shop, settings):
    async with running(settings(catalog_ttl_s=3600)) as client:
        assert (await client.get("/api/warehouses/query", params={"fields": "city,staff(name)"})).status_code == 400
        run_sql(shop, "CREATE TABLE staff (id INT PRIMARY KEY, name VARCHAR(20), warehouse_id INT,"
                      " FOREIGN KEY (warehouse_id) REFERENCES warehouses(id))")
        run_sql(shop, "INSERT INTO staff VALUES (1, 'Dee', 2)")
        assert await rows(client, "/api/warehouses/query", fields="city,staff(name)") == [
            {"city": "Lyon", "staff": []}, {"city": "Oslo", "staff": [{"name": "Dee"}]}]
        run_sql(shop, "ALTER TABLE orders ADD COLUMN ship_from INT, ADD FOREIGN KEY (ship_from) REFERENCES warehouses(id)")
        assert await rows(client, "/api/orders/query", fields="id,ship_from(city)", id="eq.1") == [
            {"id": 1, "ship_from": None}]


# --- every column kind, compared with plain reads ---------------------------------------------

KINDS = """CREATE TABLE kinds (
    id INT PRIMARY KEY, t VARCHAR(20), d DECIMAL(20,8), at DATETIME(6), ts TIMESTAMP(3) NULL, day DATE, x DOUBLE,
    f FLOAT, j JSON, flag TINYINT(1), big BIGINT UNSIGNED, st SET('b','a','c'), e ENUM('red','green'),
    tm TIME(6), bin VARBINARY(8), bits BIT(10), yr YEAR, lat LONGTEXT CHARACTER SET latin1
)"""
KIDS = "CREATE TABLE kids (id INT PRIMARY KEY, kind_id INT, n INT, FOREIGN KEY (kind_id) REFERENCES kinds(id))"
kind_rows = st.lists(
    st.tuples(
        maybe(texts), maybe(st.decimals(min_value=-(10**11), max_value=10**11, places=8, allow_nan=False)),
        maybe(moments), maybe(st.datetimes(dt.datetime(1970, 1, 2), dt.datetime(2038, 1, 1))),
        maybe(st.dates(dt.date(1000, 1, 1), dt.date(9999, 12, 31))),
        maybe(st.floats(allow_nan=False, allow_infinity=False, width=64)),
        maybe(st.floats(allow_nan=False, allow_infinity=False, width=32)),
        maybe(json_values.map(json.dumps)), maybe(st.integers(-128, 127)), maybe(st.integers(0, 2**64 - 1)),
        maybe(st.sampled_from(["", "a", "b,a", "a,c", "b,a,c"])), maybe(st.sampled_from(["red", "green"])),
        maybe(st.timedeltas(-dt.timedelta(hours=838), dt.timedelta(hours=838))), maybe(st.binary(max_size=8)),
        maybe(st.integers(0, 1023)), maybe(st.integers(1901, 2155)), maybe(st.text(alphabet="aé\"\\ \n", max_size=5)),
    ),
    min_size=1, max_size=5,
)


@pytest.fixture
def kinds_client(schema, settings):
    only(schema, [KINDS, KIDS])
    with TestClient(create_app(settings()), raise_server_exceptions=False) as client:
        yield client


def test_embedded_values_are_what_a_plain_read_answers(kinds_client, schema):
    """Every column kind, any value: an embedded object is the plain GET of its row, and an embedded
    array the plain list of those rows."""
    client = kinds_client

    @examples(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(rows=kind_rows, parents=st.lists(st.integers(0, 5), min_size=1, max_size=8))
    def same(rows, parents):
        run_sql(schema, "DELETE FROM kids")
        run_sql(schema, "DELETE FROM kinds")
        for i, row in enumerate(rows):
            run_sql(schema, "INSERT INTO kinds VALUES (" + ",".join(["%s"] * 18) + ")",
                    (i, *row[:14], None if row[14] is None else row[14].to_bytes(2, "big"), *row[15:]))
        for i, parent in enumerate(parents):
            run_sql(schema, "INSERT INTO kids VALUES (%s, %s, %s)", (i, parent if parent < len(rows) else None, i))
        kids = client.get("/api/kids/query", params={"fields": "id,kinds(*)"})
        assert kids.status_code == 200, kids.text
        for kid in kids.json()["data"]:
            parent = parents[kid["id"]]
            if parent < len(rows):
                assert kid["kinds"] == client.get(f"/api/kinds/{parent}").json()["data"]
            else:
                assert kid["kinds"] is None
        kinds = client.get("/api/kinds/query", params={"fields": "id,kids(*)"})
        assert kinds.status_code == 200, kinds.text
        for kind in kinds.json()["data"]:
            assert kind["kids"] == client.get("/api/kids/query", params={"kind_id": f"eq.{kind['id']}"}).json()["data"]

    same()


# --- against rows fetched one by one ------------------------------------------------------------


def test_embedded_rows_are_the_rows_fetched_one_by_one(shop, settings):
    """Any fields, order, limit and shaping filter: the one statement's answer is what N+1 plain
    reads of the same rows give."""
    rng = random.Random(26)
    for _ in range(60):
        customer = rng.choice([1, 2, 3, None])
        run_sql(shop, "INSERT INTO orders (customer_id, total, status) VALUES (%s, %s, %s)",
                (customer, rng.randint(1, 500), rng.choice(["open", "paid", None])))
    for order_id in range(5, 40):
        for line in range(rng.randint(0, 3)):
            run_sql(shop, "INSERT INTO `lines` VALUES (%s, %s, %s, %s)", (order_id, line, rng.choice(["A", "B", None]), line))
    with TestClient(create_app(settings()), raise_server_exceptions=False) as client:

        @examples(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck))
        @given(
            order=st.sampled_from([None, "total.desc", "status,total", "id.desc"]),
            limit=st.sampled_from([None, 1, 3, 50]), offset=st.sampled_from([None, 0, 2]),
            status=st.sampled_from([None, "open", "paid"]), line_fields=st.sampled_from(["sku", "qty,sku", "*"]),
        )
        def same(order, limit, offset, status, line_fields):
            options = "".join(f";{k}={v}" for k, v in (("order", order), ("limit", limit), ("offset", offset),
                                                       ("status", status and f"eq.{status}")) if v is not None)
            fields = f"id,name,orders(id,total,lines({line_fields}){options})"
            response = client.get("/api/customers/query", params={"fields": fields})
            assert response.status_code == 200, response.text
            for customer in response.json()["data"]:
                params = {"customer_id": f"eq.{customer['id']}", "fields": "id,total", "limit": 1000}
                params |= {"order": order} if order else {}
                params |= {"status": f"eq.{status}"} if status else {}
                orders = client.get("/api/orders/query", params=params).json()["data"]
                orders = orders[offset or 0:][:limit] if limit else orders[offset or 0:]
                for one in orders:
                    one["lines"] = client.get("/api/lines/query", params={
                        "order_id": f"eq.{one['id']}", "fields": line_fields}).json()["data"]
                assert customer["orders"] == orders

        same()


def test_no_fields_text_gives_a_5xx(shop, settings):
    """Any text in fields, in the relation filters and in the JSON body's embed objects: an answer or a 4xx."""
    parts = st.sampled_from(["id", "name", "orders", "customer", "(", ")", ",", ";", "!", ":", "*", ".", "=",
                             "order=", "limit=", "total", "eq.", "in.", "1", "lines", "x", " ", "'", "`", "%s", "\\"])
    with TestClient(create_app(settings()), raise_server_exceptions=False) as client:

        @examples(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
        @given(text=st.lists(parts, max_size=14).map("".join), key=st.lists(parts, max_size=5).map("".join),
               value=st.text(max_size=8), body=st.recursive(st.none() | st.integers() | st.text(max_size=5),
                                                            lambda inner: st.lists(inner, max_size=3)
                                                            | st.dictionaries(st.sampled_from(["fields", "where", "order", "limit", "orders", "id", "offset"]), inner, max_size=3),
                                                            max_leaves=8))
        def answered(text, key, value, body):
            for path in ("/api/customers/query", "/api/orders/query", "/api/batch/orders/export"):
                response = client.get(path, params={"fields": text})
                assert response.status_code < 500, (text, response.text)
                response = client.get(path, params={key or "x": value})
                assert response.status_code < 500, (key, value, response.text)
            response = client.post("/api/customers/query", json={"fields": ["id", {"orders": body}]})
            assert response.status_code < 500, (body, response.text)
            response = client.post("/api/customers/query", json={"input": {key or "x": body}})
            assert response.status_code < 500, (key, body, response.text)

        answered()


async def test_openapi_and_the_catalog_describe_each_tables_relations(shop, settings):
    from openapi_spec_validator import validate

    keys = json.dumps([
        {"name": "clerk", "sha256": hashlib.sha256(b"clerk").hexdigest(), "scopes": ["read:orders", "read:lines"]},
        {"name": "boss", "sha256": hashlib.sha256(b"boss").hexdigest(), "scopes": ["read:*"]},
    ])
    async with running(settings(auth_mode="api-key", api_keys=keys)) as client:
        boss = (await client.get("/openapi.json", headers={"X-API-Key": "boss"})).json()
        validate(boss)
        embeds = boss["components"]["schemas"]["orders.embeds"]["properties"]
        assert embeds["customer"]["anyOf"] == [{"$ref": "#/components/schemas/customers.row"}, {"type": "null"}]
        assert embeds["lines"] == embeds["lines"] | {"type": "array", "items": {"$ref": "#/components/schemas/lines.row"}}
        assert set(boss["components"]["schemas"]["shipments.embeds"]["properties"]) == {"from", "to", "lines"}
        # A caller sees the relations to the tables it may read, and no others.
        clerk = (await client.get("/openapi.json", headers={"X-API-Key": "clerk"})).json()
        validate(clerk)
        assert set(clerk["components"]["schemas"]["orders.embeds"]["properties"]) == {"lines"}
        described = (await client.get("/api/tables/orders", headers={"X-API-Key": "clerk"})).json()["data"]
        assert described["relations"] == [
            {"name": "lines", "table": "lines", "many": True, "columns": {"id": "order_id"}, "foreign_key": "lines_ibfk_1"},
        ]


async def test_embedded_floats_exports_past_the_cap_and_a_renamed_column(schema, settings):
    only(schema, [
        "CREATE TABLE owners (id INT PRIMARY KEY, f FLOAT, d DOUBLE, n VARCHAR(10))",
        "CREATE TABLE pets (id INT PRIMARY KEY, owner_id INT, FOREIGN KEY (owner_id) REFERENCES owners(id))",
        "INSERT INTO owners VALUES (1, 1, 2, 'a'), (2, 1.5, -0.25, 'b')",
        "INSERT INTO pets VALUES (1, 1), (2, 1), (3, 1), (4, 2)",
    ])
    async with running(settings(max_limit=2, catalog_ttl_s=3600)) as client:
        # A whole FLOAT is 1.0 embedded as in a plain read (JSON_OBJECT writes it as 1).
        embedded = await rows(client, "/api/pets/query", fields="id,owners(f,d)", id="eq.1")
        plain = (await client.get("/api/owners/1", params={"fields": "f,d"})).json()["data"]
        assert embedded[0]["owners"] == plain == {"f": 1.0, "d": 2.0}
        assert isinstance(embedded[0]["owners"]["f"], float)
        # An export whose first rows embed more than max_limit rows: an error answer, not a cut stream.
        for fmt in ("csv", "jsonl", "xlsx", "parquet"):
            response = await client.get("/api/batch/owners/export", params={"format": fmt, "fields": "id,pets(id)"})
            assert_error(response, 413, "payload_too_large")
        # A column renamed behind the gateway's back: the read refreshes the catalog and answers.
        assert (await rows(client, "/api/pets/query", fields="id,owners(n)", id="eq.4")) == [{"id": 4, "owners": {"n": "b"}}]
        run_sql(schema, "ALTER TABLE owners RENAME COLUMN n TO name")
        response = await client.get("/api/owners/query", params={"order": "id"})
        assert response.status_code == 200 and response.json()["data"][0]["name"] == "a", response.text
        body = assert_error(await client.get("/api/pets/query", params={"fields": "id,owners(n)"}), 400, "unknown_column")
        assert "_gateway" not in body["message"]
