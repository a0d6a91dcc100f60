"""Does DATABASE_URL (argv[1]) answer (one of its nodes, when it names several)? Exit 0 if it does,
else 1 with one line on stderr naming the host, port, database and the reason (refused, unknown
host, access denied, unknown database, no answer), never the password. Used by scripts/ensure-db.sh
only.

--create: connect without the database and create it (the private server's own database).
"""

import socket
import sys

import pymysql

sys.path.insert(0, ".")
from app.core.config import DatabaseAddress  # noqa: E402

REASONS = {
    1044: "access denied to the database",
    1045: "access denied (user or password)",
    1049: "unknown database",
    1698: "access denied (user or password)",
    2005: "unknown host",
}


def where(address: DatabaseAddress) -> str:
    place = f"socket {address.unix_socket}" if address.unix_socket else f"{address.host}:{address.port}"
    return f"{place}, database '{address.database}', user '{address.user}'"


def reason(exc: Exception, address: DatabaseAddress) -> str:
    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else 0
    if code in REASONS:
        return REASONS[code]
    if code in (2002, 2003):
        if not address.unix_socket:
            try:
                socket.getaddrinfo(address.host, address.port)
            except socket.gaierror:
                return "unknown host"
        text = str(exc).lower()
        if "timed out" in text:
            return "no answer (timed out)"
        return "connection refused (nothing listens there)"
    return f"error {code}" if code else type(exc).__name__


def check(address: DatabaseAddress, create: bool) -> str | None:
    """None when the server answers (creating the database first with `create`), else why not."""
    try:
        database = None if create else address.database
        conn = pymysql.connect(**address.connect_kwargs(), database=database, connect_timeout=3)
    except pymysql.err.MySQLError as exc:
        return f"cannot use {where(address)}: {reason(exc, address)}"
    with conn.cursor() as cursor:
        if create:
            name = address.database.replace("`", "``")
            cursor.execute(f"CREATE DATABASE IF NOT EXISTS `{name}` CHARACTER SET utf8mb4")
        cursor.execute("SHOW GLOBAL STATUS LIKE 'wsrep_ready'")  # answered even by a Galera node not ready
    conn.close()
    return None


def main() -> int:
    url = sys.argv[1]
    try:
        nodes = DatabaseAddress.parse_nodes(url)
    except ValueError as exc:
        print(f"dbcheck: DATABASE_URL is not usable: {exc}", file=sys.stderr)
        return 1
    # Several Galera nodes: one that answers is enough to start (the gateway uses the others when
    # they answer too).
    problems = [check(address, "--create" in sys.argv) for address in nodes]
    if any(problem is None for problem in problems):
        return 0
    print("dbcheck: " + "; ".join(p for p in problems if p), file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
