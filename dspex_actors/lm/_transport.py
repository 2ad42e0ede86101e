"""An httpx transport over one kept-alive socket, speaking HTTP/1.1 with ``_http11``.

Why: the Client actor's HTTP attempts are CPU-bound on this kind of machine. httpcore
(httpx's default transport) costs about 0.4 ms of CPU per call alone and about
0.85 ms under 64-thread GIL contention; ``http.client`` about 0.14 ms; this transport
about 0.07 ms plus httpx's Request/Response objects. httpx stays in front for the
request and response model, content decoding, timeouts and its exception types, which
the Client actor's error handling relies on.

Each Client pool thread owns one transport and runs one attempt at a time, so one
connection per transport is enough; a transport is not meant to be shared by threads.
"""

from __future__ import annotations

import logging
import socket
import ssl
from typing import Any

import httpx

from dspex_actors.lm._http11 import Connection, ProtocolError, encode_head

logger = logging.getLogger(__name__)

__all__ = ["SocketTransport"]

_DEFAULT_PORTS = {"http": 80, "https": 443}


class SocketTransport(httpx.BaseTransport):
    """Sends httpx requests on one kept-alive (TLS for https) connection.

    ``ssl_context`` is used for https (made once with ``httpx.create_ssl_context()``
    when not given, on the first https request: loading CA certificates is slow).
    Errors come out as httpx exceptions: timeouts as ``ConnectTimeout`` /
    ``ReadTimeout``, a refused or unreachable server or a failed TLS handshake as
    ``ConnectError``, a dropped connection or broken reply as ``RemoteProtocolError``,
    any other socket error as ``NetworkError``, a CR/LF in a header as
    ``LocalProtocolError``.
    """

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self._ssl_context = ssl_context
        self._connection: Connection | None = None
        self._origin: tuple[str, str, int] | None = None

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` and read the whole response (on a new connection if stale)."""
        timeouts: dict[str, float | None] = request.extensions.get("timeout", {})
        body = request.read()
        try:
            head = encode_head(request.method, _target(request), _wire_headers(request, body))
        except ValueError as exc:
            raise httpx.LocalProtocolError(str(exc), request=request) from None
        connection = self._connection_for(request, timeouts)
        try:
            raw = connection.exchange(request.method, head, body)
        except BaseException as exc:
            self.close()
            mapped = _mapped(exc, request, phase="read")
            if mapped is exc:
                raise
            raise mapped from exc
        if raw.will_close:
            self.close()
        return httpx.Response(
            raw.status,
            headers=raw.headers,
            stream=httpx.ByteStream(raw.body),
            extensions={"http_version": raw.version, "reason_phrase": raw.reason.encode()},
        )

    def close(self) -> None:
        """Close the connection (the next request opens a new one)."""
        connection, self._connection, self._origin = self._connection, None, None
        if connection is not None:
            connection.close()

    def _connection_for(
        self, request: httpx.Request, timeouts: dict[str, float | None]
    ) -> Connection:
        url = request.url
        scheme = url.scheme
        if scheme not in _DEFAULT_PORTS:
            raise httpx.UnsupportedProtocol(f"unsupported URL scheme {scheme!r}", request=request)
        host = url.raw_host.decode("ascii")
        origin = (scheme, host, url.port or _DEFAULT_PORTS[scheme])
        connection = self._connection
        if connection is not None and self._origin == origin:
            if not connection.is_stale():
                return connection
            logger.debug("kept-alive connection to %s was closed; reconnecting", host)
        self.close()
        try:
            sock = self._connect(origin, timeouts.get("connect"))
            sock.settimeout(timeouts.get("read"))
        except BaseException as exc:
            mapped = _mapped(exc, request, phase="connect")
            if mapped is exc:
                raise
            raise mapped from exc
        self._connection, self._origin = Connection(sock), origin
        return self._connection

    def _connect(self, origin: tuple[str, str, int], timeout: float | None) -> socket.socket:
        scheme, host, port = origin
        sock = socket.create_connection((host, port), timeout=timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if scheme == "https":
                if self._ssl_context is None:
                    self._ssl_context = httpx.create_ssl_context()
                sock = self._ssl_context.wrap_socket(sock, server_hostname=host)
        except BaseException:
            sock.close()
            raise
        return sock


def _target(request: httpx.Request) -> str:
    return request.url.raw_path.decode("ascii")


def _wire_headers(request: httpx.Request, body: bytes) -> list[tuple[bytes, bytes]]:
    """The request's headers; a chunked body goes out whole with a Content-Length."""
    raw = request.headers.raw
    if "transfer-encoding" not in request.headers:
        return raw
    headers = [(k, v) for k, v in raw if k.lower() not in (b"transfer-encoding", b"content-length")]
    headers.append((b"Content-Length", str(len(body)).encode("ascii")))
    return headers


def _mapped(exc: BaseException, request: httpx.Request, *, phase: str) -> BaseException:
    """The httpx exception for a socket or protocol error (others, e.g. Ctrl-C, as is)."""
    if isinstance(exc, httpx.HTTPError):
        return exc
    message = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    error: Any
    if isinstance(exc, TimeoutError | socket.timeout):
        error = httpx.ConnectTimeout if phase == "connect" else httpx.ReadTimeout
    elif phase == "connect" and isinstance(exc, OSError):
        error = httpx.ConnectError
    elif isinstance(exc, ProtocolError | ConnectionError):
        error = httpx.RemoteProtocolError
    elif isinstance(exc, OSError):
        error = httpx.NetworkError
    else:
        return exc
    mapped: BaseException = error(message, request=request)
    return mapped
