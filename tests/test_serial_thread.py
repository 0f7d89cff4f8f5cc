"""SerialThread: jobs run one at a time in the order given, in one thread; results and errors come back to the
loop; shutdown lets queued jobs finish."""

from __future__ import annotations

import asyncio
import threading

import pytest

from hub.store.serial_thread import SerialThread


async def test_jobs_run_in_order_in_one_thread_off_the_loop() -> None:
    worker = SerialThread("test-serial")
    seen: list[tuple[int, str]] = []

    def job(n: int) -> int:
        seen.append((n, threading.current_thread().name))
        return n * n

    results = await asyncio.gather(*(worker.run(lambda n=n: job(n)) for n in range(50)))
    worker.shutdown()
    assert results == [n * n for n in range(50)]
    assert [n for n, _ in seen] == list(range(50))
    assert {name for _, name in seen} == {"test-serial"}


async def test_an_error_comes_back_and_the_next_job_still_runs() -> None:
    worker = SerialThread("test-serial")

    def fail() -> None:
        raise KeyError("broken")

    with pytest.raises(KeyError, match="broken"):
        await worker.run(fail)
    assert await worker.run(lambda: "after") == "after"
    worker.shutdown()


async def test_a_cancelled_wait_does_not_stop_the_thread() -> None:
    worker = SerialThread("test-serial")
    release = threading.Event()
    slow = worker.run(release.wait)
    slow.cancel()
    release.set()
    assert await worker.run(lambda: 7) == 7
    worker.shutdown()


async def test_shutdown_finishes_queued_jobs_then_refuses_more() -> None:
    worker = SerialThread("test-serial")
    done: list[int] = []
    futures = [worker.run(lambda n=n: done.append(n)) for n in range(5)]
    await asyncio.to_thread(worker.shutdown)
    await asyncio.gather(*futures)
    assert done == [0, 1, 2, 3, 4]
    with pytest.raises(RuntimeError, match="shut down"):
        worker.run(lambda: None)


def test_shutdown_without_any_job_is_fine() -> None:
    SerialThread("test-serial").shutdown()
