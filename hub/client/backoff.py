"""Reconnect delays: exponential backoff with full jitter, the same rule as hub.js."""

from __future__ import annotations

import random as random_module
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delays in seconds. Attempt ``n`` (1, 2, …) after a loss waits a random delay in
    ``[0, min(max_delay, min_delay * 2^(n-1)))``: full jitter, so the clients that lost the same node do not come
    back in lockstep. A refused ``sub`` is sent again after a delay in ``[cap/2, cap)`` (``retry_delay``)."""

    min_delay: float = 0.25
    max_delay: float = 10.0
    random: Callable[[], float] = field(default=random_module.random, compare=False)

    def __post_init__(self) -> None:
        if not (self.min_delay > 0 and self.max_delay >= self.min_delay):
            raise ValueError(f"backoff needs 0 < min_delay <= max_delay, got {self.min_delay}, {self.max_delay}")

    def cap(self, attempt: int) -> float:
        """The upper bound of attempt ``attempt``'s delay (attempts count from 1)."""
        return min(self.max_delay, self.min_delay * 2.0 ** min(max(attempt - 1, 0), 64))

    def delay(self, attempt: int) -> float:
        return self.random() * self.cap(attempt)

    def retry_delay(self, failures: int) -> float:
        """The delay before a refused ``sub`` is sent again, after ``failures`` refusals in a row (from 1)."""
        cap = self.cap(failures)
        return cap / 2 + self.random() * cap / 2
