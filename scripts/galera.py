"""A MariaDB Galera cluster on loopback, for the project and its tests (`make galera`).

    python scripts/galera.py start [NODES]   # prints the cluster's DATABASE_URL
    python scripts/galera.py stop

Each node has its own data dir, socket and four loopback ports (SQL, group communication, IST, SST)
under $GALERA_DIR (.data/galera); ports start at $GALERA_BASE_PORT (4600), ten a node (the tests'
clusters: a free block below the ephemeral range). The first
node bootstraps the cluster (--wsrep-new-cluster), the others join it by SST (rsync). Nodes start
with --no-defaults: the system my.cnf's socket would collide. A node killed with -9 rejoins by IST
from the position `mariadbd --wsrep-recover` finds (`restart`). `galera-4` and `rsync` are installed
with apt-get when missing and we are root.

The tests use the `Cluster` class directly, on free ports under their own temporary directory.
"""

from __future__ import annotations

import os
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pymysql

ROOT = Path(__file__).resolve().parent.parent
PROVIDER = "/usr/lib/galera/libgalera_smm.so"
# Failure detection in 2-3 s instead of Galera's default ~6 s: a dead node stalls every write that
# long. gcache large enough that a node killed for a test rejoins by IST, not by a full copy.
PROVIDER_OPTIONS = ";".join((
    "evs.keepalive_period=PT0.5S", "evs.suspect_timeout=PT2S", "evs.inactive_timeout=PT3S", "evs.install_timeout=PT3S",
    "gcache.size=256M",
))


# As root the servers run as `mysql`: the rsync daemon that receives a state transfer (SST) would
# otherwise drop to `nobody` and be refused the data dir.
_USER = ["--user=mysql"] if os.getuid() == 0 else []


def _binary(name: str, package: str) -> str:
    found = shutil.which(name) or (f"/usr/sbin/{name}" if os.path.exists(f"/usr/sbin/{name}") else None)
    if found:
        return found
    if os.getuid() != 0:
        raise RuntimeError(f"{name} is missing: install {package} (or run as root to have it installed)")
    env = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, capture_output=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", package], check=True, capture_output=True, env=env)
    return _binary(name, package)


def _ensure_installed() -> None:
    _binary("mariadbd", "mariadb-server")
    _binary("rsync", "rsync")
    if not os.path.exists(PROVIDER):
        _binary("garbd", "galera-4")


def socket_sql(socket: str, statement: str, params=(), database: str | None = None) -> list[tuple]:
    """One statement as root through a server's socket, on a connection of its own."""
    conn = pymysql.connect(
        unix_socket=socket, user="root", database=database, autocommit=True, connect_timeout=2, read_timeout=30
    )
    try:
        with conn.cursor() as cursor:
            cursor.execute(statement, params)
            return list(cursor.fetchall())
    finally:
        conn.close()


def free_base_port(span: int) -> int:
    """A port P such that P..P+span-1 are free now, below Linux's ephemeral range (32768-60999): a
    port the kernel picked for us could be handed to an outgoing connection before a (re)started
    server binds it again."""
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(20000, 32768 - span)
        try:
            for port in range(base, base + span):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise RuntimeError(f"no {span} free ports in a row below 32768")


class Node:
    def __init__(self, cluster: "Cluster", number: int, ports: tuple[int, int, int, int]):
        self.cluster, self.number = cluster, number
        self.port, self.gcomm_port, self.ist_port, self.sst_port = ports
        self.dir = cluster.directory / f"node{number}"
        self.data = self.dir / "data"
        self.socket = str(self.dir / "mysqld.sock")
        self.log = self.dir / "error.log"
        self.process: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.dir / "mysqld.pid"

    def command(self, *extra: str) -> list[str]:
        options = f"gmcast.listen_addr=tcp://127.0.0.1:{self.gcomm_port};ist.recv_addr=127.0.0.1:{self.ist_port};{PROVIDER_OPTIONS}"
        return [
            _binary("mariadbd", "mariadb-server"), "--no-defaults", f"--datadir={self.data}", f"--socket={self.socket}",
            f"--port={self.port}", "--bind-address=127.0.0.1", f"--pid-file={self.pid_file}", f"--log-error={self.log}",
            "--innodb-buffer-pool-size=128M", "--max-connections=500", "--skip-name-resolve",
            "--binlog-format=ROW", "--default-storage-engine=InnoDB", "--innodb-autoinc-lock-mode=2",
            "--wsrep-on=ON", f"--wsrep-provider={PROVIDER}", f"--wsrep-cluster-name={self.cluster.name}",
            f"--wsrep-cluster-address=gcomm://{self.cluster.gcomm_addresses}", f"--wsrep-provider-options={options}",
            f"--wsrep-node-name=node{self.number}", "--wsrep-node-address=127.0.0.1",
            f"--wsrep-sst-receive-address=127.0.0.1:{self.sst_port}", "--wsrep-sst-method=rsync", *_USER, *extra,
        ]

    def install(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        if (self.data / "mysql").exists():
            return
        if _USER:
            shutil.chown(self.dir, "mysql", "mysql")
        subprocess.run(
            [_binary("mariadb-install-db", "mariadb-server"), "--no-defaults", f"--datadir={self.data}",
             "--auth-root-authentication-method=normal", "--skip-test-db", *_USER],
            check=True, capture_output=True,
        )

    def start(self, *extra: str) -> None:
        """Start the server (returns at once; `wait_synced` waits for it)."""
        self.install()
        self.process = subprocess.Popen(
            self.command(*extra), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )

    def recovered_position(self) -> str:
        """The last committed position in the data dir (uuid:seqno), for a rejoin by IST."""
        log = self.dir / "recover.log"
        subprocess.run(self.command("--wsrep-recover", f"--log-error={log}"), capture_output=True, timeout=120)
        found = re.findall(r"Recovered position:\s*(\S+:-?\d+)", log.read_text(errors="replace"))
        if not found:
            raise RuntimeError(f"node{self.number}: no recovered position: {log.read_text()[-1500:]}")
        return found[-1]

    def restart(self) -> None:
        """Start a stopped or killed node again so that it rejoins by IST."""
        self.start(f"--wsrep-start-position={self.recovered_position()}")

    def kill(self) -> None:
        """kill -9: what a crash looks like to the rest of the cluster."""
        self._end(signal.SIGKILL, 30)

    def stop(self) -> None:
        self._end(signal.SIGTERM, 60)

    def _end(self, sig: signal.Signals, seconds: float) -> None:
        """Send `sig` to the server, and return once its process is gone."""
        pid = self.pid()
        if pid is None:
            return
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        if self.process is not None:
            self.process.wait(seconds)
        self._wait_gone(pid, seconds)

    def pid(self) -> int | None:
        if self.process is not None and self.process.poll() is None:
            return self.process.pid
        try:
            pid = int(self.pid_file.read_text())
            os.kill(pid, 0)
            return pid
        except (OSError, ValueError):
            return None

    @staticmethod
    def _wait_gone(pid: int, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)

    def sql(self, statement: str, params=(), database: str | None = None) -> list[tuple]:
        return socket_sql(self.socket, statement, params, database)

    def status(self) -> dict[str, str]:
        """wsrep_ready, wsrep_local_state_comment and wsrep_cluster_status/size; {} when unreachable."""
        try:
            rows = self.sql("SHOW GLOBAL STATUS WHERE Variable_name IN ('wsrep_ready', 'wsrep_local_state_comment',"
                            " 'wsrep_cluster_status', 'wsrep_cluster_size', 'wsrep_last_committed')")
        except pymysql.err.MySQLError:
            return {}
        return {name: value for name, value in rows}

    def synced(self) -> bool:
        status = self.status()
        return status.get("wsrep_ready") == "ON" and status.get("wsrep_local_state_comment") == "Synced"

    def wait_synced(self, seconds: float = 120) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.synced():
                return
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"node{self.number} exited: {self.log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.1)
        log = self.log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"node{self.number} not Synced after {seconds} s: {log}")


class Cluster:
    def __init__(self, directory: Path, nodes: int = 3, base_port: int | None = None, name: str = "gateway"):
        _ensure_installed()
        self.directory, self.name = directory, name
        directory.mkdir(parents=True, exist_ok=True)
        directory.chmod(0o755)
        # The gateway user's password: $GALERA_PASSWORD, or one made for this cluster and kept with it.
        secret = directory / "password"
        if not secret.exists():
            secret.write_text(os.environ.get("GALERA_PASSWORD") or secrets.token_hex(12))
            secret.chmod(0o600)
        self.password = secret.read_text().strip()
        base_port = base_port or free_base_port(10 * nodes)
        ports = [tuple(base_port + 10 * i + k for k in range(4)) for i in range(nodes)]
        self.nodes = [Node(self, i + 1, p) for i, p in enumerate(ports)]  # type: ignore[arg-type]

    @property
    def gcomm_addresses(self) -> str:
        return ",".join(f"127.0.0.1:{n.gcomm_port}" for n in self.nodes)

    def url(self, database: str, nodes: list[Node] | None = None) -> str:
        """A DATABASE_URL for the gateway user, naming the nodes (all by default)."""
        hosts = ",".join(n.address for n in (nodes or self.nodes))
        return f"mysql://gateway:{self.password}@{hosts}/{database}"

    def start(self) -> None:
        first, *others = self.nodes
        first.start("--wsrep-new-cluster")
        first.wait_synced()
        # A TCP user for the gateway (root is only reachable through the socket); replicated.
        first.sql("CREATE USER IF NOT EXISTS 'gateway'@'127.0.0.1' IDENTIFIED BY %s", (self.password,))
        first.sql("GRANT ALL ON *.* TO 'gateway'@'127.0.0.1' WITH GRANT OPTION")
        for node in others:
            node.start()
        for node in others:
            node.wait_synced()

    def stop(self) -> None:
        for node in reversed(self.nodes):
            node.stop()

    def heal(self) -> None:
        """Every node running and Synced again, after some were killed or left without quorum: the
        primary component is made again from a surviving node when needed, the others rejoin by IST."""
        alive = [n for n in self.nodes if n.pid() is not None]
        if not alive:
            raise RuntimeError("no node is running: start the cluster again")
        if not any(n.status().get("wsrep_cluster_status") == "Primary" for n in alive):
            self.bootstrap_from(alive[0])
        for node in self.nodes:
            if node.pid() is None:
                node.restart()
        for node in self.nodes:
            node.wait_synced()

    def bootstrap_from(self, node: Node) -> None:
        """Make `node`, left alone without quorum (non-primary), the primary component again."""
        node.sql("SET GLOBAL wsrep_provider_options='pc.bootstrap=YES'")
        node.wait_synced()


def _from_environment() -> Cluster:
    directory = Path(os.environ.get("GALERA_DIR", ROOT / ".data" / "galera"))
    nodes = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    return Cluster(directory, nodes, int(os.environ.get("GALERA_BASE_PORT", "4600")))


def main() -> None:
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command not in ("start", "stop"):
        sys.exit(__doc__)
    cluster = _from_environment()
    if command == "stop":
        cluster.stop()
        print("galera: stopped", file=sys.stderr)
        return
    if all(node.synced() for node in cluster.nodes):
        print(cluster.url("gateway"))
        return
    cluster.stop()
    states = [n.data / "grastate.dat" for n in cluster.nodes]
    if all(state.exists() for state in states):
        # Started before: the node that stopped last may bootstrap (safe_to_bootstrap: 1). After a
        # crash of them all none may; this development cluster then starts from its first node.
        safe = [n for n, state in zip(cluster.nodes, states) if "safe_to_bootstrap: 1" in state.read_text()]
        if not safe:
            states[0].write_text(states[0].read_text().replace("safe_to_bootstrap: 0", "safe_to_bootstrap: 1"))
            safe = cluster.nodes[:1]
        cluster.nodes.remove(safe[0])
        cluster.nodes.insert(0, safe[0])
    print(f"galera: starting {len(cluster.nodes)} nodes under {cluster.directory}", file=sys.stderr)
    cluster.start()
    cluster.nodes[0].sql("CREATE DATABASE IF NOT EXISTS gateway")
    print(cluster.url("gateway"))


if __name__ == "__main__":
    main()
