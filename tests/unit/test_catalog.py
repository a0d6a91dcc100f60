import asyncio

import pytest

from app.core.errors import TableNotFound
from app.db.catalog import Catalog, Listing, exposed

from .tables import PAIRS, TABLES, USERS


class Source:
    """INFORMATION_SCHEMA as the catalog reads it: the tables that exist now, their stamps, and a
    record of every read (None: the whole schema). `gate`, when set, holds each read of tables (after
    it has seen what exists) until it is opened."""

    def __init__(self, tables=None):
        self.now = dict(tables or {"users": USERS})
        self.stamps = {name: 1 for name in self.now}
        self.recent: set[str] = set()
        self.reads: list = []
        self.running = 0
        self.gate: asyncio.Event | None = None
        self.fail = 0

    async def _step(self, gated=True):
        self.running += 1
        assert self.running == 1, "two reads at once"
        try:
            if gated and self.gate is not None:
                await self.gate.wait()
            if self.fail:
                self.fail -= 1
                raise RuntimeError("database away")
        finally:
            self.running -= 1

    async def listing(self):
        self.reads.append("listing")
        await self._step(gated=False)
        return Listing(dict(self.stamps), frozenset(self.recent))

    async def tables(self, names=None, kinds=None):
        self.reads.append(None if names is None else sorted(names))
        snapshot = dict(self.now)  # what a read sees is what existed when it started
        await self._step()
        return {n: t for n, t in snapshot.items() if names is None or n in names}


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


async def test_a_table_created_just_after_a_load_is_found_by_a_look_at_it_alone():
    source = Source(TABLES)
    catalog = Catalog(source)
    await catalog.reload()
    source.now["fresh"] = PAIRS  # CREATE TABLE, then at once a request
    assert (await catalog.table("fresh")) is PAIRS
    assert "_gateway_keys" not in [t.name for t in catalog.tables()]
    assert source.reads == ["listing", None, ["fresh"]]  # the whole schema once; then only the new name


async def test_names_never_served_are_never_read():
    source = Source(TABLES)
    catalog = Catalog(source, deny=("secret*",))
    await catalog.reload()
    for name in ("_gateway_keys", "secret_stuff"):
        with pytest.raises(TableNotFound):
            await catalog.table(name)
    assert source.reads == ["listing", None]


async def test_concurrent_misses_share_reads_and_reads_never_overlap():
    source = Source(TABLES)
    source.gate = asyncio.Event()
    catalog = Catalog(source)
    first = asyncio.create_task(catalog.reload())
    await asyncio.sleep(0)
    misses = [asyncio.create_task(catalog.table(f"made_up_{i}")) for i in range(50)]
    await asyncio.sleep(0)
    source.gate.set()
    results = await asyncio.gather(first, *misses, return_exceptions=True)
    assert all(isinstance(r, TableNotFound) for r in results[1:])
    # The 50 misses came while the whole load ran (it started too early for them): one more read,
    # of their 50 names together, never the whole schema again.
    assert source.reads == ["listing", None, sorted(f"made_up_{i}" for i in range(50))]


async def test_a_miss_waits_for_a_read_that_started_after_it():
    source = Source({"users": USERS})
    source.gate = asyncio.Event()
    catalog = Catalog(source)
    early = asyncio.create_task(catalog.reload())
    while source.reads != ["listing", None]:
        await asyncio.sleep(0)
    source.now["pairs"] = PAIRS  # created while that load runs: it cannot see it
    miss = asyncio.create_task(catalog.table("pairs"))
    await asyncio.sleep(0)
    source.gate.set()
    await early
    assert (await miss).name == "pairs"
    assert source.reads == ["listing", None, ["pairs"]]


async def test_a_failed_read_reaches_every_waiter_and_the_next_miss_tries_again():
    source = Source(TABLES)
    source.fail = 1
    catalog = Catalog(source)
    with pytest.raises(RuntimeError):
        await catalog.table("users")
    assert (await catalog.table("users")).name == "users"


async def test_a_refresh_reads_only_what_changed_and_keeps_the_rest_as_it_was():
    source = Source({"users": USERS, "pairs": PAIRS, "gone": PAIRS})
    source.recent = {"pairs"}  # changed within the second of the load: its stamp may not show a second change
    catalog = Catalog(source, ttl_s=0)
    await catalog.reload()
    users, pairs = await catalog.table("users"), await catalog.table("pairs")
    source.reads.clear()
    # An ALTER (a new stamp), a DROP and a CREATE.
    altered = type(USERS)(name="users", columns=USERS.columns[:3], primary_key=USERS.primary_key)
    source.now["users"], source.stamps["users"] = altered, 2
    del source.now["gone"], source.stamps["gone"]
    source.now["made"], source.stamps["made"] = type(PAIRS)(name="made", columns=PAIRS.columns, primary_key=PAIRS.primary_key), 1
    source.recent = set()

    async def refreshed():
        await catalog.table("users")  # past the TTL: a refresh in the background
        while catalog._worker is not None:
            await asyncio.sleep(0)

    await refreshed()
    assert source.reads == ["listing", ["made", "pairs", "users"]]
    assert (await catalog.table("users")) is altered and users is not altered
    assert (await catalog.table("pairs")) is pairs  # read again, unchanged: the same object
    assert [t.name for t in catalog.tables()] == ["made", "pairs", "users"]
    source.reads.clear()
    await refreshed()
    assert source.reads == ["listing"]  # nothing changed: nothing read but the listing
