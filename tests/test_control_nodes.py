"""The broker's cluster parts that hub/control.py stands on, on every backend: the node registry and surveys
(``Broker.nodes``), and reading a channel's kept history (``PubSub.history``)."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from hub.broker import Broker, BrokerUnavailable, Nodes, open_broker
from hub.protocol import encode_event
from hub.redis_client import connect
from hub.testing import wait_until
from tests.broker_backends import BACKENDS, HISTORY, REDIS_BACKENDS, backend_url, started_broker, unique_channel
from tests.rigs.redis import RedisServer

Answer = Callable[[bytes], Awaitable[bytes]]


def echo(name: str) -> Answer:
    async def answer(request: bytes) -> bytes:
        return name.encode() + b":" + request

    return answer


@contextlib.asynccontextmanager
async def cluster_node(
    url: str, prefix: str, name: str, answer: Answer | None = None, *, ttl: float = 15.0
) -> AsyncIterator[Broker]:
    """A started broker whose ``nodes`` joined the cluster under ``prefix``, describing itself as ``name``."""
    broker = open_broker(url, prefix=prefix, node_ttl=ttl, sweep_interval=0.05)
    await broker.start(lambda channel, frame, offset: None)
    await broker.nodes.start(lambda: name.encode(), answer or echo(name))
    try:
        yield broker
    finally:
        await broker.nodes.close()
        await broker.close()


def prefix() -> str:
    return f"t{uuid.uuid4().hex[:8]}"


# ---- the registry and surveys -------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_node_lists_itself_and_answers_its_own_survey(request: pytest.FixtureRequest, backend: str) -> None:
    async with cluster_node(backend_url(request, backend), prefix(), "a") as node:
        nodes: Nodes = node.nodes
        [record] = await nodes.live()
        assert (record.node_id, record.info) == (node.node_id, b"a")
        assert abs(record.last_seen - time.time()) < 60
        survey = await nodes.survey(b"hello", timeout=2.0)
        assert survey.answers == {node.node_id: b"a:hello"}
        assert survey.missing == ()


@pytest.mark.parametrize("backend", REDIS_BACKENDS)
async def test_every_node_answers_a_survey(request: pytest.FixtureRequest, backend: str) -> None:
    url, shared = backend_url(request, backend), prefix()
    async with (
        cluster_node(url, shared, "a") as a,
        cluster_node(url, shared, "b") as b,
        cluster_node(url, shared, "c") as c,
    ):
        for node in (a, b, c):
            live = await node.nodes.live()
            assert sorted(record.info for record in live) == [b"a", b"b", b"c"]
            assert [record.node_id for record in live] == sorted(n.node_id for n in (a, b, c))
        survey = await b.nodes.survey(b"q", timeout=5.0)
        assert survey.answers == {a.node_id: b"a:q", b.node_id: b"b:q", c.node_id: b"c:q"}
        assert survey.missing == ()
        # concurrent surveys from every node get their own answers
        surveys = await asyncio.gather(*(node.nodes.survey(node.node_id.encode(), 5.0) for node in (a, b, c)))
        for node, found in zip((a, b, c), surveys, strict=True):
            assert sorted(found.answers.values()) == sorted(f"{n}:{node.node_id}".encode() for n in "abc")


@pytest.mark.parametrize("backend", REDIS_BACKENDS)
async def test_a_node_that_closed_leaves_at_once(request: pytest.FixtureRequest, backend: str) -> None:
    url, shared = backend_url(request, backend), prefix()
    async with cluster_node(url, shared, "a") as a:
        async with cluster_node(url, shared, "b"):
            assert len(await a.nodes.live()) == 2
        assert [record.info for record in await a.nodes.live()] == [b"a"]
        assert set((await a.nodes.survey(b"q", 5.0)).answers.values()) == {b"a:q"}


@pytest.mark.parametrize("backend", REDIS_BACKENDS)
async def test_a_dead_node_is_missing_without_holding_the_survey_and_expires(
    request: pytest.FixtureRequest, backend: str
) -> None:
    """A node that died left its record but no subscription: a survey ends once every subscribed node answered
    (PUBLISH's count), names the dead one as missing, and the record stops counting after the TTL."""
    url, shared = backend_url(request, backend), prefix()
    async with cluster_node(url, shared, "a", ttl=1.0) as a:
        client = connect(url)
        try:
            now_ms = int(time.time() * 1000)
            await client.hset(f"{shared}:{{nodes}}:info", "dead", b"ghost")
            await client.zadd(f"{shared}:{{nodes}}:seen", {"dead": now_ms})
            assert {record.node_id for record in await a.nodes.live()} == {a.node_id, "dead"}
            survey = await asyncio.wait_for(a.nodes.survey(b"q", timeout=30.0), 10.0)
            assert survey.answers == {a.node_id: b"a:q"}
            assert survey.missing == ("dead",)

            async def dead_is_gone() -> bool:
                return [record.node_id for record in await a.nodes.live()] == [a.node_id]

            await wait_until(dead_is_gone, timeout=5.0, what="the dead node's record expired")
        finally:
            await client.aclose()


@pytest.mark.parametrize("backend", REDIS_BACKENDS)
async def test_a_node_whose_answer_fails_is_missing(request: pytest.FixtureRequest, backend: str) -> None:
    async def broken(request: bytes) -> bytes:
        raise RuntimeError("a bug in the answer")

    url, shared = backend_url(request, backend), prefix()
    async with cluster_node(url, shared, "a") as a, cluster_node(url, shared, "b", broken) as b:
        survey = await a.nodes.survey(b"q", timeout=0.3)
        assert survey.answers == {a.node_id: b"a:q"}
        assert survey.missing == (b.node_id,)


async def test_a_node_started_during_an_outage_joins_once_redis_is_back_and_again_after_a_restart(
    redis_server: RedisServer,
) -> None:
    shared = prefix()
    redis_server.stop()
    async with cluster_node(redis_server.url, shared, "a", ttl=0.6) as a:
        with pytest.raises(BrokerUnavailable):
            await a.nodes.survey(b"q", timeout=0.5)
        redis_server.start()
        async with cluster_node(redis_server.url, shared, "b", ttl=0.6) as b:

            async def both_answer() -> bool:
                with contextlib.suppress(BrokerUnavailable):
                    survey = await b.nodes.survey(b"q", timeout=0.5)
                    return survey.answers == {a.node_id: b"a:q", b.node_id: b"b:q"} and not survey.missing
                return False

            await wait_until(both_answer, timeout=10.0, what="node a in the cluster once Redis is back")
            redis_server.restart()  # empty: the registry is gone, and the pub/sub connections with it
            await wait_until(both_answer, timeout=10.0, what="both nodes back in the registry after a restart")


# ---- history ----------------------------------------------------------------------------------------------


def offsets(frames: tuple[tuple[int, str], ...]) -> list[int]:
    return [offset for offset, _frame in frames]


@pytest.mark.parametrize("backend", BACKENDS)
async def test_history_reads_kept_events_from_an_offset(request: pytest.FixtureRequest, backend: str) -> None:
    channel = unique_channel()
    async with started_broker(request, backend) as broker:
        pubsub = broker.pubsub
        empty = await pubsub.history(channel, HISTORY, since=None, limit=5)
        assert (empty.position.offset, empty.frames, empty.truncated) == (0, (), False)
        for n in range(1, 8):
            assert await pubsub.publish(channel, "test.n", f'{{"n":{n}}}', HISTORY) == n
        latest = await pubsub.history(channel, HISTORY, since=None, limit=3)
        assert offsets(latest.frames) == [5, 6, 7]
        assert latest.position.offset == 7
        assert not latest.truncated
        assert latest.frames[0][1] == encode_event(channel, "test.n", '{"n":5}', 5)
        page = await pubsub.history(channel, HISTORY, since=2, limit=3)
        assert offsets(page.frames) == [3, 4, 5]
        assert not page.truncated
        assert offsets((await pubsub.history(channel, HISTORY, since=5, limit=100)).frames) == [6, 7]
        at_end = await pubsub.history(channel, HISTORY, since=7, limit=10)
        assert (at_end.frames, at_end.truncated) == ((), False)
        beyond = await pubsub.history(channel, HISTORY, since=9, limit=10)  # an offset of another epoch
        assert (beyond.frames, beyond.truncated) == ((), True)
        assert beyond.position == latest.position


@pytest.mark.parametrize("backend", BACKENDS)
async def test_history_says_when_events_fell_out_of_the_window(request: pytest.FixtureRequest, backend: str) -> None:
    channel = unique_channel()
    async with started_broker(request, backend) as broker:
        for n in range(1, HISTORY.size + 6):  # 15 events, 10 kept (Redis trims with ~: at least 10)
            await broker.pubsub.publish(channel, "test.n", f'{{"n":{n}}}', HISTORY)
        page = await broker.pubsub.history(channel, HISTORY, since=0, limit=100)
        assert page.truncated
        assert offsets(page.frames)[-1] == HISTORY.size + 5
        assert offsets(page.frames) == list(range(offsets(page.frames)[0], HISTORY.size + 6))
        with pytest.raises(ValueError, match="limit"):
            await broker.pubsub.history(channel, HISTORY, since=None, limit=0)
