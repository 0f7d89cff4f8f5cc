"""hub.client's parts without a hub: the backoff rule, URLs, the dispatcher's order and bound, the offline queue."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from hub.client import Backoff, Client, ClientError
from hub.client.dispatcher import Dispatcher
from hub.client.requests import Outbox, Queued, Reply
from hub.client.socket import socket_url


def test_backoff_is_exponential_with_full_jitter_and_capped() -> None:
    assert [Backoff(0.25, 10.0, random=lambda: 1.0).delay(n) for n in range(1, 9)] == [
        0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0,
    ]  # fmt: skip
    assert Backoff(0.25, 10.0, random=lambda: 0.0).delay(5) == 0.0  # full jitter: anywhere from 0
    draws = itertools.cycle([0.1, 0.9])
    backoff = Backoff(0.1, 1.0, random=lambda: next(draws))
    assert backoff.delay(3) == pytest.approx(0.04)
    assert backoff.delay(3) == pytest.approx(0.36)
    assert backoff.cap(1000) == 1.0  # no overflow for a client that has been away for a long time


def test_a_refused_sub_is_retried_after_half_to_all_of_the_cap() -> None:
    assert Backoff(0.2, 5.0, random=lambda: 0.0).retry_delay(1) == pytest.approx(0.1)
    assert Backoff(0.2, 5.0, random=lambda: 1.0).retry_delay(3) == pytest.approx(0.8)


@pytest.mark.parametrize(("low", "high"), [(0, 1), (-1, 1), (2, 1)])
def test_backoff_refuses_impossible_bounds(low: float, high: float) -> None:
    with pytest.raises(ValueError, match="min_delay"):
        Backoff(low, high)


@pytest.mark.parametrize(
    ("given", "url"),
    [
        ("ws://127.0.0.1:8000/ws", "ws://127.0.0.1:8000/ws"),
        ("http://hub.example", "ws://hub.example/ws"),
        ("HTTPS://hub.example:8443/", "wss://hub.example:8443/"),
        ("wss://hub.example/realtime?x=1", "wss://hub.example/realtime?x=1"),
    ],
)
def test_urls_are_mapped_to_socket_urls(given: str, url: str) -> None:
    assert socket_url(given) == url


@pytest.mark.parametrize("bad", ["ftp://hub.example/ws", "127.0.0.1:8000", "ws:///ws", "ws://host:port/ws", ""])
def test_a_url_that_is_not_a_hub_url_is_refused_when_the_client_is_made(bad: str) -> None:
    with pytest.raises(ValueError, match=r"hub URL|names no host|port"):
        Client(bad)


def test_options_are_checked_when_the_client_is_made() -> None:
    with pytest.raises(ValueError, match="at least one URL"):
        Client([])
    with pytest.raises(ValueError, match="request_timeout"):
        Client("ws://h/ws", request_timeout=0)
    with pytest.raises(ValueError, match="heartbeat_timeout"):
        Client("ws://h/ws", heartbeat_timeout=-1)
    with pytest.raises(ValueError, match="at least one event"):
        Client("ws://h/ws", max_events=0)


async def test_the_dispatcher_runs_callbacks_in_order_awaits_coroutines_and_survives_errors(
    caplog: pytest.LogCaptureFixture,
) -> None:
    dispatcher = Dispatcher(max_events=10)
    dispatcher.start()
    ran: list[str] = []

    async def slow(name: str) -> None:
        await asyncio.sleep(0)
        ran.append(name)

    def broken(name: str) -> None:
        raise RuntimeError(f"bug in {name}")

    dispatcher.post(slow, "a")
    dispatcher.post_event(broken, "b")
    dispatcher.post_event(ran.append, "c")
    await dispatcher.drain(5)
    assert ran == ["a", "c"]
    assert "bug in b" in caplog.text


async def test_the_dispatcher_refuses_events_beyond_its_bound_and_has_room_again_at_half() -> None:
    dispatcher = Dispatcher(max_events=4)
    gate = asyncio.Event()
    dispatcher.start()
    dispatcher.post(gate.wait)  # the app is stuck
    assert all(dispatcher.post_event(lambda: None) for _ in range(4))
    assert not dispatcher.post_event(lambda: None)
    dispatcher.post(lambda: None)  # state changes are always taken
    room = asyncio.create_task(dispatcher.wait_for_room())
    await asyncio.sleep(0)
    assert not room.done()
    gate.set()
    await asyncio.wait_for(room, 5)
    await dispatcher.drain(5)
    assert dispatcher.backlog == 0


async def test_the_offline_queue_is_bounded_in_count_and_in_time() -> None:
    outcomes: list[Reply] = []
    all_settled = asyncio.Event()

    def settle(reply: Reply) -> None:
        outcomes.append(reply)
        if len(outcomes) == 3:
            all_settled.set()

    outbox = Outbox(window=0.05, max_items=2)
    for n in range(3):
        outbox.add(Queued({"n": n}, None, settle))
    assert len(outbox) == 2
    assert isinstance(outcomes[0], ClientError)
    assert outcomes[0].code == "offline_queue_full"
    await asyncio.wait_for(all_settled.wait(), 5)  # past the window: the two waiting ones expire
    assert [o.code for o in outcomes if isinstance(o, ClientError)] == ["offline_queue_full"] + ["disconnected"] * 2
    assert len(outbox) == 0
    outcomes.clear()
    Outbox(window=0, max_items=5).add(Queued({}, None, outcomes.append))
    assert isinstance(outcomes[0], ClientError)
    assert outcomes[0].code == "disconnected"  # no window: at once


async def test_a_publish_before_start_or_after_close_is_refused_and_requests_need_a_connection() -> None:
    client = Client("ws://127.0.0.1:9/ws")
    with pytest.raises(ClientError) as refused:
        await client.publish("chat:x", "chat.send", {"text": "hi"})
    assert refused.value.code == "closed"
    with pytest.raises(ClientError) as disconnected:
        await client.presence("chat:x")
    assert disconnected.value.code == "disconnected"
    with pytest.raises(ClientError, match="closed"):
        await client.wait_open()
    await client.close()  # harmless on a client that never started
