import pytest

from app.core.auth import EVERYONE, Principal, parse_scopes
from app.core.errors import Forbidden, GatewayError
from app.core.ratelimit import RateLimiter, parse_rates


def test_scopes_are_action_and_table_glob():
    who = Principal("k", parse_scopes("read:* write:order_* bogus export: nope:users"))
    assert who.may("read", "anything") and who.may("write", "order_items")
    assert not who.may("write", "orders") and not who.may("export", "users")
    with pytest.raises(Forbidden):
        who.require("import", "users")
    assert parse_scopes(["import:users"]) == frozenset({("import", "users")})
    assert all(EVERYONE.may(action, "t") for action in ("read", "write", "import", "export"))


def test_token_bucket_refills_at_its_rate():
    now = [0.0]
    limiter = RateLimiter(parse_rates("write=2/s, import=1/min"), clock=lambda: now[0])
    limiter.take("a", "write")
    limiter.take("a", "write")
    with pytest.raises(GatewayError) as caught:
        limiter.take("a", "write")
    assert caught.value.status == 429 and caught.value.headers["Retry-After"] == "1"
    limiter.take("b", "write")  # another client has its own bucket
    now[0] = 0.5
    limiter.take("a", "write")  # half a second refilled one token
    limiter.take("a", "read")  # no limit for read
    limiter.take("a", "import")
    with pytest.raises(GatewayError) as caught:
        limiter.take("a", "import")
    assert caught.value.headers["Retry-After"] == "60"


def test_bad_rate_text():
    with pytest.raises(ValueError):
        parse_rates("read=10/fortnight")
