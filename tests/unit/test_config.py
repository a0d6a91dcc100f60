import pytest

from app.core.config import DatabaseAddress, Settings


def test_lists_from_comma_separated_env(monkeypatch):
    monkeypatch.setenv("GATEWAY_ATTEMPT_TIMEOUTS_MS", "100, 200")
    monkeypatch.setenv("GATEWAY_RETRY_WAITS_MS", "50")
    monkeypatch.setenv("GATEWAY_TABLES_DENY", "secret_*,audit")
    monkeypatch.setenv("DATABASE_URL", "mysql://u:p%40ss@db.example:3307/shop")
    settings = Settings()
    assert settings.attempt_timeouts_ms == (100, 200) and settings.retry_waits_ms == (50,)
    assert settings.tables_deny == ("secret_*", "audit")
    db = settings.db
    assert (db.host, db.port, db.user, db.password, db.database) == ("db.example", 3307, "u", "p@ss", "shop")


def test_waits_must_cover_the_retries():
    with pytest.raises(ValueError):
        Settings(attempt_timeouts_ms=(1, 2, 3), retry_waits_ms=(1,))


def test_unix_socket_and_bad_urls():
    assert DatabaseAddress.parse("mysql://root@localhost/gw?unix_socket=/tmp/x.sock").unix_socket == "/tmp/x.sock"
    for bad in ("postgres://x/y", "mysql://root@localhost"):
        with pytest.raises(ValueError):
            DatabaseAddress.parse(bad)


def test_aliased_settings_take_their_field_names_too(monkeypatch):
    monkeypatch.setenv("DATABASE_REPLICA_URLS", "mysql://r@a/d, mysql://r@b/d")
    assert Settings().replica_urls == ("mysql://r@a/d", "mysql://r@b/d")
    assert Settings(replica_urls=("mysql://r@c/d",), host="0.0.0.0").replica_urls == ("mysql://r@c/d",)
