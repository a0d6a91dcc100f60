"""A group of what waits in a queue: up to a size, or as long as a group may wait (pure asyncio)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


async def collect(
    inbox: asyncio.Queue[T], first: T, limit: int, wait_s: float, size: Callable[[T], int] = lambda _: 1
) -> list[T]:
    """`first` and what else arrives within `wait_s` of it, until the items' `size`s reach `limit`.
    What is already queued is taken without waiting: under load a group fills at once."""
    items = [first]
    total = size(first)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    while total < limit:
        if inbox.empty():
            left = deadline - loop.time()
            if left <= 0:
                break
            try:
                item = await asyncio.wait_for(inbox.get(), left)
            except TimeoutError:
                break
        else:
            item = inbox.get_nowait()
        items.append(item)
        total += size(item)
    return items
