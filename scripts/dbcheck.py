"""Exit 0 if DATABASE_URL (argv[1]) accepts a connection within a few seconds, else 1.

Optionally create the URL's database (--create). Used by scripts/ensure-db.sh only.
"""

import sys

import pymysql

sys.path.insert(0, ".")
from app.core.config import DatabaseAddress  # noqa: E402


def main() -> int:
    address = DatabaseAddress.parse(sys.argv[1])
    try:
        conn = pymysql.connect(**address.connect_kwargs(), connect_timeout=3)
    except pymysql.err.MySQLError as exc:
        print(f"dbcheck: cannot connect: {exc}", file=sys.stderr)
        return 1
    with conn.cursor() as cursor:
        if "--create" in sys.argv:
            name = address.database.replace("`", "``")
            cursor.execute(f"CREATE DATABASE IF NOT EXISTS `{name}` CHARACTER SET utf8mb4")
        cursor.execute("SELECT 1")
    conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
