"""HTTP/1.1 on one kept-alive socket: write a request in one send, read one response.

Why not ``http.client``: its response parsing goes through the ``email`` package and it
validates every header with regular expressions; on this kind of 2-core machine that
is most of its CPU per call, and the Client actor's throughput at 64 calls in flight is
bound by that CPU (measured: about 140 us per call for ``http.client`` against about
65 us for this module, sequentially against the local server).

It covers what an LM endpoint can send back to a POST: ``Content-Length``, chunked and
close-delimited bodies, interim 1xx responses (skipped), obsolete folded header lines,
and the keep-alive rules of HTTP/1.0 and 1.1. It does no I/O policy of its own:
timeouts are the socket's, and any error leaves the connection unusable (the caller
closes it and opens a new one).
"""

from __future__ import annotations

import dataclasses
import logging
import select
import socket

__all__ = ["Connection", "ProtocolError", "RawResponse", "encode_head"]

logger = logging.getLogger(__name__)

MAX_LINE = 65536
"""Longest status, header or chunk-size line accepted, in bytes."""
MAX_HEADERS = 200
"""Most header lines accepted in one response."""

_NO_BODY_STATUSES = frozenset({204, 304})


class ProtocolError(Exception):
    """The server broke HTTP/1.1 or closed the connection in the middle of a response."""


@dataclasses.dataclass(frozen=True, slots=True)
class RawResponse:
    """One complete response, body read."""

    status: int
    reason: str
    version: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes
    will_close: bool
    """The server will close the connection (or already has): do not reuse it."""


def encode_head(method: str, target: str, headers: list[tuple[bytes, bytes]]) -> bytes:
    """The request line and headers, ready to send (ValueError on CR/LF in a header)."""
    lines = [f"{method} {target} HTTP/1.1".encode("ascii")]
    for name, value in headers:
        if b"\n" in name or b"\r" in name or b"\n" in value or b"\r" in value or b":" in name:
            raise ValueError(f"invalid character in the {name[:40]!r} request header")
        lines.append(name + b": " + value)
    lines.append(b"\r\n")
    return b"\r\n".join(lines)


class Connection:
    """One connected (possibly TLS-wrapped) socket and its buffered reader."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._reader = sock.makefile("rb")
        self._poller = select.poll()
        self._poller.register(sock, select.POLLIN)

    def close(self) -> None:
        """Close the reader and the socket."""
        try:
            self._reader.close()
        finally:
            self.sock.close()

    def is_stale(self) -> bool:
        """Whether the idle connection was closed by the server (or has stray data).

        Checked before reusing it, as httpcore does: a request is never resent after an
        error, since the server may have received it.
        """
        return bool(self._poller.poll(0))

    def exchange(self, method: str, head: bytes, body: bytes) -> RawResponse:
        """Send one request and read its whole response."""
        if len(body) <= 65536:
            self.sock.sendall(head + body)
        else:
            self.sock.sendall(head)
            self.sock.sendall(body)
        return self._read_response(method)

    def _read_response(self, method: str) -> RawResponse:
        while True:
            version, status, reason = self._read_status_line()
            headers = self._read_headers()
            if not 100 <= status < 200 or status == 101:
                break
        close_tokens = _tokens(headers, b"connection")
        will_close = b"close" in close_tokens or (
            version != b"HTTP/1.1" and b"keep-alive" not in close_tokens
        )
        if method == "HEAD" or status in _NO_BODY_STATUSES or 100 <= status < 200:
            body = b""
        elif _tokens(headers, b"transfer-encoding")[-1:] == [b"chunked"]:
            body = self._read_chunked()
        else:
            length = _content_length(headers)
            if length is None:
                body = self._reader.read()
                will_close = True
            else:
                body = self._read_exact(length)
        return RawResponse(status, reason, version, headers, body, will_close)

    def _readline(self, what: str) -> bytes:
        line = self._reader.readline(MAX_LINE + 1)
        if len(line) > MAX_LINE:
            raise ProtocolError(f"response {what} longer than {MAX_LINE} bytes")
        return line

    def _read_status_line(self) -> tuple[bytes, int, str]:
        line = self._readline("status line")
        if not line:
            raise ProtocolError("server disconnected without sending a response")
        version, _, rest = line.rstrip(b"\r\n").partition(b" ")
        code, _, reason = rest.partition(b" ")
        if not version.startswith(b"HTTP/") or len(code) != 3 or not code.isdigit():
            raise ProtocolError(f"malformed status line {line[:60]!r}")
        return version, int(code), reason.decode("latin-1").strip()

    def _read_headers(self) -> list[tuple[bytes, bytes]]:
        headers: list[tuple[bytes, bytes]] = []
        while True:
            line = self._readline("header line")
            if line in (b"\r\n", b"\n"):
                return headers
            if not line:
                raise ProtocolError("connection closed in the middle of the response headers")
            if line[:1] in (b" ", b"\t") and headers:
                name, value = headers[-1]
                headers[-1] = (name, value + b" " + line.strip())
                continue
            name, colon, value = line.partition(b":")
            if not colon or not name.strip():
                raise ProtocolError(f"malformed response header line {line[:60]!r}")
            headers.append((name.strip(), value.strip()))
            if len(headers) > MAX_HEADERS:
                raise ProtocolError(f"more than {MAX_HEADERS} response headers")

    def _read_exact(self, length: int) -> bytes:
        data = self._reader.read(length)
        if len(data) < length:
            raise ProtocolError(
                f"connection closed after {len(data)} of {length} response body bytes"
            )
        return data

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        while True:
            line = self._readline("chunk size line")
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise ProtocolError(f"malformed chunk size line {line[:60]!r}") from None
            if size < 0:
                raise ProtocolError(f"negative chunk size in {line[:60]!r}")
            if size == 0:
                break
            chunks.append(self._read_exact(size))
            if self._readline("chunk end") not in (b"\r\n", b"\n"):
                raise ProtocolError("chunk data not followed by CRLF")
        while self._readline("trailer line") not in (b"\r\n", b"\n", b""):
            pass
        return b"".join(chunks)


def _tokens(headers: list[tuple[bytes, bytes]], name: bytes) -> list[bytes]:
    """The comma-separated, lower-cased tokens of every ``name`` header, in order."""
    tokens: list[bytes] = []
    for key, value in headers:
        if key.lower() == name:
            tokens.extend(t.strip().lower() for t in value.split(b","))
    return tokens


def _content_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    values = {value for key, value in headers if key.lower() == b"content-length"}
    if not values:
        return None
    if len(values) > 1:
        raise ProtocolError(f"conflicting Content-Length headers {sorted(values)!r}")
    (value,) = values
    if not value.isdigit():
        raise ProtocolError(f"invalid Content-Length {value[:40]!r}")
    return int(value)
