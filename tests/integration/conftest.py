import gc

import pytest

from app.core.config import DatabaseAddress
from tests.faultproxy import FaultProxy


@pytest.fixture(autouse=True)
async def collect_while_the_loop_runs():
    """aiomysql leaves a socket open when a connect is cancelled (its clean-up catches Exception
    only); the Connection's __del__ closes it, which needs a running loop. Collect at the end of each
    test, while this test's loop still runs, rather than at exit ("Event loop is closed")."""
    yield
    gc.collect()


@pytest.fixture
async def proxy(test_db):
    """A fault proxy in front of the test database (see tests/faultproxy.py)."""
    proxy = FaultProxy(DatabaseAddress.parse(test_db))
    await proxy.up()
    yield proxy
    await proxy.down()
