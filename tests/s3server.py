"""A real S3 API on loopback for the tests (and bench/csv.py): moto's standalone server, in its own
process, on a free port; stopped when the test session ends."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import boto3
import pytest

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class S3Server:
    def __init__(self, url: str, process: subprocess.Popen | None = None):
        self.url, self.process = url, process
        self.client = boto3.client(
            "s3", endpoint_url=url, region_name="us-east-1",
            aws_access_key_id="testing", aws_secret_access_key="testing",
        )

    def env(self) -> dict[str, str]:
        return CREDENTIALS | {"AWS_ENDPOINT_URL": self.url}

    def put(self, bucket: str, key: str, data: bytes) -> None:
        try:
            self.client.create_bucket(Bucket=bucket)
        except self.client.exceptions.BucketAlreadyOwnedByYou:
            pass
        self.client.put_object(Bucket=bucket, Key=key, Body=data)

    @classmethod
    def start(cls) -> "S3Server":
        port = free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return cls(f"http://127.0.0.1:{port}", process)
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    process.kill()
                    raise RuntimeError("moto's S3 server did not start")
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)


@pytest.fixture(scope="session")
def s3_server():
    server = S3Server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3(s3_server, monkeypatch):
    """The S3 server, with the standard AWS environment pointing at it for this test."""
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    return s3_server
