"""The local server's I/O thread: one asyncio event loop serving every connection.

``asyncio.SelectorEventLoop`` on its own thread accepts connections, reads them with
:class:`Channel` (httptools) and writes replies through its transports; replies held
for later (latency, hangs, the next event of a paced stream) are ``call_at`` timers, one
per deadline (requests stamped by the same poll share it), so replies due together
leave together, in one loop iteration. Other threads reach the loop with
:meth:`ServerLoop.call_soon_threadsafe`.

Each request is stamped with the time the loop's poll returned its bytes, and at most
one request is answered per poll: when many arrive at once, the loop answers one, then
polls again, so stamps stay close to arrival times even while earlier requests are being
answered; a reply held for ``delay`` then leaves ``delay`` after its request arrived,
not after its turn came. The poll wakes to the microsecond (asyncio's epoll rounds a
timeout up to whole milliseconds, which would release held replies up to 1 ms late).

The owner answers every request it is handed exactly once, on the loop thread, with
:meth:`ServerLoop.send` or :meth:`ServerLoop.drop` (a reply written over time, such as
an event stream, goes out with :meth:`ServerLoop.send_part` calls, then ``send``).
"""

from __future__ import annotations

import asyncio
import logging
import select
import selectors
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from dspex_actors.testing._connection import Channel, ProtocolError, Request

__all__ = ["ServerLoop"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

_BACKLOG = 256
_START_TIMEOUT = 10.0
_HANDSHAKE_TIMEOUT = 10.0
_SETTLE_ROUNDS = 50
_FD_SETSIZE = 1024  # select() takes no higher descriptor
_monotonic = time.monotonic


class _StampingSelector(selectors.DefaultSelector):
    """The default selector, woken to the microsecond, noting when each poll returned."""

    def __init__(self) -> None:
        super().__init__()
        self.polls = 0
        self.polled_at = time.monotonic()

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout and self.fileno() < _FD_SETSIZE:
            select.select([self.fileno()], [], [], timeout)
            timeout = 0.0
        events = super().select(timeout)
        self.polls += 1
        self.polled_at = _monotonic()
        return events


class ServerLoop(Generic[T]):
    """Serves ``address`` on its own thread (over TLS with ``ssl_context``).

    ``on_request(channel, request_or_error, arrival)`` runs on the loop thread for each
    request in order; ``on_due(items)`` gets held items whose deadline passed;
    ``on_abandon(items)`` gets those still held when the loop stops.
    """

    def __init__(
        self,
        address: tuple[str, int],
        *,
        name: str,
        on_request: Callable[[Channel, Request | ProtocolError, float], None],
        on_due: Callable[[list[T]], None],
        on_abandon: Callable[[list[T]], None],
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._on_request = on_request
        self._ssl = ssl_context
        self._on_due = on_due
        self._on_abandon = on_abandon
        self._listener = socket.create_server(address, backlog=_BACKLOG)
        self.port: int = self._listener.getsockname()[1]
        self._selector = _StampingSelector()
        self._loop = asyncio.SelectorEventLoop(self._selector)
        self._loop.set_exception_handler(self._on_loop_error)
        self._server: asyncio.Server | None = None
        self._channels: set[Channel] = set()
        self._all_lost: threading.Event | None = None
        """Set once every connection :meth:`close_connections` closed has gone."""
        self._ready: deque[tuple[Channel, Request | ProtocolError, float]] = deque()
        self._pump_scheduled = False
        self._dispatched_at = -1  # the poll during which a request was last answered
        self._held: dict[float, list[T]] = {}
        """Held items by deadline: requests stamped by the same poll share one timer."""
        self._lock = threading.Lock()
        self._closed = False
        self._started = threading.Event()
        self._start_error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"{name}-{self.port}", daemon=True)

    # --- any thread ------------------------------------------------------------------

    def start(self) -> None:
        """Start serving on the loop thread; returns once connections are accepted."""
        self._thread.start()
        if not self._started.wait(_START_TIMEOUT):
            self.stop(_START_TIMEOUT)
            raise RuntimeError(f"the local server loop did not start within {_START_TIMEOUT:g}s")
        if self._start_error is not None:
            self._thread.join(_START_TIMEOUT)
            raise RuntimeError(
                f"the local server could not serve port {self.port}: {self._start_error!r}"
            ) from self._start_error

    def stop(self, timeout: float) -> bool:
        """End the thread: held replies are abandoned, every connection closes.

        True if the thread ended within ``timeout``.
        """
        if self._thread.ident is None:  # never started
            self._listener.close()
            self._loop.close()
            return True
        self.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def call_soon_threadsafe(self, call: Callable[[], None]) -> bool:
        """Run ``call`` on the loop thread soon; False (not run) once the loop has closed."""
        with self._lock:
            if self._closed:
                return False
            self._loop.call_soon_threadsafe(call)
        return True

    def close_connections(self, timeout: float) -> list[Channel]:
        """Close every client connection now; returns those still open after ``timeout``.

        Returns once their sockets are closed: asyncio closes a transport's socket after
        its protocol heard ``connection_lost``, so the wait ends one callback later.
        """
        done = threading.Event()

        def close_all() -> None:
            for channel in list(self._channels):
                channel.abort()
            if self._channels:
                self._all_lost = done
            else:
                done.set()

        if self.call_soon_threadsafe(close_all):
            done.wait(timeout)
        return list(self._channels.copy())  # one C call: safe while the loop thread runs

    # --- loop thread: what the owner calls ----------------------------------------------

    def send(self, channel: Channel, data: bytes, *, close: bool = False) -> None:
        """Write the reply to the channel's current request; ``close`` the connection after."""
        channel.busy = False
        if channel.closed or channel.transport is None:
            return
        channel.transport.write(data)
        if close:
            channel.close_after_write()
        elif channel.waiting and not channel.paused:
            self._next_of(channel)

    def send_part(self, channel: Channel, data: bytes) -> None:
        """Write part of the current request's reply; the request stays being answered.

        Requests read meanwhile keep waiting until :meth:`send` writes the reply's end.
        """
        if not channel.closed and channel.transport is not None:
            channel.transport.write(data)

    def drop(self, channel: Channel) -> None:
        """Close the channel without a reply to its current request."""
        channel.busy = False
        channel.abort()

    def hold(self, deadline: float, item: T) -> None:
        """Give ``item`` to ``on_due`` at ``deadline`` (``time.monotonic()`` seconds)."""
        if self._closed:
            self._abandon([item])
            return
        batch = self._held.get(deadline)
        if batch is None:
            self._held[deadline] = [item]
            self._loop.call_at(deadline, self._fire, deadline)
        else:
            batch.append(item)

    # --- loop thread: ChannelOwner ------------------------------------------------------

    def opened(self, channel: Channel) -> None:
        if self._closed:
            channel.abort()
        else:
            self._channels.add(channel)

    def arrived(self, channel: Channel, item: Request | ProtocolError) -> None:
        arrival = self._selector.polled_at
        if channel.busy or channel.waiting:
            channel.waiting.append((item, arrival))
            return
        channel.busy = True
        if self._ready or self._dispatched_at == self._selector.polls:
            self._ready.append((channel, item, arrival))
            self._schedule_pump()
        else:  # the first request since the poll is answered right away
            self._dispatched_at = self._selector.polls
            self._answer(channel, item, arrival)

    def writable(self, channel: Channel) -> None:
        if channel.waiting and not channel.busy:
            self._next_of(channel)

    def lost(self, channel: Channel) -> None:
        self._channels.discard(channel)
        waiter = self._all_lost
        if waiter is not None and not self._channels:
            self._all_lost = None
            self._loop.call_soon(waiter.set)  # after the transport closed its socket

    # --- loop thread: internals ---------------------------------------------------------

    def _next_of(self, channel: Channel) -> None:
        """Queue the channel's next waiting request (answered after the next poll)."""
        item, arrival = channel.waiting.popleft()
        channel.busy = True
        self._ready.append((channel, item, arrival))
        self._schedule_pump()

    def _schedule_pump(self) -> None:
        if not self._pump_scheduled:
            self._pump_scheduled = True
            self._loop.call_soon(self._pump)

    def _pump(self) -> None:
        self._pump_scheduled = False
        if self._ready:
            self._dispatch()

    def _dispatch(self) -> None:
        """Answer the oldest ready request (one per poll; the rest after the next one)."""
        self._dispatched_at = self._selector.polls
        ready = self._ready
        while ready:
            channel, item, arrival = ready.popleft()
            if not channel.closed:
                self._answer(channel, item, arrival)
                break
        if ready:
            self._schedule_pump()

    def _answer(self, channel: Channel, item: Request | ProtocolError, arrival: float) -> None:
        try:
            self._on_request(channel, item, arrival)
        except Exception:
            logger.exception("answering a request failed; closing its connection")
            channel.abort()

    def _fire(self, deadline: float) -> None:
        due = self._held.pop(deadline, None)
        if due is None:  # abandoned when the loop stopped
            return
        try:
            self._on_due(due)
        except Exception:
            logger.exception("releasing %d held replies failed", len(due))

    def _abandon(self, items: list[T]) -> None:
        try:
            self._on_abandon(items)
        except Exception:
            logger.exception("abandoning held replies failed")

    def _on_loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """asyncio's report of an error; connection set-ups cancelled at stop are expected."""
        if self._closed and isinstance(context.get("exception"), asyncio.CancelledError):
            logger.debug("at stop: %s", context.get("message"))
            return
        loop.default_exception_handler(context)

    def _run(self) -> None:
        loop = self._loop
        try:
            self._server = loop.run_until_complete(
                loop.create_server(
                    lambda: Channel(self),
                    sock=self._listener,
                    backlog=_BACKLOG,
                    ssl=self._ssl,
                    ssl_handshake_timeout=None if self._ssl is None else _HANDSHAKE_TIMEOUT,
                )
            )
        except BaseException as exc:
            self._start_error = exc
            with self._lock:
                self._closed = True
            self._listener.close()
            loop.close()
            self._started.set()
            return
        self._started.set()
        try:
            loop.run_forever()
        except Exception:
            logger.exception("local LM server loop failed")
        finally:
            self._shutdown()

    def _shutdown(self) -> None:
        """Close everything; calls still queued run (their owner sees it is stopping)."""
        loop = self._loop
        with self._lock:
            self._closed = True
        held = [item for _, batch in sorted(self._held.items()) for item in batch]
        self._held.clear()
        self._abandon(held)
        try:
            loop.run_until_complete(self._close_all())
        except Exception:
            logger.exception("closing the local LM server's connections failed")
        finally:
            self._ready.clear()
            self._listener.close()
            loop.close()

    async def _close_all(self) -> None:
        """Stop accepting, abort every connection and let their transports finish closing.

        Connections still being set up (a TLS handshake a client never finishes) are
        cancelled.
        """
        if self._server is not None:
            self._server.close()
        current = asyncio.current_task()
        for _ in range(_SETTLE_ROUNDS):
            for channel in list(self._channels):
                channel.abort()
            await asyncio.sleep(0)
            others = [task for task in asyncio.all_tasks() if task is not current]
            if not self._channels and not others:
                return
            for task in others:
                task.cancel()
        logger.warning("local LM server connections still closing at stop: %d", len(self._channels))
