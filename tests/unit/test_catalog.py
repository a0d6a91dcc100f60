import asyncio

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


async def test_a_table_created_just_after_a_load_is_found_by_the_next_request():
    """The old rule (at most one reload a second) answered 404 for a table created right after a load."""
    tables = {"users": USERS}

    async def loader():
        return dict(tables)

    catalog = Catalog(loader)
    await catalog.reload()
    tables["pairs"] = PAIRS  # CREATE TABLE, then at once a request
    assert (await catalog.table("pairs")).name == "pairs"
    assert "_gateway_keys" not in [t.name for t in catalog.tables()]


async def test_concurrent_misses_share_loads_and_loads_never_overlap():
    loads, running = [], []
    gate, first_running = asyncio.Event(), asyncio.Event()

    async def loader():
        running.append(1)
        assert len(running) == 1, "two loads at once"
        loads.append(1)
        first_running.set()
        await gate.wait()
        running.pop()
        return dict(TABLES)

    catalog = Catalog(loader)
    first = asyncio.create_task(catalog.reload())
    await first_running.wait()
    misses = [asyncio.create_task(catalog.table(f"made_up_{i}")) for i in range(50)]
    await asyncio.sleep(0)
    gate.set()
    results = await asyncio.gather(first, *misses, return_exceptions=True)
    assert all(isinstance(r, TableNotFound) for r in results[1:])
    # The 50 misses came while the first load ran (it started too early for them): one more, shared.
    assert len(loads) == 2


async def test_a_miss_waits_for_a_load_that_started_after_it():
    started = []
    gate, running = asyncio.Event(), asyncio.Event()
    tables = {"users": USERS}

    async def loader():
        started.append(len(tables))
        snapshot = dict(tables)  # what the load sees is what existed when it started
        running.set()
        await gate.wait()
        return snapshot

    catalog = Catalog(loader)
    early = asyncio.create_task(catalog.reload())
    await running.wait()
    tables["pairs"] = PAIRS  # created while that load runs: it cannot see it
    miss = asyncio.create_task(catalog.table("pairs"))
    await asyncio.sleep(0)
    gate.set()
    await early
    assert (await miss).name == "pairs"
    assert started == [1, 2]


async def test_a_failed_load_reaches_every_waiter_and_the_next_miss_tries_again():
    calls = []

    async def loader():
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("database away")
        return dict(TABLES)

    catalog = Catalog(loader)
    with pytest.raises(RuntimeError):
        await catalog.table("users")
    assert (await catalog.table("users")).name == "users"
