#!/usr/bin/env bash
# Print a DATABASE_URL that answers, starting a database when needed:
#   1. $DATABASE_URL when it is set. If it does not answer, `make run` (--serve) stops here with the
#      reason: it never serves another database. `make test` says so and uses the private server
#      (each test run creates and drops its own database, so nothing is served from it);
#   2. otherwise a private MariaDB for this checkout: its own data dir and socket under .data/,
#      no TCP port (so it can never collide with another server); installed with apt-get when
#      mariadbd is missing and we are root. It is left running for the next run; `make db-stop` stops it.
#      It writes the binlog the change feed reads (row images whole, with column names), kept an hour.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
py=${PYTHON:-.venv/bin/python}

if [ -n "${DATABASE_URL:-}" ]; then
  if why=$("$py" scripts/dbcheck.py "$DATABASE_URL" 2>&1); then
    echo "$DATABASE_URL"; exit 0
  fi
  if [ "${1:-}" = "--serve" ]; then
    echo "ensure-db: DATABASE_URL does not answer, so the gateway will not start. ${why#dbcheck: }" >&2
    echo "ensure-db: fix DATABASE_URL, or unset it to use a private MariaDB for this checkout" >&2
    exit 1
  fi
  echo "ensure-db: DATABASE_URL does not answer (${why#dbcheck: }); the tests use a private MariaDB" >&2
fi

data=$root/.data
sock=$data/mariadb.sock
url="mysql://root@localhost/gateway?unix_socket=$sock"
if [ -S "$sock" ] && "$py" scripts/dbcheck.py "$url" --create 2>/dev/null; then
  echo "$url"; exit 0
fi

server=$(command -v mariadbd || command -v mysqld || ls /usr/sbin/mariadbd 2>/dev/null || true)
if [ -z "$server" ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "ensure-db: no DATABASE_URL answers and mariadb-server is not installed (run as root to install it)" >&2
    exit 1
  fi
  echo "ensure-db: installing mariadb-server" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 && apt-get install -y -qq mariadb-server >&2
  server=$(command -v mariadbd || echo /usr/sbin/mariadbd)
fi

mkdir -p "$data"
user_opt=()
[ "$(id -u)" = 0 ] && user_opt=(--user=root)
if [ ! -d "$data/db/mysql" ]; then
  echo "ensure-db: initialising $data/db" >&2
  installer=$(command -v mariadb-install-db || command -v mysql_install_db)
  "$installer" --no-defaults --datadir="$data/db" --auth-root-authentication-method=normal \
    --skip-test-db "${user_opt[@]}" >"$data/install.log" 2>&1 \
    || { cat "$data/install.log" >&2; exit 1; }
fi
echo "ensure-db: starting a private MariaDB on $sock" >&2
rm -f "$sock"
setsid "$server" --no-defaults --datadir="$data/db" --socket="$sock" --skip-networking \
  --pid-file="$data/mariadb.pid" --log-error="$data/mariadb.err" "${user_opt[@]}" \
  --innodb-buffer-pool-size=256M --max-connections=500 \
  --server-id=1 --log-bin="$data/db/binlog" --binlog-format=ROW --binlog-row-image=FULL --binlog-row-metadata=FULL \
  --binlog-expire-logs-seconds=3600 --max-binlog-size=64M </dev/null >/dev/null 2>&1 &
for _ in $(seq 1 60); do
  if [ -S "$sock" ] && "$py" scripts/dbcheck.py "$url" --create 2>/dev/null; then
    echo "$url"; exit 0
  fi
  sleep 0.5
done
echo "ensure-db: the private MariaDB did not come up; see $data/mariadb.err" >&2
tail -20 "$data/mariadb.err" >&2 || true
exit 1
