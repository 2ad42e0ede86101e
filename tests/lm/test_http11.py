"""The HTTP/1.1 codec on a socket pair: body framings, interim replies, keep-alive, errors."""

from __future__ import annotations

import gzip
import socket
import threading
from collections.abc import Iterator

import httpx
import pytest

from dspex_actors.lm._http11 import Connection, ProtocolError, RawResponse, encode_head
from dspex_actors.lm._transport import SocketTransport
from tests._support import read_request

HEAD = encode_head("POST", "/v1/chat/completions", [(b"Host", b"x"), (b"Content-Length", b"2")])


@pytest.fixture
def pair() -> Iterator[tuple[Connection, socket.socket]]:
    """A Connection on one end of a socket pair; the test plays the server on the other."""
    ours, theirs = socket.socketpair()
    ours.settimeout(5.0)
    connection = Connection(ours)
    yield connection, theirs
    connection.close()
    theirs.close()


def reply(
    pair: tuple[Connection, socket.socket], wire: bytes, *, close: bool = False
) -> RawResponse:
    connection, server = pair
    server.sendall(wire)
    if close:
        server.shutdown(socket.SHUT_WR)
    return connection.exchange("POST", HEAD, b"{}")


def test_request_goes_out_in_one_piece(pair: tuple[Connection, socket.socket]) -> None:
    reply(pair, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    sent = pair[1].recv(65536)
    assert sent == b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"


def test_content_length_body_keeps_the_connection(pair: tuple[Connection, socket.socket]) -> None:
    first = reply(
        pair, b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
    )
    assert (first.status, first.body, first.will_close) == (200, b"{}", False)
    assert first.headers == [(b"Content-Type", b"application/json"), (b"Content-Length", b"2")]
    second = reply(pair, b"HTTP/1.1 201 Created\r\nContent-Length: 3\r\n\r\nabc")
    assert (second.status, second.reason, second.body, second.will_close) == (
        201,
        "Created",
        b"abc",
        False,
    )


def test_chunked_body_with_extensions_and_trailers(pair: tuple[Connection, socket.socket]) -> None:
    wire = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;ext=1\r\nhello\r\n"
        b"6\r\n world\r\n"
        b"0\r\nX-Trailer: yes\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnext"
    )
    first = reply(pair, wire)
    assert first.body == b"hello world" and not first.will_close
    second = pair[0].exchange("POST", HEAD, b"{}")  # its reply is already buffered
    assert second.body == b"next"


def test_interim_responses_are_skipped(pair: tuple[Connection, socket.socket]) -> None:
    wire = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    )
    raw = reply(pair, wire)
    assert (raw.status, raw.body) == (200, b"ok")


def test_close_delimited_body(pair: tuple[Connection, socket.socket]) -> None:
    raw = reply(pair, b"HTTP/1.1 200 OK\r\n\r\nuntil the end", close=True)
    assert raw.body == b"until the end" and raw.will_close


@pytest.mark.parametrize(
    ("head", "closes"),
    [
        (b"HTTP/1.1 200 OK\r\nConnection: close\r\n", True),
        (b"HTTP/1.1 200 OK\r\nConnection: Keep-Alive, Close\r\n", True),
        (b"HTTP/1.0 200 OK\r\n", True),
        (b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n", False),
        (b"HTTP/1.1 200 OK\r\n", False),
    ],
)
def test_keep_alive_rules(
    pair: tuple[Connection, socket.socket], head: bytes, closes: bool
) -> None:
    raw = reply(pair, head + b"Content-Length: 2\r\n\r\nok")
    assert raw.will_close is closes


def test_folded_header_and_no_body_statuses(pair: tuple[Connection, socket.socket]) -> None:
    raw = reply(pair, b"HTTP/1.1 204 No Content\r\nX-Long: part one\r\n  part two\r\n\r\n")
    assert raw.status == 204 and raw.body == b""
    assert raw.headers == [(b"X-Long", b"part one part two")]


@pytest.mark.parametrize(
    ("wire", "problem"),
    [
        (b"", "disconnected without sending a response"),
        (b"SPDY/3 200 OK\r\n\r\n", "malformed status line"),
        (b"HTTP/1.1 2x0 OK\r\n\r\n", "malformed status line"),
        (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "malformed response header line"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", "after 5 of 10"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nok", "conflicting"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "invalid Content-Length"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "chunk size"),
        (b"HTTP/1.1 200 OK\r\nContent-Type: appl", "middle of the response headers"),
    ],
)
def test_broken_replies_raise_protocol_errors(
    pair: tuple[Connection, socket.socket], wire: bytes, problem: str
) -> None:
    with pytest.raises(ProtocolError, match=problem):
        reply(pair, wire, close=True)


def test_header_injection_is_refused() -> None:
    with pytest.raises(ValueError, match="Authorization"):
        encode_head("POST", "/", [(b"Authorization", b"Bearer k\r\nX-Evil: 1")])


def test_stale_connection_is_detected(pair: tuple[Connection, socket.socket]) -> None:
    connection, server = pair
    assert not connection.is_stale()
    server.close()
    assert connection.is_stale()


def test_transport_decodes_gzip_and_maps_protocol_errors() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    body = gzip.compress(b'{"ok": true}')
    replies = [
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n%s"
        % (len(body), body),
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
    ]

    def serve() -> None:
        conn, _ = listener.accept()
        with conn, conn.makefile("rb") as reader:
            for wire in replies:
                read_request(reader)
                conn.sendall(wire)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/v1/chat/completions"
    transport = SocketTransport()
    try:
        request = httpx.Request("POST", url, json={"q": 1}, extensions={"timeout": {"read": 5.0}})
        response = transport.handle_request(request)
        assert response.read() == b'{"ok": true}'
        assert response.http_version == "HTTP/1.1"
        with pytest.raises(httpx.RemoteProtocolError, match="after 5 of 10"):
            transport.handle_request(httpx.Request("POST", url, json={"q": 2}))
    finally:
        transport.close()
        thread.join(5.0)
        listener.close()
    assert not thread.is_alive()


def test_transport_refuses_header_injection() -> None:
    transport = SocketTransport()
    request = httpx.Request("POST", "http://127.0.0.1:9/x", headers={"X-A": "ok"})
    request.headers._list.append((b"x-b", b"x-b", b"bad\r\nvalue"))
    with pytest.raises(httpx.LocalProtocolError, match="x-b"):
        transport.handle_request(request)
