"""HTTP/1.1 reply bytes for the local LM server: a whole JSON reply, or a stream's pieces.

No I/O here: the server writes what :func:`reply_bytes` builds (a streamed reply:
:func:`stream_head`, then its body in :func:`body_chunk` pieces, then
:data:`LAST_CHUNK`). Replies are written from templates because they are the part of
each request's CPU the server can keep small. Requests are read by httptools
(``_connection.py``).
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from http import HTTPStatus

__all__ = ["LAST_CHUNK", "body_chunk", "reply_bytes", "stream_head"]

_SERVER_NAME = "dspex-local-lm/1.0"


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
