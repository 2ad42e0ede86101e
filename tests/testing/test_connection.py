"""The local server's request reading (httptools, fed without sockets), over sockets, over TLS."""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from dspex_actors.testing import LocalLMServer, self_signed_certificate, server_ssl_context
from dspex_actors.testing._connection import Channel, ProtocolError, Request
from dspex_actors.testing._http_replies import reply_bytes

BODY = b'{"messages": [{"role": "user", "content": "hi"}]}'
REQUEST = (
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    b"Content-Length: " + str(len(BODY)).encode() + b"\r\n\r\n" + BODY
)


class _Owner:
    """Records what a channel hands its loop."""

    def __init__(self) -> None:
        self.items: list[Request | ProtocolError] = []

    def opened(self, channel: Channel) -> None:
        pass

    def arrived(self, channel: Channel, item: Request | ProtocolError) -> None:
        self.items.append(item)

    def writable(self, channel: Channel) -> None:
        pass

    def lost(self, channel: Channel) -> None:
        pass


def _read(*pieces: bytes) -> list[Request | ProtocolError]:
    owner = _Owner()
    channel = Channel(owner)
    for piece in pieces:
        channel.data_received(piece)
    return owner.items


def test_a_request_fed_byte_by_byte() -> None:
    assert _read(*(REQUEST[i : i + 1] for i in range(len(REQUEST)))) == [
        Request(
            "POST",
            "/v1/chat/completions",
            {"host": "x", "content-type": "application/json", "content-length": str(len(BODY))},
            BODY,
            True,
        )
    ]


def test_pipelined_requests_come_out_in_order() -> None:
    models = b"GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n"
    items = _read(REQUEST + models + REQUEST[:30], REQUEST[30:])
    assert [(r.method, r.target) for r in items if isinstance(r, Request)] == [
        ("POST", "/v1/chat/completions"),
        ("GET", "/v1/models"),
        ("POST", "/v1/chat/completions"),
    ]
    assert len(items) == 3


@pytest.mark.parametrize(
    ("head", "keep_alive", "http11"),
    [
        (b"GET /a HTTP/1.1\r\n\r\n", True, True),
        (b"GET /a HTTP/1.1\r\nConnection: close\r\n\r\n", False, True),
        (b"GET /a HTTP/1.0\r\n\r\n", False, False),
        (b"GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", True, False),
    ],
)
def test_keep_alive_follows_version_and_connection(
    head: bytes, keep_alive: bool, http11: bool
) -> None:
    [request] = _read(head)
    assert isinstance(request, Request)
    assert (request.keep_alive, request.http11) == (keep_alive, http11)


def test_nothing_is_read_after_a_closing_request() -> None:
    """The server closes after answering it: bytes behind it end the stream."""
    items = _read(b"GET /a HTTP/1.1\r\nConnection: close\r\n\r\n" + REQUEST)
    assert [type(item) for item in items] == [Request, ProtocolError]


def test_a_chunked_body_is_joined() -> None:
    head = b"POST /v1/chat/completions HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
    chunks = b"".join(
        b"%x\r\n%b\r\n" % (len(BODY[i : i + 7]), BODY[i : i + 7]) for i in range(0, len(BODY), 7)
    )
    [request] = _read(head, chunks[:20], chunks[20:] + b"0\r\n\r\n")
    assert isinstance(request, Request) and request.body == BODY


def test_header_values_are_trimmed_and_names_lower_cased() -> None:
    [request] = _read(b"GET /x HTTP/1.1\r\nX-Api-Key:   k 1  \r\n\r\n")
    assert isinstance(request, Request) and request.headers == {"x-api-key": "k 1"}


def test_an_upgrade_is_ignored_and_what_follows_is_read() -> None:
    upgrade = b"GET /a HTTP/1.1\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n"
    items = _read(upgrade + b"GET /b HTTP/1.1\r\n\r\n")
    assert [r.target for r in items if isinstance(r, Request)] == ["/a", "/b"]
    assert len(items) == 2


@pytest.mark.parametrize(
    ("data", "status", "fragment"),
    [
        (b"NONSENSE\r\n", 400, "Invalid method"),
        (b"GET / SPDY\r\n\r\n", 400, "malformed request"),
        (b"G" * 70_000, 400, "malformed request"),
        (b"POST /x HTTP/1.1\nContent-Length: 2\n\nok", 400, "malformed request"),
        (b"POST / HTTP/1.1\r\nContent-Length: many\r\n\r\n", 400, "Content-Length"),
        (b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 101 + b"\r\n", 431, "too large"),
        (b"GET / HTTP/1.1\r\nX: " + b"y" * 300_000, 431, "too large"),
        (b"GET /" + b"a" * 300_000, 431, "too large"),
    ],
)
def test_unreadable_requests_end_the_stream(data: bytes, status: int, fragment: str) -> None:
    owner = _Owner()
    channel = Channel(owner)
    for start in range(0, len(data), 65536):  # as the transport hands it over
        channel.data_received(data[start : start + 65536])
    [error] = owner.items
    assert isinstance(error, ProtocolError)
    assert error.status == status and fragment in str(error)
    channel.data_received(REQUEST)
    assert owner.items == [error]  # nothing after the error is read


def test_reply_bytes_layout() -> None:
    data = reply_bytes(429, b"{}", [("Retry-After", "1")], close=True)
    assert data == (
        b"HTTP/1.1 429 Too Many Requests\r\nServer: dspex-local-lm/1.0\r\n"
        b"Content-Type: application/json\r\nContent-Length: 2\r\nRetry-After: 1\r\n"
        b"Connection: close\r\n\r\n{}"
    )
    assert reply_bytes(599, b"").startswith(b"HTTP/1.1 599 Error\r\n")


def _exchange(server: LocalLMServer, data: bytes) -> bytes:
    """Send ``data`` and read until the server closes."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_a_chunked_request_is_answered(lm_server: LocalLMServer) -> None:
    payload = json.dumps({"messages": [{"role": "user", "content": "What is 2 + 5?"}]}).encode()
    half = len(payload) // 2
    body = b"".join(b"%x\r\n%b\r\n" % (len(p), p) for p in (payload[:half], payload[half:]))
    reply = _exchange(
        lm_server,
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n" + body + b"0\r\n\r\n",
    )
    assert reply.startswith(b"HTTP/1.1 200 OK\r\n")
    assert json.loads(reply.split(b"\r\n\r\n", 1)[1])["choices"][0]["message"]["content"] == "7"


def test_too_many_headers_get_431_and_a_close(lm_server: LocalLMServer) -> None:
    reply = _exchange(lm_server, b"GET /v1/models HTTP/1.1\r\n" + b"X: y\r\n" * 101 + b"\r\n")
    assert reply.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
    assert b"Connection: close\r\n" in reply and b"too large" in reply


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[LocalLMServer, Path]]:
    cert, key = self_signed_certificate(tmp_path)
    with LocalLMServer(ssl_context=server_ssl_context(cert, key)) as server:
        yield server, cert


def test_https_is_served_with_the_given_certificate(
    tls_server: tuple[LocalLMServer, Path],
) -> None:
    server, cert = tls_server
    assert server.url.startswith("https://127.0.0.1:")
    messages = [{"role": "user", "content": "What is 3 + 4?"}]
    with httpx.Client(verify=ssl.create_default_context(cafile=str(cert))) as client:
        for _ in range(2):  # the second on the same TLS connection
            reply = client.post(f"{server.url}/chat/completions", json={"messages": messages})
            assert reply.json()["choices"][0]["message"]["content"] == "7"
    assert server.stats().status(200) == 2


def test_stop_returns_with_a_tls_handshake_never_finished(tmp_path: Path) -> None:
    server = LocalLMServer(ssl_context=server_ssl_context(*self_signed_certificate(tmp_path)))
    server.start()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as silent:
        started = time.monotonic()
        server.stop()
        assert time.monotonic() - started < 5
        assert silent.recv(100) == b""  # closed by the server
    assert not [t for t in threading.enumerate() if t.name.startswith("dspex-lm-")]
