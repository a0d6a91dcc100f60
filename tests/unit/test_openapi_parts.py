"""The OpenAPI document's per-table parts: made from a template with the table's name put in, they
are byte for byte what building each table's part in full makes."""

import orjson

from app.api.routes import ROUTES
from app.core.auth import EVERYONE, Principal
from app.db.catalog import Table
from app.http.dispatch import Dispatcher
from app.http.openapi import OpenAPI

from .tables import PAIRS, USERS

READER = Principal("reader", frozenset({("read", "*")}))


def openapi() -> OpenAPI:
    return OpenAPI(ROUTES, Dispatcher(ROUTES), title="t", version="1", max_limit=100)


def test_a_part_from_the_template_is_the_part_built_in_full():
    nokey = Table("loose", USERS.columns[:3])
    for table in (USERS, PAIRS, nokey, Table("odd name é", PAIRS.columns, PAIRS.primary_key)):
        for who in (EVERYONE, READER):
            allowed = tuple(who.may(a, table.name) for a in ("read", "write", "import", "export"))
            made = openapi()
            assert made._part(table, allowed) == made._built(table, allowed), table.name


def test_reserved_and_escaped_names_are_built_in_full():
    made = openapi()
    for name in ("batch", "jobs", "a/b", 'quo"te'):
        table = Table(name, PAIRS.columns, PAIRS.primary_key)
        part = made._part(table, (True, True, True, True))
        assert part == made._built(table, (True, True, True, True))
    document = orjson.loads(made.document([Table("batch", PAIRS.columns, PAIRS.primary_key)], EVERYONE))
    assert "/api/tables/batch/query" in document["paths"] and "/api/batch/query" not in document["paths"]


def test_any_table_names_make_a_valid_document_with_unique_operations():
    """Names that meet the gateway's own operations (tables, jobs), each other (log + aggregate_query,
    query_log + aggregate), or characters component names do not allow: still a valid document."""
    import re

    from openapi_spec_validator import validate

    names = ("tables", "jobs", "log", "query_log", "weird name", "a-b", "a-2d-b", "données", "x.y", "batch", "a/b")
    tables = [Table(name, PAIRS.columns, PAIRS.primary_key) for name in names]
    document = orjson.loads(openapi().document(tables, EVERYONE))
    validate(document)
    ids = [op["operationId"] for item in document["paths"].values() for op in item.values() if "operationId" in op]
    assert len(ids) == len(set(ids))
    for kind in ("schemas", "parameters", "responses"):
        assert all(re.fullmatch(r"[a-zA-Z0-9._-]+", name) for name in document["components"][kind]), kind
    assert {"weird-20-name.row", "a-2d-b.row", "a-2d-2d-2d-b.row", "donn-e9-es.row"} <= set(document["components"]["schemas"])
