"""``RedisLink``: one system's redis-py asyncio client, used only on the system's I/O loop.

Every Redis command runs on the I/O loop under ``asyncio.timeout``. A failure (refused,
reset, timed out, any Redis error) marks the link down for a back-off period, logged
once: while it is down, shared state falls back to the process's local state without
asking Redis, and the first command after the back-off tries again (redis-py reconnects
by itself), so a Redis outage never fails an LM call and ends by itself.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

import redis.asyncio
import redis.exceptions
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from dspex_actors._loop import IOLoop, IOLoopClosedError

__all__ = ["RedisLink", "RedisUnavailable", "redis_address"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
Command = Callable[["redis.asyncio.Redis"], Awaitable[T]]

FIRST_BACKOFF = 0.5
"""Seconds a link stays down after its first failure (doubling up to MAX_BACKOFF)."""
MAX_BACKOFF = 5.0


class RedisUnavailable(Exception):
    """Redis is down or too slow: use local state instead (internal; never reaches callers)."""


def redis_address(url: str) -> str:
    """``host:port/db`` of a Redis URL, without any user name or password (for logs)."""
    parts = urlsplit(url)
    db = parts.path.lstrip("/") or "0"
    return f"{parts.hostname or 'localhost'}:{parts.port or 6379}/{db}"


class RedisLink:
    """A redis-py asyncio client on ``io``, every command bounded by ``timeout`` seconds."""

    def __init__(self, url: str, io: IOLoop, *, timeout: float) -> None:
        self.address = redis_address(url)
        self.timeout = timeout
        self._io = io
        # One retry on a connection error: a pooled connection that died with a restarted
        # server is replaced at once; anything longer is the outer timeout's business.
        self.client: redis.asyncio.Redis = redis.asyncio.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 1),
            health_check_interval=0,
        )
        self._lock = threading.Lock()
        self._down_until = 0.0
        self._backoff = 0.0
        self._writes: set[concurrent.futures.Future[Any]] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False
        self.counters = {"commands": 0, "failures": 0, "outages": 0}

    # -- health --------------------------------------------------------------------

    @property
    def usable(self) -> bool:
        """Whether shared state should be asked now (up, or its back-off has passed)."""
        return not self._closed and time.monotonic() >= self._down_until

    @property
    def up(self) -> bool:
        """Whether the last command succeeded."""
        return self._backoff == 0.0 and not self._closed

    def _failed(self, error: BaseException) -> None:
        with self._lock:
            first = self._backoff == 0.0
            self._backoff = FIRST_BACKOFF if first else min(MAX_BACKOFF, self._backoff * 2)
            self._down_until = time.monotonic() + self._backoff
            self.counters["failures"] += 1
            if first:
                self.counters["outages"] += 1
        if first:
            logger.warning(
                "Redis at %s is unavailable (%s: %s); using this process's local cache, "
                "limits and breakers until it is back",
                self.address,
                type(error).__name__,
                error,
            )

    def _succeeded(self) -> None:
        with self._lock:
            recovered = self._backoff != 0.0
            self._backoff = 0.0
            self._down_until = 0.0
            self.counters["commands"] += 1
        if recovered:
            logger.warning("Redis at %s is reachable again; sharing state again", self.address)

    # -- commands (on the loop) ------------------------------------------------------

    async def run(self, command: Command[T]) -> T:
        """On the loop: run ``command(client)`` within the timeout; RedisUnavailable if the
        link is down, closed, or the command fails."""
        if not self.usable:
            raise RedisUnavailable(f"Redis at {self.address} is unavailable")
        try:
            async with asyncio.timeout(self.timeout):
                result = await command(self.client)
        except (redis.exceptions.RedisError, OSError, TimeoutError) as exc:
            self._failed(exc)
            raise RedisUnavailable(f"Redis at {self.address}: {exc}") from exc
        self._succeeded()
        return result

    # -- from any thread -------------------------------------------------------------

    def submit(
        self,
        command: Command[T],
        done: Callable[[T | RedisUnavailable], None] | None = None,
        *,
        write: bool = False,
    ) -> None:
        """Run ``command`` on the loop; ``done`` gets its result or RedisUnavailable, on the
        loop's thread. A ``write`` is waited for by :meth:`close`."""
        self.spawn(self._submitted(command, done), write=write)

    async def _submitted(
        self, command: Command[T], done: Callable[[T | RedisUnavailable], None] | None
    ) -> None:
        try:
            result: T | RedisUnavailable = await self.run(command)
        except RedisUnavailable as exc:
            result = exc
        if done is not None:
            done(result)

    def spawn(
        self, coro: Awaitable[Any], *, write: bool = False
    ) -> concurrent.futures.Future[Any] | None:
        """Start ``coro`` as a task on the loop (from any thread); None once closed."""
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        if write:
            with self._lock:
                self._writes.add(future)
            future.add_done_callback(self._writes.discard)
        try:
            self._io.call_soon(self._start, coro, future)
        except IOLoopClosedError:
            with contextlib.suppress(AttributeError):
                coro.close()  # type: ignore[attr-defined]
            future.cancel()
            return None
        return future

    def _start(self, coro: Awaitable[Any], future: concurrent.futures.Future[Any]) -> None:
        if self._closed and future not in self._writes:
            with contextlib.suppress(AttributeError):
                coro.close()  # type: ignore[attr-defined]
            future.cancel()
            return
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)

        def finished(task: asyncio.Task[Any]) -> None:
            self._tasks.discard(task)
            if future.done():
                return
            if task.cancelled():
                future.cancel()
            elif task.exception() is not None:
                future.set_exception(task.exception())
            else:
                future.set_result(task.result())

        task.add_done_callback(finished)

    def call(self, command: Command[T], timeout: float | None = None) -> T:
        """Blocking, from a thread that is not the loop's: ``command``'s result, or
        RedisUnavailable (also after ``timeout``, default the link's)."""
        if self._io.in_loop_thread():  # waiting here would block the loop forever
            raise RedisUnavailable("RedisLink.call() cannot wait on the I/O loop's thread")
        future = self.spawn(self.run(command))
        if future is None:
            raise RedisUnavailable("the I/O loop is stopped")
        try:
            result: T = future.result(timeout if timeout is not None else self.timeout + 0.5)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise RedisUnavailable(f"Redis at {self.address} did not answer in time") from None
        except concurrent.futures.CancelledError:
            raise RedisUnavailable("the I/O loop is stopping") from None
        return result

    def close(self, timeout: float = 2.0) -> None:
        """Wait (bounded) for writes in flight, cancel the other tasks, close the client.

        Called before the I/O loop stops, so what completed is in Redis when the system's
        stop() returns.
        """
        with self._lock:
            writes = list(self._writes)
        if writes:
            _, late = concurrent.futures.wait(writes, timeout=timeout)
            if late:
                logger.warning(
                    "%d cache writes to Redis at %s did not finish before stop",
                    len(late),
                    self.address,
                )
        self._closed = True
        closed: concurrent.futures.Future[None] = concurrent.futures.Future()
        try:
            self._io.call_soon(self._close_on_loop, closed)
        except IOLoopClosedError:
            return
        with contextlib.suppress(concurrent.futures.TimeoutError):
            closed.result(timeout)

    def _close_on_loop(self, closed: concurrent.futures.Future[None]) -> None:
        for task in list(self._tasks):
            task.cancel()

        async def close_client() -> None:
            try:
                if self._tasks:
                    await asyncio.wait(set(self._tasks), timeout=self.timeout)
                with contextlib.suppress(Exception):
                    await self.client.aclose()
            finally:
                closed.set_result(None)

        self._io.closing(close_client())

    def snapshot(self) -> dict[str, Any]:
        """For ``ActorSystem.stats()``: where (no credentials), whether it is up, counters."""
        return {"address": self.address, "up": self.up, **self.counters}
