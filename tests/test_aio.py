"""hub.aio: the one-waiter queue and flag that replace asyncio.Queue and asyncio.Event in every socket."""

from __future__ import annotations

import asyncio

import pytest

from hub.aio import Flag, ReceiveQueue


async def test_queue_hands_items_out_in_order_whether_or_not_someone_waits() -> None:
    queue: ReceiveQueue[int] = ReceiveQueue()
    queue.put_nowait(1)
    queue.put_nowait(2)
    assert queue.qsize() == 2
    assert await queue.get() == 1
    getter = asyncio.create_task(queue.get())
    assert await getter == 2
    waiting = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    queue.put_nowait(3)
    queue.put_nowait(4)
    assert await waiting == 3
    assert not queue.empty()
    assert await queue.get() == 4
    assert queue.empty()


async def test_a_cancelled_get_loses_no_item() -> None:
    queue: ReceiveQueue[str] = ReceiveQueue()
    getter = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    queue.put_nowait("kept")  # wakes the getter, which is cancelled before it runs
    getter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await getter
    assert await asyncio.wait_for(queue.get(), 1) == "kept"


async def test_a_second_concurrent_getter_is_refused() -> None:
    queue: ReceiveQueue[int] = ReceiveQueue()
    first = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="already awaited"):
        await queue.get()
    queue.put_nowait(7)
    assert await first == 7


async def test_flag_wakes_every_waiter_on_set_and_waits_again_after_clear() -> None:
    flag = Flag()
    assert not flag.is_set()
    waiters = [asyncio.create_task(flag.wait()) for _ in range(3)]
    await asyncio.sleep(0)
    assert not any(w.done() for w in waiters)
    flag.set()
    assert await asyncio.gather(*waiters) == [True, True, True]
    assert await flag.wait()  # set: returns at once
    flag.clear()
    later = asyncio.create_task(flag.wait())
    await asyncio.sleep(0.01)
    assert not later.done()
    flag.set()
    assert await asyncio.wait_for(later, 1)


async def test_a_cancelled_flag_waiter_is_forgotten() -> None:
    flag = Flag()
    waiter = asyncio.create_task(flag.wait())
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert flag._waiters == []
    flag.set()
    assert flag.is_set()
