"""The local server's single I/O thread: sockets, held replies and cross-thread calls.

One thread runs a ``selectors`` loop over the listening socket and every connection, and
keeps the replies held for later (latency, hangs) in a deadline heap: no thread per
connection, no sleeping thread per request. Replies due together leave in one burst.

Each request is stamped with the time its bytes were read. When requests pile up (many
arrive at once), the loop answers one, then polls again without blocking, so stamps stay
close to arrival times even while earlier requests are being answered; a reply held for
``delay`` then leaves ``delay`` after its request arrived, not after its turn came.

The owner answers every request it is handed exactly once, on the loop thread, with
:meth:`EventLoop.send` or :meth:`EventLoop.drop` (a reply written over time, such as an
event stream, goes out with :meth:`EventLoop.send_part` calls, then ``send``); other
threads reach the loop with :meth:`EventLoop.call_soon_threadsafe`.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import select as select_module
import selectors
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

from dspex_actors.testing._http import ProtocolError, Request, RequestReader

__all__ = ["Channel", "EventLoop"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

_RECV_SIZE = 65536
_BACKLOG = 256
_READ = selectors.EVENT_READ
_WRITE = selectors.EVENT_WRITE


class Channel:
    """One client connection; touched only on the loop thread.

    ``busy`` while a request of it is being answered; requests read meanwhile wait in
    ``waiting`` (with their arrival stamps) so replies keep request order.
    """

    __slots__ = ("busy", "close_after_write", "closed", "out", "reader", "sock", "waiting")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reader = RequestReader()
        self.busy = False
        self.waiting: deque[tuple[Request | ProtocolError, float]] = deque()
        self.out = bytearray()
        self.close_after_write = False
        self.closed = False


class _Marker:
    """Selector data for the listening socket and the wake-up socket."""


_LISTENER = _Marker()
_WAKE = _Marker()


class EventLoop(Generic[T]):
    """Serves ``address`` on its own thread.

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
    ) -> None:
        self._on_request = on_request
        self._on_due = on_due
        self._on_abandon = on_abandon
        self._listener = socket.create_server(address, backlog=_BACKLOG)
        self._listener.setblocking(False)
        self.port: int = self._listener.getsockname()[1]
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, _READ, _LISTENER)
        self._selector.register(self._wake_r, _READ, _WAKE)
        self._channels: set[Channel] = set()
        self._ready: deque[tuple[Channel, Request | ProtocolError, float]] = deque()
        self._held: list[tuple[float, int, T]] = []
        self._order = itertools.count()
        self._calls: deque[Callable[[], None]] = deque()
        self._calls_lock = threading.Lock()
        self._wake_sent = False
        self._closed = False
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=f"{name}-{self.port}", daemon=True)

    # --- any thread ------------------------------------------------------------------

    def start(self) -> None:
        """Start serving on the loop thread."""
        self._thread.start()

    def stop(self, timeout: float) -> bool:
        """End the thread: held replies are abandoned, every connection closes.

        True if the thread ended within ``timeout``.
        """
        self._stopping = True
        self._wake()
        if self._thread.ident is not None:
            self._thread.join(timeout)
        else:
            self._shutdown()
        return not self._thread.is_alive()

    def call_soon_threadsafe(self, call: Callable[[], None]) -> bool:
        """Run ``call`` on the loop thread soon; False (not run) once the loop has closed."""
        with self._calls_lock:
            if self._closed:
                return False
            self._calls.append(call)
            wake = not self._wake_sent
            self._wake_sent = True
        if wake:
            self._wake()
        return True

    def close_connections(self, timeout: float) -> list[Channel]:
        """Close every client connection now; returns those still open after ``timeout``."""
        done = threading.Event()

        def close_all() -> None:
            for channel in list(self._channels):
                self._close(channel)
            done.set()

        if self.call_soon_threadsafe(close_all):
            done.wait(timeout)
        return [channel for channel in tuple(self._channels) if not channel.closed]

    def _wake(self) -> None:
        with contextlib.suppress(OSError):  # full (a wake-up is pending anyway) or closed
            self._wake_w.send(b"\0")

    # --- loop thread -----------------------------------------------------------------

    def send(self, channel: Channel, data: bytes, *, close: bool = False) -> None:
        """Write the reply to the channel's current request; ``close`` the connection after."""
        channel.busy = False
        if channel.closed:
            return
        if close:
            channel.close_after_write = True
        if channel.out:
            channel.out += data
            return
        try:
            sent = channel.sock.send(data)
        except BlockingIOError:
            sent = 0
        except OSError:
            self._close(channel)
            return
        if sent < len(data):
            channel.out += memoryview(data)[sent:]
            self._selector.modify(channel.sock, _READ | _WRITE, channel)
            return
        self._written(channel)

    def send_part(self, channel: Channel, data: bytes) -> None:
        """Write part of the current request's reply; the request stays being answered.

        Requests read meanwhile keep waiting until :meth:`send` writes the reply's end.
        """
        if channel.closed:
            return
        if channel.out:
            channel.out += data
            return
        try:
            sent = channel.sock.send(data)
        except BlockingIOError:
            sent = 0
        except OSError:
            self._close(channel)
            return
        if sent < len(data):
            channel.out += memoryview(data)[sent:]
            self._selector.modify(channel.sock, _READ | _WRITE, channel)

    def drop(self, channel: Channel) -> None:
        """Close the channel without a reply to its current request."""
        channel.busy = False
        self._close(channel)

    def hold(self, deadline: float, item: T) -> None:
        """Give ``item`` to ``on_due`` at ``deadline`` (``time.monotonic()`` seconds)."""
        heapq.heappush(self._held, (deadline, next(self._order), item))

    def _run(self) -> None:
        select = self._selector.select
        selector_fd = [self._selector.fileno()]
        try:
            while not self._stopping:
                if self._ready:
                    timeout: float | None = 0.0
                elif self._held:
                    timeout = max(0.0, self._held[0][0] - time.monotonic())
                else:
                    timeout = None
                if timeout:
                    # epoll rounds a timeout up to whole milliseconds, which would release
                    # held replies up to 1 ms late; select() on the epoll fd keeps
                    # microseconds.
                    select_module.select(selector_fd, [], [], timeout)
                    timeout = 0.0
                events = select(timeout)
                now = time.monotonic()
                for key, mask in events:
                    data = key.data
                    if isinstance(data, Channel):
                        if mask & _WRITE:
                            self._flush(data)
                        if mask & _READ:
                            self._read(data, now)
                    elif data is _LISTENER:
                        self._accept()
                    else:
                        self._run_calls()
                if self._held and self._held[0][0] <= now:
                    self._fire(now)
                if self._ready:
                    self._dispatch(*self._ready.popleft())
        except Exception:
            logger.exception("local LM server loop failed")
        finally:
            self._shutdown()

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                logger.debug("accept failed", exc_info=True)
                return
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            channel = Channel(sock)
            self._channels.add(channel)
            self._selector.register(sock, _READ, channel)

    def _read(self, channel: Channel, now: float) -> None:
        try:
            data = channel.sock.recv(_RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            # The client went away: a reply still being prepared or held for it is skipped.
            self._close(channel)
            return
        for item in channel.reader.feed(data):
            if channel.busy or channel.waiting:
                channel.waiting.append((item, now))
            else:
                channel.busy = True
                self._ready.append((channel, item, now))

    def _dispatch(self, channel: Channel, item: Request | ProtocolError, arrival: float) -> None:
        if channel.closed:
            return
        try:
            self._on_request(channel, item, arrival)
        except Exception:
            logger.exception("answering a request failed; closing its connection")
            self._close(channel)

    def _flush(self, channel: Channel) -> None:
        try:
            sent = channel.sock.send(channel.out)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(channel)
            return
        del channel.out[:sent]
        if not channel.out:
            self._selector.modify(channel.sock, _READ, channel)
            self._written(channel)

    def _written(self, channel: Channel) -> None:
        """A reply is fully out: close if asked, else start on the next waiting request."""
        if channel.close_after_write:
            with contextlib.suppress(OSError):
                channel.sock.shutdown(socket.SHUT_WR)
            self._close(channel)
        elif channel.waiting and not channel.busy:
            item, arrival = channel.waiting.popleft()
            channel.busy = True
            self._ready.append((channel, item, arrival))

    def _close(self, channel: Channel) -> None:
        if channel.closed:
            return
        channel.closed = True
        channel.waiting.clear()
        self._channels.discard(channel)
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(channel.sock)
        with contextlib.suppress(OSError):
            channel.sock.shutdown(socket.SHUT_RDWR)
        channel.sock.close()

    def _fire(self, now: float) -> None:
        held = self._held
        due = []
        while held and held[0][0] <= now:
            due.append(heapq.heappop(held)[2])
        try:
            self._on_due(due)
        except Exception:
            logger.exception("releasing %d held replies failed", len(due))

    def _run_calls(self) -> None:
        with contextlib.suppress(OSError):
            while self._wake_r.recv(4096):
                pass
        with self._calls_lock:
            calls = list(self._calls)
            self._calls.clear()
            self._wake_sent = False
        for call in calls:
            try:
                call()
            except Exception:
                logger.exception("a call on the local LM server loop failed")

    def _shutdown(self) -> None:
        """Close everything; calls still queued run (their owner sees it is stopping)."""
        with self._calls_lock:
            self._closed = True
        self._run_calls()
        held = [item for _, _, item in sorted(self._held, key=lambda entry: entry[:2])]
        self._held.clear()
        try:
            self._on_abandon(held)
        except Exception:
            logger.exception("abandoning held replies failed")
        for channel in list(self._channels):
            self._close(channel)
        self._ready.clear()
        self._selector.close()
        for sock in (self._listener, self._wake_r, self._wake_w):
            sock.close()
