"""limits.py: token buckets and the strike count, driven by explicit clock values (no sleeping)."""

from __future__ import annotations

import pytest

from hub.limits import ConnectionLimiter, RateLimit, TokenBucket


def take_all(bucket: TokenBucket, now: float, attempts: int) -> int:
    return sum(bucket.take(now) for _ in range(attempts))


@pytest.mark.parametrize(("rate", "burst"), [(0, 1), (-1, 1), (1, 0), (1, -3)])
def test_rate_limit_rejects_nonsense(rate: float, burst: int) -> None:
    with pytest.raises(ValueError, match="rate limit"):
        RateLimit(rate=rate, burst=burst)


def test_bucket_starts_full_and_allows_the_burst() -> None:
    bucket = TokenBucket(RateLimit(rate=1, burst=5), now=100.0)
    assert take_all(bucket, 100.0, 10) == 5


def test_bucket_refills_at_the_rate() -> None:
    bucket = TokenBucket(RateLimit(rate=2, burst=3), now=0.0)
    assert take_all(bucket, 0.0, 3) == 3
    assert not bucket.take(0.0)
    assert not bucket.take(0.25)  # half a token
    assert bucket.take(0.5)  # one token
    assert not bucket.take(0.5)
    assert take_all(bucket, 1.5, 5) == 2  # one more second: two tokens


def test_bucket_never_holds_more_than_the_burst() -> None:
    bucket = TokenBucket(RateLimit(rate=10, burst=4), now=0.0)
    assert take_all(bucket, 1_000_000.0, 100) == 4


def test_refused_takes_keep_the_partial_refill() -> None:
    bucket = TokenBucket(RateLimit(rate=1, burst=1), now=0.0)
    assert bucket.take(0.0)
    assert not bucket.take(0.5)  # half a token, kept
    assert bucket.take(1.0)  # 0.5 + 0.5


def test_fractional_rate() -> None:
    bucket = TokenBucket(RateLimit(rate=0.1, burst=1), now=0.0)
    assert bucket.take(0.0)
    assert not bucket.take(9.9)
    assert bucket.take(20.0)


def test_steady_rate_at_the_limit_is_always_allowed() -> None:
    bucket = TokenBucket(RateLimit(rate=8, burst=1), now=0.0)
    assert bucket.take(0.0)
    assert all(bucket.take(i * 0.125) for i in range(1, 200))


# ---- ConnectionLimiter ------------------------------------------------------------------------------------


def limiter(now: float = 0.0) -> ConnectionLimiter:
    return ConnectionLimiter(RateLimit(rate=10, burst=20), strikes=5, window=10.0, now=now)


def test_frames_bucket() -> None:
    connection = limiter()
    assert sum(connection.allow_frame(0.0) for _ in range(30)) == 20
    assert sum(connection.allow_frame(1.0) for _ in range(30)) == 10


def test_each_message_type_has_its_own_bucket() -> None:
    connection = limiter()
    slow = RateLimit(rate=1, burst=2)
    assert sum(connection.allow_type("chat.send", slow, 0.0) for _ in range(5)) == 2
    assert sum(connection.allow_type("chat.typing", slow, 0.0) for _ in range(5)) == 2  # not shared
    assert connection.allow_frame(0.0)  # the frame bucket is separate too
    assert not connection.allow_type("chat.send", slow, 0.5)
    assert connection.allow_type("chat.send", slow, 1.0)


def test_type_buckets_are_per_connection() -> None:
    slow = RateLimit(rate=1, burst=1)
    first, second = limiter(), limiter()
    assert first.allow_type("chat.send", slow, 0.0)
    assert not first.allow_type("chat.send", slow, 0.0)
    assert second.allow_type("chat.send", slow, 0.0)


def test_strikes_close_a_client_that_keeps_flooding() -> None:
    connection = limiter()  # 5 strikes per 10 s
    results = [connection.strike(0.01 * i) for i in range(6)]
    assert results == [False] * 5 + [True]


def test_strikes_keep_closing_a_flood() -> None:
    connection = limiter()
    now = 0.0
    closed_at = None
    for step in range(1000):  # 20 refusals a second, far above the 0.5 strikes/s refill
        now = step * 0.05
        if connection.strike(now):
            closed_at = now
            break
    assert closed_at is not None
    assert closed_at < 1.0


def test_strikes_never_close_a_client_that_backs_off() -> None:
    connection = limiter()  # strikes refill at 5 / 10 s = one every 2 s
    now = 0.0
    for _ in range(3):  # a burst of 4 refusals, then a pause long enough to earn them back
        for _ in range(4):
            assert not connection.strike(now)
            now += 0.01
        now += 8.0
    for _ in range(100):  # then one refusal every 2 s, exactly the refill rate
        assert not connection.strike(now)
        now += 2.0


def test_strikes_are_counted_separately_from_frames() -> None:
    connection = limiter()
    for _ in range(5):
        assert not connection.strike(0.0)
    assert connection.allow_frame(0.0)
    assert connection.strike(0.0)
