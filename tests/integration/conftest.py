import asyncio
import gc
import os
import sys
from pathlib import Path

import pytest

from app.core.config import DatabaseAddress
from scripts.galera import free_base_port
from tests.conftest import free_port
from tests.faultproxy import FaultProxy
from tests.s3server import s3, s3_server  # noqa: F401  (fixtures: an S3 API, started when a test asks)

ROOT = Path(__file__).resolve().parents[2]


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


class GatewayCluster:
    """Gateway processes behind a real nginx (deploy/cluster.sh), as a test drives them."""

    def __init__(self, directory: Path, env: dict):
        self.directory, self.env = directory, env
        self.url = f"http://127.0.0.1:{env['NGINX_PORT']}"

    def pid(self, instance: int) -> int:
        return int((self.directory / f"gateway-{instance}.pid").read_text())

    def instance_url(self, instance: int) -> str:
        return f"http://127.0.0.1:{int(self.env['BASE_PORT']) + instance}"

    async def script(self, *args: str) -> None:
        process = await asyncio.create_subprocess_exec(
            str(ROOT / "deploy" / "cluster.sh"), *args, env=self.env, cwd=ROOT,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )
        _, err = await asyncio.wait_for(process.communicate(), timeout=180)
        assert process.returncode == 0, err.decode()[-2000:]


@pytest.fixture
async def gateways(tmp_path):
    """start(database_url, **env): three gateway processes behind nginx; stopped afterwards."""
    started: list[GatewayCluster] = []

    async def start(database_url: str, **env: str) -> GatewayCluster:
        base = free_base_port(4)  # BASE_PORT+1.. for the gateways
        values = os.environ | env | {
            "DATABASE_URL": database_url, "CLUSTER_DIR": str(tmp_path / "cluster"), "BASE_PORT": str(base),
            "NGINX_PORT": str(free_port()), "PYTHON": sys.executable, "GATEWAY_ACCESS_LOG": "false",
        }
        cluster = GatewayCluster(tmp_path / "cluster", values)
        started.append(cluster)
        await cluster.script("start", "3")
        return cluster

    yield start
    for cluster in started:
        await cluster.script("stop")
