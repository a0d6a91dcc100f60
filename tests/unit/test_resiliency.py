"""The retry wrapper on its own: fake operations, real tenacity, real asyncio timeouts."""

import asyncio

import pytest

from app.core import context
from app.core.errors import (
    CommitOutcomeUnknown,
    Conflict,
    DatabaseError,
    GatewayTimeout,
    InternalError,
    InvalidValue,
    ServiceUnavailable,
)
from app.db.errors import classify, is_retryable, statement_outcome
from app.db.retry import Resilience

FAST = Resilience((20, 20, 20, 20), (1, 1, 1))


@pytest.fixture(autouse=True)
def request_state():
    return context.begin()


def counting(outcomes):
    calls = []

    async def operation(attempt):
        calls.append(attempt.number)
        outcome = outcomes[min(len(calls), len(outcomes)) - 1]
        if outcome == "sleep":
            await asyncio.sleep(1)
        if outcome == "commit-sleep":
            attempt.committing = True
            await asyncio.sleep(1)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    return operation, calls


async def test_first_attempt_success_has_no_retries(request_state):
    op, calls = counting(["ok"])
    assert await FAST.run(op) == "ok"
    assert calls == [1] and request_state.retry_count == 0


async def test_transient_errors_are_retried_until_success(request_state):
    op, calls = counting([DatabaseError(2013, "lost"), DatabaseError(1213, "deadlock"), "ok"])
    assert await FAST.run(op) == "ok"
    assert calls == [1, 2, 3] and request_state.retry_count == 2


async def test_connectivity_through_the_schedule_is_503_with_retry_after(request_state):
    op, calls = counting([DatabaseError(2003, "refused")])
    with pytest.raises(ServiceUnavailable) as caught:
        await FAST.run(op)
    assert calls == [1, 2, 3, 4] and request_state.retry_count == 3
    assert "Retry-After" in caught.value.headers


async def test_timeouts_through_the_schedule_are_504(request_state):
    op, calls = counting(["sleep"])
    with pytest.raises(GatewayTimeout):
        await FAST.run(op)
    assert calls == [1, 2, 3, 4] and request_state.retry_count == 3


async def test_timeout_during_commit_is_never_retried(request_state):
    op, calls = counting(["commit-sleep"])
    with pytest.raises(CommitOutcomeUnknown):
        await FAST.run(op)
    assert calls == [1] and request_state.retry_count == 0


async def test_data_errors_are_not_retried():
    op, calls = counting([DatabaseError(1062, "Duplicate entry")])
    with pytest.raises(Conflict):
        await FAST.run(op)
    assert calls == [1]


async def test_attempt_timeouts_follow_the_schedule():
    wrapper = Resilience((10, 30, 60), (1, 1))
    seen = []

    async def operation(attempt):
        loop = asyncio.get_running_loop()
        start = loop.time()
        try:
            await asyncio.sleep(1)
        finally:
            seen.append(loop.time() - start)

    with pytest.raises(GatewayTimeout):
        await wrapper.run(operation)
    assert len(seen) == 3 and seen[0] < seen[1] < seen[2]


def test_classification_table():
    assert all(is_retryable(DatabaseError(c, "")) for c in (2002, 2003, 2006, 2013, 1040, 1205, 1213))
    assert not any(is_retryable(DatabaseError(c, "")) for c in (1062, 1451, 1452, 1054, 1146, 1048, 1264, 1292, 1364, 1366, 1406))
    assert is_retryable(TimeoutError())
    assert isinstance(classify(DatabaseError(1452, "fk")), Conflict)
    assert isinstance(classify(DatabaseError(1406, "too long")), InvalidValue)
    assert isinstance(classify(DatabaseError(1064, "syntax")), InternalError)
    assert classify(DatabaseError(1064, "syntax near 'x'")).message == "internal error"


def test_what_a_single_statement_writes_answer_means():
    """A write that commits by itself: no answer, or Galera's 1180, leaves it unknown; any other
    answer (a stopped or killed statement, a node not ready, a duplicate) means nothing applied."""
    for code in (2006, 2013, 1180):
        assert isinstance(statement_outcome(DatabaseError(code, "")), CommitOutcomeUnknown)
    # The server's own codes run below 2000 and from 3000 on (MySQL 8's 3xxx, MariaDB's 4xxx: a
    # CHECK constraint is 4025): answers, not a missing answer.
    for code in (1969, 1317, 1047, 1213, 1205, 1062, 1406, 3819, 4025, 4078):
        assert statement_outcome(DatabaseError(code, "")) is None
    assert all(is_retryable(DatabaseError(code, "")) for code in (1969, 1317, 1047))
    assert isinstance(classify(DatabaseError(1317, "interrupted")), GatewayTimeout)


def test_budget_of_the_default_schedule():
    assert Resilience((200, 400, 800, 1600), (400, 800, 1600)).budget_s == pytest.approx(5.8)


async def test_a_commit_gets_its_own_deadline():
    wrapper = Resilience((20, 20), (1,), commit_timeout_ms=1000)

    async def slow_commit(attempt):
        attempt.begin_commit()
        await asyncio.sleep(0.1)  # longer than the attempt's 20 ms, within the COMMIT's 1 s
        attempt.end_commit()
        return "committed"

    assert await wrapper.run(slow_commit) == "committed"

    strict = Resilience((20, 20), (1,), commit_timeout_ms=30)
    calls = []

    async def stuck_commit(attempt):
        calls.append(attempt.number)
        attempt.begin_commit()
        await asyncio.sleep(1)

    with pytest.raises(CommitOutcomeUnknown):
        await strict.run(stuck_commit)
    assert calls == [1]


async def test_the_drivers_connect_keeps_a_cancellation_that_meets_its_result():
    """asyncmy bounds its connect by wait_for; on Python 3.11 a wait_for whose awaitable finishes
    in the loop iteration that cancels it returned the result, and the attempt ran on past its
    timeout. The driver's wait_for lets the cancellation through."""
    from app.db.driver import Driver, KeepingCancellation

    loop = asyncio.get_running_loop()
    connected = loop.create_future()
    connect = asyncio.create_task(KeepingCancellation().wait_for(connected, 60))
    await asyncio.sleep(0)  # the connect is waiting
    connected.set_result("a connection")
    connect.cancel()  # the attempt's timeout, in the same iteration
    with pytest.raises(asyncio.CancelledError):
        await connect
    assert await KeepingCancellation().wait_for(asyncio.sleep(0, "in time"), 60) == "in time"
    with pytest.raises(TimeoutError):
        await KeepingCancellation().wait_for(asyncio.sleep(1), 0.01)

    Driver("asyncmy")
    import asyncmy.connection

    assert isinstance(asyncmy.connection.asyncio, KeepingCancellation)


@pytest.mark.parametrize("message, column, said", [
    ("Out of range value for column 'f' at row 1", "f", "Out of range value for column 'f'"),
    ("Incorrect datetime value: '2040-01-01 00:00:00' for column `db`.`t`.`ts` at row 3", "ts",
     "Incorrect datetime value: '2040-01-01 00:00:00' for column 'ts'"),
    ("Data too long for column 'it''s' at row 2", "it's", "Data too long for column 'it's'"),
    ("Incorrect integer value: 'x' for column `d`.`t`.`a``b` at row 1", "a`b", "Incorrect integer value: 'x' for column 'a`b'"),
    ("Check constraint 'c' failed", None, "Check constraint 'c' failed"),
])
def test_a_value_the_server_refuses_names_its_column_only(message, column, said):
    refused = classify(DatabaseError(1264, message))
    assert refused.message == said and refused.details.get("column") == column


@pytest.mark.parametrize("code, message, name", [
    (4025, "CONSTRAINT `CONSTRAINT_1` failed for `shop`.`ck`", "CONSTRAINT_1"),
    (4025, "CONSTRAINT `age``s` failed for `d`.`t`", "age`s"),
    (3819, "Check constraint 'positive' is violated.", "positive"),
])
def test_a_check_constraints_refusal_names_the_constraint_not_the_schema(code, message, name):
    refused = classify(DatabaseError(code, message))
    assert refused.message == f"a row breaks the table's CHECK constraint '{name}'"
    assert refused.details == {"db_code": code, "constraint": name}
