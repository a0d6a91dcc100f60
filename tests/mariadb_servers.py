"""Private MariaDB servers for tests that need more than one (a primary and its replica).

Each has its own data dir, socket and loopback TCP port under a temporary directory; the gateway
and the tests connect through the socket, the replica to its primary over TCP.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pymysql

from scripts.galera import socket_sql


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _binary(*names: str) -> str:
    for name in names:
        found = shutil.which(name) or (f"/usr/sbin/{name}" if os.path.exists(f"/usr/sbin/{name}") else None)
        if found:
            return found
    if os.getuid() == 0:  # as scripts/ensure-db.sh does
        subprocess.run(["apt-get", "update", "-qq"], check=True, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "mariadb-server"], check=True, capture_output=True,
                       env=os.environ | {"DEBIAN_FRONTEND": "noninteractive"})
        return _binary(*names)
    raise RuntimeError(f"{names[0]} is not installed (install mariadb-server)")


class PrivateServer:
    def __init__(self, base: Path, server_id: int, extra: tuple[str, ...] = ()):
        self.dir = base / f"server{server_id}"
        self.server_id = server_id
        self.port = _free_port()
        self.socket = str(self.dir / "mysqld.sock")
        self.process: subprocess.Popen | None = None
        user = ["--user=root"] if os.getuid() == 0 else []
        self.dir.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [_binary("mariadb-install-db", "mysql_install_db"), "--no-defaults", f"--datadir={self.dir / 'data'}",
             "--auth-root-authentication-method=normal", "--skip-test-db", *user],
            check=True, capture_output=True,
        )
        self._command = [
            _binary("mariadbd", "mysqld"), "--no-defaults", f"--datadir={self.dir / 'data'}", f"--socket={self.socket}",
            f"--port={self.port}", "--bind-address=127.0.0.1", f"--server-id={server_id}",
            f"--log-bin={self.dir / 'data' / 'binlog'}", "--innodb-buffer-pool-size=64M",
            f"--pid-file={self.dir / 'mysqld.pid'}", f"--log-error={self.dir / 'error.log'}", *user, *extra,
        ]

    def url(self, database: str) -> str:
        return f"mysql://root@localhost/{database}?unix_socket={self.socket}"

    def start(self) -> None:
        self.process = subprocess.Popen(self._command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                self.sql("SELECT 1")
                return
            except pymysql.err.OperationalError:
                time.sleep(0.1)
        raise RuntimeError(f"server {self.server_id} did not start: {(self.dir / 'error.log').read_text()[-2000:]}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(30)

    def sql(self, statement: str, params=(), database: str | None = None) -> list[tuple]:
        return socket_sql(self.socket, statement, params, database)


def replicating_pair(base: Path) -> tuple[PrivateServer, PrivateServer]:
    primary, replica = PrivateServer(base, 1), PrivateServer(base, 2)
    primary.start()
    replica.start()
    primary.sql("CREATE USER 'repl'@'127.0.0.1' IDENTIFIED BY 'repl'")
    primary.sql("GRANT REPLICATION SLAVE ON *.* TO 'repl'@'127.0.0.1'")
    replica.sql(
        f"CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={primary.port}, MASTER_USER='repl',"
        " MASTER_PASSWORD='repl', MASTER_USE_GTID=slave_pos"
    )
    replica.sql("START SLAVE")
    return primary, replica


# What the change feed reads (app/feed/reader.py): every row change whole, with its columns' names.
FEED_FLAGS = ("--binlog-format=ROW", "--binlog-row-image=FULL", "--binlog-row-metadata=FULL")
