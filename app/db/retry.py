"""The one timeout/retry wrapper every database call runs in (tenacity); what each error means is
errors.py's table.

Schedule (configurable): attempt timeouts 200, 400, 800, 1600 ms; waits of 400, 800, 1600 ms before
attempts 2-4. Only transient failures are retried. When the schedule ends the caller gets
504 gateway_timeout (the last attempt timed out) or 503 service_unavailable (the database could not
be reached), and `retry_count` in the envelope says how many retries were made.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from app.core import context, tracing
from app.core.errors import DatabaseError, GatewayError, GatewayTimeout, PoolExhausted, ServiceUnavailable
from app.db.errors import SERVER_TIMEOUT, commit_outcome, is_retryable, kind_of

log = logging.getLogger("gateway.resiliency")
T = TypeVar("T")


@dataclass
class Attempt:
    """One attempt: what it tells the wrapper about where it stood when it failed."""

    number: int
    committing: bool = False  # COMMIT sent, answer not yet received
    timeout: asyncio.Timeout | None = None
    commit_timeout: float = 5.0
    seconds: float = 0.0  # this attempt's timeout (the server is given it too, for reads)

    def begin_commit(self) -> None:
        """From here a failure is not retried, and the deadline becomes the COMMIT's own: cutting a
        COMMIT short cannot make it safe to retry, it only turns a slow success into an unknown."""
        self.committing = True
        if self.timeout is not None:
            self.timeout.reschedule(asyncio.get_running_loop().time() + self.commit_timeout)

    def end_commit(self) -> None:
        self.committing = False


Operation = Callable[[Attempt], Awaitable[T]]


class Resilience:
    def __init__(
        self, attempt_timeouts_ms: tuple[int, ...], retry_waits_ms: tuple[int, ...], commit_timeout_ms: int = 5000
    ):
        self.timeouts = tuple(ms / 1000 for ms in attempt_timeouts_ms)
        self.commit_timeout = commit_timeout_ms / 1000
        self.waits = tuple(ms / 1000 for ms in retry_waits_ms)
        self.retry_after_s = max(1, round(sum(self.timeouts) + sum(self.waits)))
        # Hooks for metrics: a retry (with what failed), and a call that gave up (with its code).
        self.on_retry: Callable[[BaseException], None] | None = None
        self.on_give_up: Callable[[str], None] | None = None

    @property
    def budget_s(self) -> float:
        """The longest a call can take: every attempt timing out, every wait waited (plus, for a
        write, a COMMIT's own deadline on the last attempt)."""
        return sum(self.timeouts) + sum(self.waits[: len(self.timeouts) - 1])

    def _wait(self, state: RetryCallState) -> float:
        # tenacity asks for the wait before it checks the stop condition, so past the end is 0.
        index = state.attempt_number - 1
        return self.waits[index] if index < len(self.waits) else 0.0

    async def run(self, operation: Operation[T]) -> T:
        """Run `operation` under the schedule; raise a GatewayError when it gives up.

        The first attempt runs directly (tenacity's async loop costs tens of microseconds, a real
        share of a fast request); only a retryable failure hands over to tenacity.
        """
        attempt = Attempt(1, commit_timeout=self.commit_timeout)
        try:
            return await self._attempt(operation, attempt)
        except Exception as exc:
            if len(self.timeouts) == 1 or not self._retryable(exc, attempt):
                raise self._outcome(exc, attempt) from None
            first_failure = exc
        return await self._retry(operation, first_failure)

    async def _attempt(self, operation: Operation[T], attempt: Attempt) -> T:
        attempt.seconds = self.timeouts[attempt.number - 1]
        if tracing.tracer is not None:  # off: this check is all tracing costs
            attributes = {"db.attempt.number": attempt.number, "db.retry": attempt.number - 1,
                          "db.attempt.timeout_ms": int(attempt.seconds * 1000)}
            with tracing.tracer.start_as_current_span("db.attempt", attributes=attributes):
                return await self._timed(operation, attempt)
        return await self._timed(operation, attempt)

    @staticmethod
    async def _timed(operation: Operation[T], attempt: Attempt) -> T:
        async with asyncio.timeout(attempt.seconds) as timeout:
            attempt.timeout = timeout
            return await operation(attempt)

    @staticmethod
    def _retryable(exc: BaseException, attempt: Attempt) -> bool:
        # A COMMIT that got no answer may have applied: never run it again blindly.
        return is_retryable(exc) and not attempt.committing

    async def _retry(self, operation: Operation[T], first_failure: Exception) -> T:
        """Attempts 2..n under tenacity, which replays attempt 1's failure to start the schedule."""
        request = context.current()
        attempt = Attempt(1)
        retrying = AsyncRetrying(
            stop=stop_after_attempt(len(self.timeouts)),
            wait=self._wait,
            retry=retry_if_exception(lambda exc: self._retryable(exc, attempt)),
            before_sleep=self._before_sleep,
            reraise=True,
        )
        try:
            async for trial in retrying:
                with trial:
                    number = trial.retry_state.attempt_number
                    if number == 1:
                        raise first_failure
                    request.retry_count += 1
                    attempt = Attempt(number, commit_timeout=self.commit_timeout)
                    result = await self._attempt(operation, attempt)
        except Exception as exc:
            raise self._outcome(exc, attempt) from None
        return result

    def _outcome(self, exc: Exception, attempt: Attempt) -> Exception:
        """What the caller gets for the failure that ended the schedule."""
        error = self._classify_outcome(exc, attempt)
        if self.on_give_up is not None and isinstance(error, GatewayError) and error.status >= 500:
            self.on_give_up(error.code)
        return error

    def _classify_outcome(self, exc: Exception, attempt: Attempt) -> Exception:
        attempts = {"attempts": attempt.number}
        if isinstance(exc, TimeoutError):
            if attempt.committing:
                unknown = commit_outcome(exc)
                assert unknown is not None
                unknown.details = attempts
                return unknown
            return GatewayTimeout("the database did not answer in time", attempts)
        if isinstance(exc, PoolExhausted):
            return self._unavailable("no database connection free", attempt)
        if isinstance(exc, DatabaseError):
            kind = kind_of(exc)
            if kind is SERVER_TIMEOUT:
                return GatewayTimeout("the database did not answer in time (it stopped the statement)", attempts)
            if kind.retried:  # the schedule ran out
                return self._unavailable("database unavailable", attempt, exc.code)
            return kind.final(exc)
        return exc  # a GatewayError raised inside the operation, or a bug: unchanged

    def _unavailable(self, message: str, attempt: Attempt, code: int | None = None) -> ServiceUnavailable:
        details = {"attempts": attempt.number} | ({"db_code": code} if code else {})
        return ServiceUnavailable(message, details, {"Retry-After": str(self.retry_after_s)})

    def _before_sleep(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.info("retrying after attempt %d: %r", state.attempt_number, exc)
        if self.on_retry is not None and exc is not None:
            self.on_retry(exc)
