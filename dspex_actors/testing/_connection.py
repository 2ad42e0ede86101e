"""One client connection of the local LM server: an asyncio Protocol reading HTTP/1.1.

httptools (llhttp, the C parser uvicorn uses) turns the received bytes into requests,
Content-Length and chunked bodies alike; the channel hands each to its owner (the
server loop, ``_server_loop.py``) in order. A request the parser rejects ends the
connection: a :class:`ProtocolError` takes its place, and nothing after it is read.
Writing, and which request is answered next, are the owner's business; the channel
only remembers whether one is being answered (``busy``) and which wait behind it.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import NamedTuple, Protocol

import httptools

__all__ = ["Channel", "ChannelOwner", "ProtocolError", "Request"]

_MAX_HEADERS = 100
_MAX_HEAD = 256 * 1024
"""Bytes of request line and headers accepted."""
_METHODS = {b"GET": "GET", b"POST": "POST"}


class ProtocolError(Exception):
    """A request the server cannot read: answer ``status``, then close the connection."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Request(NamedTuple):
    """One parsed HTTP request; header names are lower-cased."""

    method: str
    target: str
    headers: dict[str, str]
    body: bytes
    keep_alive: bool
    """False when the connection must close after the reply (``Connection: close``, HTTP/1.0)."""
    http11: bool = True
    """False for an HTTP/1.0 client, which cannot read a chunked reply."""


class ChannelOwner(Protocol):
    """What a channel tells the loop that serves it (all on the loop thread)."""

    def opened(self, channel: Channel) -> None:
        """A connection was accepted."""

    def arrived(self, channel: Channel, item: Request | ProtocolError) -> None:
        """A request was read (or the error that ends the connection's requests)."""

    def writable(self, channel: Channel) -> None:
        """The connection's write buffer drained below its limit again."""

    def lost(self, channel: Channel) -> None:
        """The connection is closed."""


class Channel(asyncio.Protocol):
    """One client connection; touched only on the loop thread.

    ``busy`` while a request of it is being answered; requests read meanwhile wait in
    ``waiting`` (with their arrival stamps) so replies keep request order.
    """

    __slots__ = (
        "_body",
        "_failed",
        "_head_bytes",
        "_headers",
        "_owner",
        "_parser",
        "_url",
        "busy",
        "closed",
        "paused",
        "transport",
        "waiting",
    )

    def __init__(self, owner: ChannelOwner) -> None:
        self._owner = owner
        self._parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.busy = False
        self.waiting: deque[tuple[Request | ProtocolError, float]] = deque()
        self.closed = False
        self.paused = False
        """The transport's write buffer is over its limit: answer no further request yet."""
        self._failed = False
        # The request being read (reset when it completes):
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []
        self._head_bytes = 0
        """Bytes received since the current request began and before its body: bounds a
        head that never ends (llhttp sets no limit of its own)."""

    # --- asyncio.Protocol --------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self._owner.opened(self)

    def data_received(self, data: bytes) -> None:
        if self._failed:
            return
        self._head_bytes += len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            self._ignore_upgrade(data[exc.args[0] :])
            return
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            error = cause if isinstance(cause, ProtocolError) else ProtocolError(400, str(exc))
        except httptools.HttpParserError as exc:
            error = ProtocolError(400, f"malformed request: {exc}")
        else:
            if self._head_bytes <= _MAX_HEAD:
                return
            error = ProtocolError(431, "request headers too large")
        self._failed = True
        self._owner.arrived(self, error)

    def _ignore_upgrade(self, rest: bytes) -> None:
        """Answer an ``Upgrade`` request as plain HTTP/1.1 (RFC 9110 lets a server ignore
        the header); what follows it is read as HTTP too."""
        self._head_bytes = 0
        if rest:
            self.data_received(rest)

    def eof_received(self) -> bool:
        """The client stopped sending: a reply still being prepared for it is skipped."""
        self.closed = True
        self.waiting.clear()
        return False  # the transport closes

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.waiting.clear()
        self._owner.lost(self)

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self._owner.writable(self)

    # --- the loop's calls --------------------------------------------------------------

    def abort(self) -> None:
        """Close now, discarding what is not yet written."""
        self.closed = True
        self.waiting.clear()
        if self.transport is not None:
            self.transport.abort()

    def close_after_write(self) -> None:
        """Close once what is written has gone out (the peer sees its end first)."""
        self.closed = True
        self.waiting.clear()
        transport = self.transport
        if transport is not None:
            if transport.can_write_eof():
                transport.write_eof()
            transport.close()

    # --- httptools callbacks (few and small: they run for every request) --------------

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        headers = self._headers
        headers.append((name, value))
        if len(headers) > _MAX_HEADERS:
            raise ProtocolError(431, "request headers too large")

    def on_body(self, body: bytes) -> None:
        self._body.append(body)
        self._head_bytes = 0  # past the head

    def on_message_complete(self) -> None:
        parser = self._parser
        method = parser.get_method()
        parts = self._body
        request = Request(
            _METHODS.get(method) or method.decode("latin-1"),
            self._url.decode("latin-1"),
            {
                name.decode("latin-1").lower(): value.decode("latin-1").strip()
                for name, value in self._headers
            },
            parts[0] if len(parts) == 1 else b"".join(parts),
            parser.should_keep_alive(),
            parser.get_http_version() == "1.1",
        )
        self._url = b""
        self._headers = []
        self._body = []
        self._head_bytes = 0
        self._owner.arrived(self, request)
