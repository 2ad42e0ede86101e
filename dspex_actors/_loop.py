"""The I/O loop of an ActorSystem: one asyncio event loop on one daemon thread.

Every LM HTTP attempt of the system runs here as a task, and the Client actors' timers
(retry backoffs, rate-limit refills) are ``call_at`` handles on it, so calls in flight
cost no thread each. Actors hand work over with :meth:`IOLoop.call_soon` (thread-safe)
and get results back as messages; nothing on the loop blocks.

:meth:`IOLoop.stop` lets the tasks that are closing resources finish, cancels every other
task, shuts the default executor down and closes the loop, all within its timeout, then
joins the thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
from collections.abc import Callable, Coroutine
from typing import Any

from dspex_actors._inbox import LoopInbox

__all__ = ["IOLoop", "IOLoopClosedError"]

logger = logging.getLogger(__name__)

STOP_SECONDS = 1.0
"""Default bound on :meth:`IOLoop.stop`: closing tasks first, then cancellation."""

DNS_THREADS = 2
"""Threads of the loop's default executor (aiohttp resolves host names there)."""


class IOLoopClosedError(RuntimeError):
    """Work handed to an :class:`IOLoop` that is stopped or stopping."""


class IOLoop:
    """An asyncio event loop running on its own daemon thread until :meth:`stop`.

    Daemon, because Python joins non-daemon threads before it runs ``atexit`` hooks: the
    system's exit hook stops the loop instead, so a script never hangs at exit.
    """

    def __init__(self, name: str = "dspex-io") -> None:
        self.name = name
        self._loop = asyncio.new_event_loop()
        self._loop.set_default_executor(
            concurrent.futures.ThreadPoolExecutor(DNS_THREADS, thread_name_prefix=f"{name}-dns")
        )
        self._inbox = LoopInbox(self._loop)
        """Hand-offs from the actors: one wake-up of the loop per batch."""
        self._closing: set[asyncio.Task[Any]] = set()
        self._lock = threading.Lock()
        self._stopping = False
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()
        self._started.wait()

    def in_loop_thread(self) -> bool:
        """Whether the caller runs on the loop's thread."""
        return threading.current_thread() is self._thread

    def call_soon(self, callback: Callable[..., object], *args: Any) -> None:
        """Run ``callback(*args)`` on the loop thread soon; IOLoopClosedError once stopping."""
        with self._lock:
            if self._stopping:
                raise IOLoopClosedError(f"I/O loop {self.name} is stopped")
            try:
                self._inbox.put(callback, *args)
            except RuntimeError:  # closed under us: the loop thread died
                raise IOLoopClosedError(f"I/O loop {self.name} is closed") from None

    def call_at(self, when: float, callback: Callable[..., object], *args: Any) -> None:
        """Run ``callback(*args)`` on the loop thread at ``when`` (``time.monotonic()``)."""
        self.call_soon(self._loop.call_at, when, callback, *args)

    def closing(self, coro: Coroutine[Any, Any, None]) -> None:
        """On the loop thread: run ``coro`` as a task that :meth:`stop` waits for.

        For closing sessions and connections: stop() lets these finish before it cancels
        what is left, so a resource released just before the loop stops is released
        cleanly rather than cancelled half-way.
        """
        task = self._loop.create_task(coro)
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def stop(self, timeout: float = STOP_SECONDS) -> bool:
        """Finish closing tasks, cancel the rest, close the loop; True if the thread ended."""
        with self._lock:
            first = not self._stopping
            self._stopping = True
        if first and self._thread.is_alive():
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(
                    lambda: self._loop.create_task(self._shutdown(timeout * 0.8))
                )
        if not self.in_loop_thread():
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.call_soon(self._started.set)
        try:
            self._loop.run_forever()
        finally:
            try:
                self._cancel_all()
            finally:
                self._loop.close()
                logger.debug("I/O loop %s closed", self.name)

    async def _shutdown(self, timeout: float) -> None:
        """Closing tasks first (bounded), then everything else is cancelled."""
        loop = self._loop
        deadline = loop.time() + timeout
        if self._closing:
            await asyncio.wait(set(self._closing), timeout=timeout / 2)
        current = asyncio.current_task()
        others = [task for task in asyncio.all_tasks(loop) if task is not current]
        for task in others:
            task.cancel()
        if others:
            await asyncio.wait(others, timeout=max(0.0, deadline - loop.time()))
        executor_done = loop.create_task(loop.shutdown_default_executor())
        await asyncio.wait({executor_done}, timeout=max(0.0, deadline - loop.time()))
        await loop.shutdown_asyncgens()
        loop.stop()

    def _cancel_all(self) -> None:
        """After run_forever: cancel whatever is left and let it unwind (loop thread)."""
        tasks = asyncio.all_tasks(self._loop)
        for task in tasks:
            task.cancel()
        if tasks:
            with contextlib.suppress(BaseException):
                self._loop.run_until_complete(
                    asyncio.wait(tasks, timeout=0.1)
                )

    def __repr__(self) -> str:
        state = "stopped" if self._stopping else "running"
        return f"<IOLoop {self.name!r} {state}>"
