"""The local server's HTTP/1.1 parser and reply writer, without sockets."""

from __future__ import annotations

import pytest

from dspex_actors.testing._http import ProtocolError, Request, RequestReader, reply_bytes

BODY = b'{"messages": [{"role": "user", "content": "hi"}]}'
REQUEST = (
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    b"Content-Length: " + str(len(BODY)).encode() + b"\r\n\r\n" + BODY
)


def test_a_request_fed_byte_by_byte() -> None:
    reader = RequestReader()
    done: list[Request | ProtocolError] = []
    for index in range(len(REQUEST)):
        done.extend(reader.feed(REQUEST[index : index + 1]))
    assert done == [
        Request(
            "POST",
            "/v1/chat/completions",
            {"host": "x", "content-type": "application/json", "content-length": str(len(BODY))},
            BODY,
            True,
        )
    ]


def test_pipelined_requests_come_out_in_order_with_their_keep_alive() -> None:
    close = b"GET /v1/models HTTP/1.1\r\nConnection: close\r\n\r\n"
    http10 = b"GET /a HTTP/1.0\r\n\r\n"
    http10_keep = b"GET /b HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
    reader = RequestReader()
    first = reader.feed(REQUEST + close + http10[:7])
    rest = reader.feed(http10[7:] + http10_keep)
    requests = [r for r in first + rest if isinstance(r, Request)]
    assert [(r.target, r.keep_alive) for r in requests] == [
        ("/v1/chat/completions", True),
        ("/v1/models", False),
        ("/a", False),
        ("/b", True),
    ]
    assert requests[0].body == BODY


def test_bare_lf_line_endings() -> None:
    [request] = RequestReader().feed(b"POST /x HTTP/1.1\nContent-Length: 2\nX-A:  b \n\nok")
    assert isinstance(request, Request)
    assert (request.headers["x-a"], request.body) == ("b", b"ok")


@pytest.mark.parametrize(
    ("data", "status", "fragment"),
    [
        (b"NONSENSE\r\n", 400, "malformed request line"),
        (b"GET / SPDY\r\n\r\n", 400, "malformed request line"),
        (b"G" * 70_000, 400, "malformed request line"),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 400, "chunked"),
        (b"POST / HTTP/1.1\r\nContent-Length: many\r\n\r\n", 400, "Content-Length"),
        (b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 101 + b"\r\n", 431, "too large"),
    ],
)
def test_unreadable_requests_end_the_stream(data: bytes, status: int, fragment: str) -> None:
    reader = RequestReader()
    *before, error = reader.feed(data)
    assert before == []
    assert isinstance(error, ProtocolError)
    assert error.status == status and fragment in str(error)
    assert reader.feed(REQUEST) == []  # nothing after the error is read


def test_reply_bytes_layout() -> None:
    data = reply_bytes(429, b"{}", [("Retry-After", "1")], close=True)
    assert data == (
        b"HTTP/1.1 429 Too Many Requests\r\nServer: dspex-local-lm/1.0\r\n"
        b"Content-Type: application/json\r\nContent-Length: 2\r\nRetry-After: 1\r\n"
        b"Connection: close\r\n\r\n{}"
    )
    assert reply_bytes(599, b"").startswith(b"HTTP/1.1 599 Error\r\n")
