"""HostileServer over real sockets (stdlib clients only): each behaviour, TLS, prompt stop."""

from __future__ import annotations

import http.client
import json
import logging
import socket
import ssl
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dspex_actors.testing import (
    HOSTILE_BEHAVIOURS,
    STALE_REPLY_CONTENT,
    HostileServer,
    self_signed_certificate,
    server_ssl_context,
)

MIB = 1 << 20
CHAT_PATH = "/v1/chat/completions"
JSON_HEADERS = {"Content-Type": "application/json"}
TIMEOUT = 5.0


def chat_body(content: str) -> bytes:
    messages = [{"role": "system", "content": "be terse"}, {"role": "user", "content": content}]
    return json.dumps({"model": "any", "messages": messages}).encode()


def request_bytes(content: str, *, close: bool = False) -> bytes:
    body = chat_body(content)
    head = (
        f"POST {CHAT_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        + ("Connection: close\r\n" if close else "")
        + "\r\n"
    )
    return head.encode() + body


def content_of(body: bytes) -> str:
    data = json.loads(body)
    [choice] = data["choices"]
    text: str = choice["message"]["content"]
    return text


class Wire:
    """A raw client connection with a receive buffer: reads responses, keeps what follows."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = bytearray()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def recv(self, size: int = 65536) -> bytes:
        data = self.sock.recv(size)
        if not data:
            raise EOFError("the server closed the connection")
        self.buffer += data
        return data

    def read_head(self) -> tuple[int, dict[str, str]]:
        while b"\r\n\r\n" not in self.buffer:
            self.recv()
        head, _, rest = bytes(self.buffer).partition(b"\r\n\r\n")
        self.buffer = bytearray(rest)
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return int(status_line.split()[1]), headers

    def read_exactly(self, size: int) -> bytes:
        while len(self.buffer) < size:
            self.recv()
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        return data

    def read_response(self) -> tuple[int, dict[str, str], bytes]:
        status, headers = self.read_head()
        return status, headers, self.read_exactly(int(headers["content-length"]))

    def closed_by_server(self) -> bool:
        """Read (and drop) until the server closes; False if it did not within TIMEOUT."""
        try:
            while self.sock.recv(MIB):
                pass
        except TimeoutError:
            return False
        except (ConnectionError, ssl.SSLError):
            pass
        return True


@pytest.fixture
def serve() -> Iterator[Callable[..., HostileServer]]:
    """``serve(behaviour, **options)`` → a started HostileServer, stopped at teardown."""
    servers: list[HostileServer] = []

    def factory(behaviour: str, **options: Any) -> HostileServer:
        server = HostileServer(behaviour, **options).start()
        servers.append(server)
        return server

    yield factory
    for server in reversed(servers):
        server.stop()


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def connect(tls_files: tuple[Path, Path]) -> Iterator[Callable[..., Wire]]:
    """``connect(server)`` → a Wire to it (TLS trusting the test certificate if it serves TLS)."""
    socks: list[socket.socket] = []

    def factory(server: HostileServer) -> Wire:
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT)
        if server.url.startswith("https:"):
            client = ssl.create_default_context(cafile=tls_files[0])
            sock = client.wrap_socket(sock, server_hostname="127.0.0.1")
        socks.append(sock)
        return Wire(sock)

    yield factory
    for sock in socks:
        sock.close()


def tls_options(tls: bool, tls_files: tuple[Path, Path]) -> dict[str, Any]:
    return {"ssl_context": server_ssl_context(*tls_files)} if tls else {}


def post(server: HostileServer, content: str) -> tuple[http.client.HTTPResponse, bytes]:
    """A one-off POST with http.client: the response (headers) and its whole body."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=TIMEOUT)
    try:
        conn.request("POST", CHAT_PATH, body=chat_body(content), headers=JSON_HEADERS)
        response = conn.getresponse()
        return response, response.read()
    finally:
        conn.close()


# --- construction -------------------------------------------------------------------


def test_unknown_behaviour_is_rejected_with_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown behaviour 'sulky'") as caught:
        HostileServer("sulky")
    for name in HOSTILE_BEHAVIOURS:
        assert name in str(caught.value)
    assert len(HOSTILE_BEHAVIOURS) == 10


@pytest.mark.parametrize(
    ("behaviour", "options", "error"),
    [
        ("normal", {"interval": 1.0}, TypeError),
        ("trickle", {"delay": 1.0}, TypeError),
        ("oversized", {"size": 1.5}, TypeError),
        ("trickle", {"interval": True}, TypeError),
        ("trickle", {"interval": -1.0}, ValueError),
        ("gzip_bomb", {"decoded_size": 10}, ValueError),
    ],
)
def test_bad_options_are_rejected(
    behaviour: str, options: dict[str, Any], error: type[Exception]
) -> None:
    with pytest.raises(error, match="option"):
        HostileServer(behaviour, **options)


# --- normal --------------------------------------------------------------------------


def test_normal_serves_openai_completions_keep_alive() -> None:
    with HostileServer("normal") as server:
        assert server.url == f"http://127.0.0.1:{server.port}/v1"
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=TIMEOUT)
        try:
            for index in range(3):
                conn.request("POST", CHAT_PATH, body=chat_body(f"q{index}"), headers=JSON_HEADERS)
                response = conn.getresponse()
                assert response.status == 200
                assert response.getheader("Content-Type") == "application/json"
                data = json.loads(response.read())
                assert data["object"] == "chat.completion"
                assert data["model"] == "hostile-model"
                assert data["id"].startswith("chatcmpl-")
                [choice] = data["choices"]
                assert choice["index"] == 0
                assert choice["finish_reason"] == "stop"
                assert choice["message"] == {"role": "assistant", "content": f"reply to: q{index}"}
                assert data["usage"] == {
                    "prompt_tokens": 1,
                    "completion_tokens": 1,
                    "total_tokens": 2,
                }
        finally:
            conn.close()
        assert (server.connections, server.requests) == (1, 3)
        port = server.port
    assert not server.running
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT).close()


def test_other_paths_get_404_and_unreadable_requests_400(
    serve: Callable[..., HostileServer], connect: Callable[..., Wire]
) -> None:
    server = serve("endless")  # only chat requests misbehave
    wire = connect(server)
    wire.send(b"GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n")
    status, _, body = wire.read_response()
    assert status == 404
    assert "no route" in json.loads(body)["error"]["message"]
    wire.send(b"NONSENSE\r\n\r\n")
    status, headers, _ = wire.read_response()
    assert (status, headers["connection"]) == (400, "close")
    assert wire.closed_by_server()


# --- trickle ---------------------------------------------------------------------------


def test_trickle_sends_the_body_one_byte_per_interval(
    serve: Callable[..., HostileServer], connect: Callable[..., Wire]
) -> None:
    interval = 0.05
    server = serve("trickle", interval=interval)
    wire = connect(server)
    wire.send(request_bytes("slow"))
    status, headers = wire.read_head()
    assert status == 200
    assert int(headers["content-length"]) > 100
    started = time.monotonic()
    sizes = [len(wire.recv()) for _ in range(6)]
    elapsed = time.monotonic() - started
    assert sum(sizes) <= 7  # nothing arrives in bulk
    assert elapsed >= 5 * interval * 0.9  # six bytes need at least five more intervals
    assert elapsed < 3.0
    assert bytes(wire.buffer).startswith(b'{"id')


def test_trickle_body_is_a_whole_normal_reply(serve: Callable[..., HostileServer]) -> None:
    server = serve("trickle", interval=0.001)
    response, body = post(server, "patience")
    assert len(body) == int(response.getheader("Content-Length") or 0)
    assert content_of(body) == "reply to: patience"


# --- endless, oversized ----------------------------------------------------------------


def test_endless_chunked_reply_never_ends(
    serve: Callable[..., HostileServer], connect: Callable[..., Wire]
) -> None:
    server = serve("endless")
    wire = connect(server)
    wire.send(request_bytes("forever"))
    status, headers = wire.read_head()
    assert status == 200
    assert headers["transfer-encoding"] == "chunked"
    assert "content-length" not in headers
    while len(wire.buffer) < 3 * MIB:
        wire.recv(MIB)
    size_line, _, rest = bytes(wire.buffer[:200]).partition(b"\r\n")
    assert int(size_line, 16) > 0
    assert rest.startswith(b'{"id"')
    assert b"\r\n0\r\n\r\n" not in wire.buffer
    wire.sock.close()
    assert server.wait_connections_closed(TIMEOUT)  # the server noticed and let go


@pytest.mark.parametrize("size", [10, 300_000])
def test_oversized_streams_exactly_size_bytes(
    serve: Callable[..., HostileServer], size: int
) -> None:
    server = serve("oversized", size=size)
    response, body = post(server, "big")
    assert response.getheader("Content-Length") == str(size)
    assert len(body) == size
    assert body.startswith(b'{"id": "chatcmpl-'[:size])
    if size > 1000:
        assert content_of(body).strip() == ""  # valid JSON: a completion of spaces


def test_oversized_default_announces_200_mib(
    serve: Callable[..., HostileServer], connect: Callable[..., Wire]
) -> None:
    server = serve("oversized")
    wire = connect(server)
    wire.send(request_bytes("big"))
    status, headers = wire.read_head()
    assert (status, headers["content-length"]) == (200, str(200 * MIB))
    while len(wire.buffer) < 2 * MIB:
        wire.recv(MIB)
    assert wire.buffer.startswith(b'{"id"')
    wire.sock.close()
    assert server.wait_connections_closed(TIMEOUT)


# --- gzip bomb ---------------------------------------------------------------------------


def test_gzip_bomb_default_is_small_and_expands(serve: Callable[..., HostileServer]) -> None:
    server = serve("gzip_bomb")
    response, body = post(server, "bomb")
    assert response.getheader("Content-Encoding") == "gzip"
    assert len(body) == int(response.getheader("Content-Length") or 0)
    assert 100_000 < len(body) < MIB  # 632 MiB compress to a few hundred KB
    inflater = zlib.decompressobj(wbits=31)
    decoded = inflater.decompress(body, 8 * MIB)
    consumed = len(body) - len(inflater.unconsumed_tail)
    assert len(decoded) == 8 * MIB
    assert consumed * 500 < len(decoded)
    assert decoded.startswith(b'{"id"')


def test_gzip_bomb_decodes_to_exactly_decoded_size(serve: Callable[..., HostileServer]) -> None:
    size = 3 * MIB + 12345  # whole 1 MiB runs and a remainder
    _, body = post(serve("gzip_bomb", decoded_size=size), "bomb")
    inflater = zlib.decompressobj(wbits=31)  # checks the CRC and length trailer
    parts = []
    data = body
    while not inflater.eof:
        parts.append(inflater.decompress(data, MIB))
        data = inflater.unconsumed_tail
    decoded = b"".join(parts)
    assert len(decoded) == size
    assert inflater.unused_data == b""
    assert content_of(decoded).strip() == ""


# --- unsolicited replies -------------------------------------------------------------------


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
def test_extra_reply_same_read_follows_the_first_reply(
    serve: Callable[..., HostileServer],
    connect: Callable[..., Wire],
    tls_files: tuple[Path, Path],
    tls: bool,
) -> None:
    server = serve("extra_reply_same_read", **tls_options(tls, tls_files))
    wire = connect(server)
    wire.send(request_bytes("first"))
    first_read = wire.recv()
    assert b"reply to: first" in first_read
    assert STALE_REPLY_CONTENT.encode() in first_read  # in the same read
    for expected in ("reply to: first", STALE_REPLY_CONTENT):
        status, _, body = wire.read_response()
        assert (status, content_of(body)) == (200, expected)
    wire.send(request_bytes("second"))
    _, _, body = wire.read_response()
    assert content_of(body) == "reply to: second"
    assert server.extra_replies == 1
    other = connect(server)  # every connection's first reply gets one
    other.send(request_bytes("third"))
    assert [content_of(other.read_response()[2]) for _ in range(2)] == [
        "reply to: third",
        STALE_REPLY_CONTENT,
    ]
    assert (server.extra_replies, server.requests) == (2, 3)


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
def test_extra_reply_later_arrives_on_the_idle_connection(
    serve: Callable[..., HostileServer],
    connect: Callable[..., Wire],
    tls_files: tuple[Path, Path],
    tls: bool,
) -> None:
    server = serve("extra_reply_later", delay=0.05, **tls_options(tls, tls_files))
    wire = connect(server)
    wire.send(request_bytes("first"))
    assert content_of(wire.read_response()[2]) == "reply to: first"
    assert server.wait_extra_sent(TIMEOUT)
    status, _, body = wire.read_response()
    assert (status, content_of(body)) == (200, STALE_REPLY_CONTENT)
    wire.send(request_bytes("second"))
    assert content_of(wire.read_response()[2]) == "reply to: second"
    assert not server.wait_extra_sent(0.2, count=2)  # one per connection


# --- redirect, dropped reply ---------------------------------------------------------------


def test_redirect_points_elsewhere(serve: Callable[..., HostileServer]) -> None:
    server = serve("redirect")
    response, body = post(server, "go")
    assert response.status == 301
    assert response.reason == "Moved Permanently"
    assert response.getheader("Location") == "http://127.0.0.1:1/elsewhere"
    assert response.getheader("Content-Type") == "text/html"
    assert b"Moved Permanently" in body


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
def test_close_after_headers_drops_the_body(
    serve: Callable[..., HostileServer], tls_files: tuple[Path, Path], tls: bool
) -> None:
    server = serve("close_after_headers", **tls_options(tls, tls_files))
    if tls:
        context = ssl.create_default_context(cafile=tls_files[0])
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            "127.0.0.1", server.port, timeout=TIMEOUT, context=context
        )
    else:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=TIMEOUT)
    try:
        conn.request("POST", CHAT_PATH, body=chat_body("lost"), headers=JSON_HEADERS)
        response = conn.getresponse()
        assert response.status == 200
        assert int(response.getheader("Content-Length") or 0) > 0
        with pytest.raises(http.client.IncompleteRead):
            response.read()
    finally:
        conn.close()


def test_empty_stream_then_close_ends_the_stream_at_once_and_drops_the_next_request(
    serve: Callable[..., HostileServer], connect: Callable[..., Wire]
) -> None:
    server = serve("empty_stream_then_close")
    wire = connect(server)
    wire.send(request_bytes("overflow"))
    status, headers = wire.read_head()
    assert status == 200 and headers["content-type"] == "text/event-stream"
    assert headers["transfer-encoding"] == "chunked" and "connection" not in headers
    assert wire.read_exactly(5) == b"0\r\n\r\n"  # no event, no data: [DONE]
    wire.send(request_bytes("reused"))
    assert wire.closed_by_server() and wire.buffer == b""  # closed, unanswered
    assert server.requests == 2
    _, body = post(server, "fresh")  # a new connection is served normally
    assert content_of(body) == "reply to: fresh"


# --- TLS ---------------------------------------------------------------------------------


def test_tls_is_trusted_only_with_the_certificate_as_ca(
    serve: Callable[..., HostileServer], tls_files: tuple[Path, Path]
) -> None:
    server = serve("normal", ssl_context=server_ssl_context(*tls_files))
    assert server.url == f"https://127.0.0.1:{server.port}/v1"
    trusting = ssl.create_default_context(cafile=tls_files[0])
    conn = http.client.HTTPSConnection("127.0.0.1", server.port, timeout=TIMEOUT, context=trusting)
    try:
        conn.request("POST", CHAT_PATH, body=chat_body("secure"), headers=JSON_HEADERS)
        assert content_of(conn.getresponse().read()) == "reply to: secure"
    finally:
        conn.close()
    default = ssl.create_default_context()
    conn = http.client.HTTPSConnection("127.0.0.1", server.port, timeout=TIMEOUT, context=default)
    try:
        with pytest.raises(ssl.SSLCertVerificationError):
            conn.request("POST", CHAT_PATH, body=chat_body("x"), headers=JSON_HEADERS)
    finally:
        conn.close()
    assert server.wait_connections_closed(TIMEOUT)
    assert (server.connections, server.requests) == (2, 1)


def test_missing_openssl_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "")
    with pytest.raises(RuntimeError, match="'openssl' command is not installed"):
        self_signed_certificate(tmp_path)


# --- stop, quiet disconnects -----------------------------------------------------------------


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
@pytest.mark.parametrize("behaviour", ["endless", "oversized", "trickle"])
def test_stop_is_prompt_mid_reply_with_stalled_clients(
    connect: Callable[..., Wire], tls_files: tuple[Path, Path], behaviour: str, tls: bool
) -> None:
    server = HostileServer(behaviour, **tls_options(tls, tls_files)).start()
    port = server.port
    try:
        streaming = connect(server)
        streaming.send(request_bytes("stall"))
        assert streaming.read_head()[0] == 200  # the reply is under way; now stop reading
        idle = connect(server)  # keep-alive, no request
        handshaking = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    finally:
        started = time.monotonic()
        server.stop()
        elapsed = time.monotonic() - started
    try:
        assert elapsed < 2.0
        assert not [t for t in threading.enumerate() if t.name.startswith("dspex-hostile")]
        assert streaming.closed_by_server()
        assert idle.closed_by_server()
        assert Wire(handshaking).closed_by_server()
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    finally:
        handshaking.close()


def test_client_disconnects_are_logged_at_debug_only(
    serve: Callable[..., HostileServer],
    connect: Callable[..., Wire],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    server = serve("endless")
    for _ in range(3):
        wire = connect(server)
        wire.send(request_bytes("bye"))
        wire.read_head()
        wire.recv()
        wire.sock.close()  # unread data: the server's next write gets a reset
    assert server.wait_connections_closed(TIMEOUT)
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING]
    # (asyncio's own debug mode, python -X dev, logs resets at DEBUG with a traceback)
    tracebacks = [r for r in caplog.records if r.exc_info and r.levelno > logging.DEBUG]
    assert not loud
    assert not tracebacks
    ended = [r for r in caplog.records if "connection ended" in r.getMessage()]
    assert len(ended) == 3
    assert all(r.levelno == logging.DEBUG for r in ended)
