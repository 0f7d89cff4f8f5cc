"""What the broker conformance suites share: the backends they run on, a started broker, a recording ``deliver``.

Each suite (tests/test_pubsub_conformance.py, test_presence_conformance.py, test_coordination_conformance.py)
runs every test on every entry of BACKENDS. Add a backend by adding its name here and its URL to
:func:`backend_url`. Tests use unique channel names, so a backend shared between tests (a Redis server) needs no
flushing.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

import pytest

from hub.broker import Broker, Deliver, StreamReset, open_broker
from hub.types import HistoryPolicy

BACKENDS = ("memory", "redis", "redis-cluster")
REDIS_BACKENDS = ("redis", "redis-cluster")

HISTORY = HistoryPolicy(size=10, ttl=60.0)
DELIVERY_TIMEOUT = 2.0
QUIET_PERIOD = 0.02  # how long to watch for a duplicate delivery after the expected ones arrived


def backend_url(request: pytest.FixtureRequest, backend: str) -> str:
    """The broker URL of ``backend`` (a Redis one from the session's ``redis_url`` / ``redis_cluster_url``)."""
    if backend == "memory":
        return "memory://"
    return str(request.getfixturevalue("redis_url" if backend == "redis" else "redis_cluster_url"))


def open_test_broker(request: pytest.FixtureRequest, backend: str, *, prefix: str | None = None) -> Broker:
    """An unstarted broker on ``backend``; on Redis under a prefix of its own unless ``prefix`` is given."""
    return open_broker(backend_url(request, backend), prefix=prefix or f"t{uuid.uuid4().hex[:8]}", sweep_interval=0.05)


@contextlib.asynccontextmanager
async def started_broker(
    request: pytest.FixtureRequest,
    backend: str,
    deliver: Deliver | None = None,
    on_stream_reset: StreamReset | None = None,
) -> AsyncIterator[Broker]:
    """A broker on ``backend``, started with ``deliver`` (by default one that records) and closed afterwards."""
    broker = open_test_broker(request, backend)
    await broker.start(deliver or Deliveries(), None, on_stream_reset)
    try:
        yield broker
    finally:
        await broker.close()


def unique_channel() -> str:
    return f"test:{uuid.uuid4().hex}"


class Deliveries:
    """The ``deliver`` callback given to the broker: records (channel, frame, offset) in arrival order."""

    def __init__(self) -> None:
        self.received: list[tuple[str, str, int | None]] = []
        self._arrived = asyncio.Event()

    def __call__(self, channel: str, frame: str, offset: int | None) -> None:
        self.received.append((channel, frame, offset))
        self._arrived.set()

    def on(self, channel: str) -> list[tuple[str, str, int | None]]:
        return [entry for entry in self.received if entry[0] == channel]

    async def exactly(self, channel: str, count: int) -> list[tuple[str, str, int | None]]:
        """Wait for ``count`` deliveries on ``channel`` (a remote broker delivers asynchronously), then check
        that no more arrive."""
        async with asyncio.timeout(DELIVERY_TIMEOUT):
            while len(self.on(channel)) < count:
                self._arrived.clear()
                await self._arrived.wait()
        await asyncio.sleep(QUIET_PERIOD)
        found = self.on(channel)
        assert len(found) == count, found
        return found
