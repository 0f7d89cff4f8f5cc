"""Rate limits: token buckets per connection and per message type, and the strike count that ends abuse."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RateLimit:
    """A token bucket: ``rate`` messages per second on average, ``burst`` at once."""

    rate: float
    burst: int

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.burst < 1:
            raise ValueError("a rate limit needs rate > 0 and burst >= 1")


class TokenBucket:
    __slots__ = ("_capacity", "_rate", "_tokens", "_updated")

    def __init__(self, limit: RateLimit, now: float) -> None:
        self._rate = limit.rate
        self._capacity = float(limit.burst)
        self._tokens = float(limit.burst)
        self._updated = now

    def take(self, now: float) -> bool:
        """Spend one token if there is one; refill first by the time elapsed."""
        tokens = min(self._capacity, self._tokens + (now - self._updated) * self._rate)
        self._updated = now
        if tokens < 1.0:
            self._tokens = tokens
            return False
        self._tokens = tokens - 1.0
        return True


class ConnectionLimiter:
    """Everything one connection may spend: frames in general, each limited message type, and strikes.

    Each refused message is a strike; strikes refill at ``strikes / window`` per second, so a client that
    backs off after ``rate_limited`` errors is never closed, while one that keeps flooding runs out.
    """

    __slots__ = ("_frames", "_strikes", "_types")

    def __init__(self, frames: RateLimit, strikes: int, window: float, now: float) -> None:
        self._frames = TokenBucket(frames, now)
        self._types: dict[str, TokenBucket] = {}
        self._strikes = TokenBucket(RateLimit(strikes / window, strikes), now)

    def allow_frame(self, now: float) -> bool:
        return self._frames.take(now)

    def allow_type(self, message_type: str, limit: RateLimit, now: float) -> bool:
        bucket = self._types.get(message_type)
        if bucket is None:
            bucket = self._types[message_type] = TokenBucket(limit, now)
        return bucket.take(now)

    def strike(self, now: float) -> bool:
        """Record a refused message; True when the client has used up its strikes and must be closed."""
        return not self._strikes.take(now)
