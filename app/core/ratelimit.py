"""Per-client rate limits: a token bucket per (client, action). Pure: the clock is passed in.

GATEWAY_RATE_LIMITS, e.g. `read=200/s,write=50/s,import=2/min,export=10/min`: each action's bucket
holds that many tokens and refills at that rate. Limits are per instance: behind a load balancer
spreading over N instances a client gets up to N times the limit (see the README).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from app.core.errors import RateLimited

PERIODS = {"s": 1.0, "sec": 1.0, "min": 60.0, "h": 3600.0}
MAX_CLIENTS = 100_000  # buckets kept; the idlest go first beyond this


@dataclass(frozen=True)
class Rate:
    tokens: float
    period_s: float

    @property
    def per_second(self) -> float:
        return self.tokens / self.period_s


def parse_rates(text: str) -> dict[str, Rate]:
    rates = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        action, _, rate = part.partition("=")
        count, _, period = rate.partition("/")
        if not count or period not in PERIODS:
            raise ValueError(f"rate limit '{part}': use action=count/s|min|h")
        rates[action.strip()] = Rate(float(count), PERIODS[period])
    return rates


class RateLimiter:
    def __init__(self, rates: dict[str, Rate], clock: Callable[[], float] = time.monotonic):
        self.rates, self.clock = rates, clock
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}  # -> (tokens, at)

    def take(self, client: str, action: str) -> None:
        rate = self.rates.get(action)
        if rate is None:
            return
        now = self.clock()
        key = (client, action)
        tokens, at = self._buckets.get(key, (rate.tokens, now))
        tokens = min(rate.tokens, tokens + (now - at) * rate.per_second)
        if tokens < 1:
            wait = math.ceil((1 - tokens) / rate.per_second)
            raise RateLimited(
                f"too many {action} requests; retry in {wait} s", {"action": action}, {"Retry-After": str(wait)}
            )
        self._buckets[key] = (tokens - 1, now)
        if len(self._buckets) > MAX_CLIENTS:
            for stale in sorted(self._buckets, key=lambda k: self._buckets[k][1])[: MAX_CLIENTS // 10]:
                del self._buckets[stale]
