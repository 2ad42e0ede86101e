"""HTTP/1.1 wire format for the local LM server: an incremental request parser, reply bytes.

No I/O here: the event loop (``_loop.py``) feeds received bytes to a
:class:`RequestReader` and writes what :func:`reply_bytes` builds (a streamed reply:
:func:`stream_head`, then its body in :func:`body_chunk` pieces). Hand-written because
``http.server``'s e-mail-based header parsing costs more CPU per request than the rest
of the server together.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache
from http import HTTPStatus
from typing import NamedTuple

__all__ = [
    "LAST_CHUNK",
    "ProtocolError",
    "Request",
    "RequestReader",
    "body_chunk",
    "reply_bytes",
    "stream_head",
]

_MAX_LINE = 65536
_MAX_HEADERS = 100
_MAX_HEAD = 4 * _MAX_LINE
_SERVER_NAME = "dspex-local-lm/1.0"
_BLANK_LINE = re.compile(rb"\n\r?\n")  # ends the head, with CRLF or bare LF line endings


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


class _Head(NamedTuple):
    method: str
    target: str
    headers: dict[str, str]
    keep_alive: bool
    length: int
    http11: bool


def _request_line(line: str) -> list[str]:
    parts = line.split()
    if len(parts) != 3 or not parts[2].startswith("HTTP/") or len(line) > _MAX_LINE:
        raise ProtocolError(400, "malformed request line")
    return parts


def _parse_head(raw: bytes | bytearray) -> _Head:
    lines = raw.decode("latin-1").split("\n")
    method, target, version = _request_line(lines[0])
    if len(lines) > _MAX_HEADERS + 1:
        raise ProtocolError(431, "request headers too large")
    headers: dict[str, str] = {}
    for index in range(1, len(lines)):
        line = lines[index]
        if len(line) > _MAX_LINE:
            raise ProtocolError(431, "request headers too large")
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    connection = headers.get("connection", "").lower()
    http11 = version == "HTTP/1.1"
    keep_alive = connection != "close" if http11 else connection == "keep-alive"
    if headers.get("transfer-encoding", "").lower() == "chunked":
        raise ProtocolError(400, "chunked request bodies are not supported; send Content-Length")
    try:
        length = int(headers.get("content-length", "0"))
    except ValueError:
        raise ProtocolError(400, "invalid Content-Length") from None
    return _Head(method, target, headers, keep_alive, max(length, 0), http11)


def _check_partial_head(buffer: bytes | bytearray, start: int) -> None:
    newline = buffer.find(b"\n", start)
    if newline >= 0:
        _request_line(buffer[start:newline].decode("latin-1"))
    elif len(buffer) - start > _MAX_LINE:
        raise ProtocolError(400, "malformed request line")
    if len(buffer) - start > _MAX_HEAD:
        raise ProtocolError(431, "request headers too large")


class RequestReader:
    """Turns the bytes of one connection into requests, in order.

    :meth:`feed` returns the requests completed by the new bytes; after a request it
    cannot read, it returns the :class:`ProtocolError` as the last item and ignores
    everything after it.
    """

    __slots__ = ("_buffer", "_failed", "_head", "_start")

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._head: _Head | None = None
        self._start = 0
        self._failed = False

    def feed(self, data: bytes) -> list[Request | ProtocolError]:
        """Add received bytes; return every request (or the error) they complete."""
        if self._failed:
            return []
        if self._buffer:
            self._buffer += data
            buffer: bytes | bytearray = self._buffer
        else:
            buffer = data  # the usual case: one recv holds one whole request
        done: list[Request | ProtocolError] = []
        consumed = 0
        try:
            while True:
                head = self._head
                if head is None:
                    blank = _BLANK_LINE.search(buffer, consumed)
                    if blank is None:
                        _check_partial_head(buffer, consumed)
                        break
                    head = self._head = _parse_head(buffer[consumed : blank.start()])
                    self._start = blank.end()
                stop = self._start + head.length
                if len(buffer) < stop:
                    break
                body = bytes(buffer[self._start : stop])
                done.append(
                    Request(
                        head.method, head.target, head.headers, body, head.keep_alive, head.http11
                    )
                )
                self._head = None
                consumed = stop
        except ProtocolError as exc:
            self._failed = True
            self._buffer = bytearray()
            done.append(exc)
            return done
        self._keep(buffer, consumed)
        return done

    def _keep(self, buffer: bytes | bytearray, consumed: int) -> None:
        """Keep the unconsumed bytes (offsets of a head waiting for its body shift too)."""
        if consumed == len(buffer) and buffer is not self._buffer:
            return  # the usual case: nothing left over
        if self._head is not None:
            self._start -= consumed
        if buffer is self._buffer:
            del self._buffer[:consumed]
        elif consumed < len(buffer):
            self._buffer = bytearray(buffer[consumed:])


@lru_cache(maxsize=64)
def _head_start(status: int) -> bytes:
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Error"
    return (
        f"HTTP/1.1 {status} {reason}\r\nServer: {_SERVER_NAME}\r\n"
        "Content-Type: application/json\r\nContent-Length: "
    ).encode("latin-1")


def reply_bytes(
    status: int, body: bytes, headers: Iterable[tuple[str, str]] = (), *, close: bool = False
) -> bytes:
    """A whole JSON reply (status line, headers, body), written with one send."""
    parts = [_head_start(status), str(len(body)).encode("ascii"), b"\r\n"]
    for name, value in headers:
        parts.append(f"{name}: {value}\r\n".encode("latin-1"))
    if close:
        parts.append(b"Connection: close\r\n")
    parts.append(b"\r\n")
    parts.append(body)
    return b"".join(parts)


LAST_CHUNK = b"0\r\n\r\n"
"""Ends a chunked body; a stream cut short never sends it."""


def stream_head(*, chunked: bool, close: bool) -> bytes:
    """The head of a ``200`` Server-Sent Events reply, whose body follows in pieces.

    ``chunked`` frames the body with :func:`body_chunk` (the connection can stay open);
    otherwise the body has no length and ends when the connection closes.
    """
    parts = [
        f"HTTP/1.1 200 OK\r\nServer: {_SERVER_NAME}\r\n"
        "Content-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
    ]
    if chunked:
        parts.append("Transfer-Encoding: chunked\r\n")
    if close or not chunked:
        parts.append("Connection: close\r\n")
    parts.append("\r\n")
    return "".join(parts).encode("latin-1")


def body_chunk(data: bytes) -> bytes:
    """One piece of a chunked body (``data`` must not be empty: that ends the body)."""
    return b"%x\r\n%b\r\n" % (len(data), data)
