"""`make run` serves the database DATABASE_URL names, or stops saying why (issue 9, item 3).

ensure-db.sh --serve is what `make run` calls before it starts the gateway."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from app.core.config import DatabaseAddress
from tests.conftest import with_database

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_db(url: str, *args: str) -> subprocess.CompletedProcess:
    env = os.environ | {"DATABASE_URL": url, "PYTHON": sys.executable}
    return subprocess.run(["bash", "scripts/ensure-db.sh", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("url,says", [
    (f"mysql://root:s3cret-pw@127.0.0.1:{free_port()}/mydb", "connection refused"),
    ("mysql://root:s3cret-pw@no-such-host.invalid:3306/mydb", "unknown host"),
])
def test_a_database_url_that_does_not_answer_stops_make_run_with_the_reason(url, says):
    result = ensure_db(url, "--serve")
    assert result.returncode == 1 and result.stdout == ""
    address = DatabaseAddress.parse(url)
    assert says in result.stderr and f"{address.host}:{address.port}" in result.stderr
    assert "database 'mydb'" in result.stderr
    assert "s3cret-pw" not in result.stderr
    assert "private MariaDB on" not in result.stderr  # nothing else is started or served


def test_an_unknown_database_or_bad_password_stops_make_run(test_db):
    result = ensure_db(with_database(test_db, "no_such_database_here"), "--serve")
    assert result.returncode == 1 and "unknown database" in result.stderr
    address = DatabaseAddress.parse(test_db)
    bad = test_db.replace(f"//{address.user}", "//no_such_user_x:pw-x", 1)
    result = ensure_db(bad, "--serve")
    assert result.returncode == 1 and "access denied" in result.stderr and "pw-x" not in result.stderr


def test_a_database_url_that_answers_is_used_as_it_is(test_db):
    result = ensure_db(test_db, "--serve")
    assert result.returncode == 0 and result.stdout.strip() == test_db
