"""SerialThread: one thread that runs jobs one at a time, in the order they were given, for the event loop.

What the SQLite store needs of a thread (the connection's owner), without the general machinery of
``ThreadPoolExecutor`` + ``run_in_executor``: no concurrent.futures future, work item, pool locks or future
chaining per job. A job goes in on a ``SimpleQueue``, and its result comes back with one
``call_soon_threadsafe``. On a flooded chat room that hand-off is paid once per group commit (issue 17).
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

_Job = tuple[Callable[[], Any], asyncio.AbstractEventLoop, "asyncio.Future[Any]"]


def _set_result(future: asyncio.Future[Any], result: object) -> None:
    if not future.done():  # the awaiting side may have been cancelled meanwhile
        future.set_result(result)


def _set_exception(future: asyncio.Future[Any], error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)


class SerialThread:
    """Runs ``fn()`` jobs in a thread of its own, strictly in order; :meth:`run` awaits one from the loop."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._stopped = False

    def run(self, fn: Callable[[], T]) -> asyncio.Future[T]:
        """Queue ``fn`` after every job given before; the future resolves on the calling loop with its result
        (or its exception). Cancelling the future does not stop a job that has started."""
        if self._stopped:
            raise RuntimeError(f"{self.name}: the thread was shut down")
        if self._thread is None:
            self._start()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._jobs.put((fn, loop, future))
        return future

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name=self.name, daemon=True)
                self._thread.start()

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            fn, loop, future = job
            try:
                result = fn()
            except BaseException as exc:  # handed to the awaiting side, which decides
                self._settle(loop, _set_exception, future, exc)
            else:
                self._settle(loop, _set_result, future, result)
            del job, fn, future  # no reference to the last job's objects while waiting for the next

    @staticmethod
    def _settle(loop: asyncio.AbstractEventLoop, settle: Callable[..., None], *args: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop was closed under the job: nobody waits for it any more
            loop.call_soon_threadsafe(settle, *args)

    def shutdown(self) -> None:
        """Let every queued job finish, then stop the thread (blocking)."""
        self._stopped = True
        thread = self._thread
        if thread is not None:
            self._jobs.put(None)
            thread.join()
