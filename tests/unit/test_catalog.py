import pytest

from app.core.catalog import Catalog, exposed
from app.core.errors import TableNotFound

from .tables import PAIRS, TABLES, USERS


def test_build_tables_reads_keys_json_and_requirements():
    assert [c.name for c in PAIRS.primary_key] == ["a", "b"]
    assert USERS.column("meta").kind == "json"
    assert USERS.column("flag").kind == "bool"
    assert USERS.column("kind").members == ("a", "b'c")
    required = [c.name for c in USERS.columns if c.required]
    assert required == ["name"]  # id is auto-increment, price and kind have defaults


def test_exposure_rules():
    assert exposed("users", (), ())
    assert not exposed("_gateway_keys", ("*",), ())
    assert not exposed("users", ("orders*",), ())
    assert not exposed("secret", (), ("sec*",))
    assert exposed("orders_2024", ("orders*",), ("secret*",))


async def test_catalog_refreshes_on_miss_at_most_once_per_interval():
    loads = []

    async def loader():
        loads.append(1)
        return dict(TABLES)

    catalog = Catalog(loader, miss_interval_s=3600)
    await catalog.refresh()
    assert (await catalog.table("users")).name == "users"
    with pytest.raises(TableNotFound):
        await catalog.table("missing")
    assert len(loads) == 1  # the miss came within the interval: no reload
    assert "_gateway_keys" not in [t.name for t in catalog.tables()]


async def test_catalog_miss_reloads_and_finds_new_table():
    tables = {"users": USERS}

    async def loader():
        return dict(tables)

    catalog = Catalog(loader, miss_interval_s=0)
    await catalog.refresh()
    tables["pairs"] = PAIRS
    assert (await catalog.table("pairs")).name == "pairs"
