"""Streamed replies (``"stream": true``): OpenAI chunk format, pacing, faults, stop, counters."""

from __future__ import annotations

import itertools
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from _lmserver_helpers import body, chat_messages

from dspex_actors.testing import (
    ChatRequest,
    Fault,
    LocalLMServer,
    ServerProcess,
    fixed_responder,
)

CHAT = "/chat/completions"
TIMEOUT = httpx.Timeout(10.0)
LONG_TEXT = "[[ ## answer ## ]]\n" + " ".join(f"word{i}" for i in range(40)) + "\n\n"


def _server_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("dspex-lm-")]


def _data_lines(lines: Iterator[str]) -> Iterator[str]:
    """The ``data`` of each SSE event; every other line must be the blank one ending it."""
    expect_blank = False
    for line in lines:
        if expect_blank:
            assert line == "", f"an event must end with a blank line, got {line!r}"
            expect_blank = False
            continue
        assert line.startswith("data: "), f"unexpected SSE line {line!r}"
        expect_blank = True
        yield line.removeprefix("data: ")


def _stream(client: httpx.Client, payload: dict[str, Any]) -> tuple[httpx.Response, list[str]]:
    """POST a streamed request; the response and the data of every event, [DONE] included."""
    with client.stream("POST", CHAT, json=payload) as response:
        if response.status_code != 200:
            response.read()
            return response, []
        return response, list(_data_lines(response.iter_lines()))


def _chunks(events: list[str]) -> list[dict[str, Any]]:
    """The JSON chunks of a complete stream (which must end with [DONE])."""
    assert events[-1] == "[DONE]"
    assert "[DONE]" not in events[:-1]
    return [json.loads(event) for event in events[:-1]]


def _contents(chunks: list[dict[str, Any]]) -> dict[int, str]:
    """Each choice's content, reassembled from its deltas."""
    contents: dict[int, str] = {}
    for chunk in chunks:
        for choice in chunk["choices"]:
            piece = choice["delta"].get("content")
            contents[choice["index"]] = contents.get(choice["index"], "") + (piece or "")
    return contents


@pytest.fixture
def client(lm_server: LocalLMServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=lm_server.url, timeout=TIMEOUT) as http:
        yield http


# --- format ----------------------------------------------------------------------------


def test_stream_is_sse_of_openai_chunks(lm_server: LocalLMServer, client: httpx.Client) -> None:
    response, events = _stream(client, body(chat_messages("What is 2 + 3?"), stream=True))
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream"
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["transfer-encoding"] == "chunked"
    assert "content-length" not in response.headers
    chunks = _chunks(events)
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["id"].startswith("chatcmpl-")
    assert len({c["created"] for c in chunks}) == 1
    assert {c["model"] for c in chunks} == {"local-model"}
    assert all("usage" not in c for c in chunks)  # not asked for
    assert all(len(c["choices"]) == 1 for c in chunks)
    first, *middle, last = [c["choices"][0] for c in chunks]
    assert first == {
        "index": 0,
        "delta": {"role": "assistant", "content": ""},
        "logprobs": None,
        "finish_reason": None,
    }
    assert middle and all(set(c["delta"]) == {"content"} for c in middle)
    assert all(c["finish_reason"] is None for c in middle)
    assert all(len(c["delta"]["content"]) <= lm_server.stream_chunk_chars for c in middle)
    assert (last["delta"], last["finish_reason"]) == ({}, "stop")


def test_reassembled_content_equals_the_non_streamed_reply(
    lm_server: LocalLMServer, client: httpx.Client
) -> None:
    messages = chat_messages("What is 12 * 3?")
    plain = client.post(CHAT, json=body(messages)).json()
    _, events = _stream(client, body(messages, stream=True))
    chunks = _chunks(events)
    content = plain["choices"][0]["message"]["content"]
    assert _contents(chunks) == {0: content}
    assert "[[ ## answer ## ]]\n36" in content
    pieces = [c["choices"][0]["delta"].get("content", "") for c in chunks]
    ends = set(itertools.accumulate(len(piece) for piece in pieces))
    marker = content.index("[[ ## answer ## ]]")  # split across deltas: clients reassemble
    assert any(marker < end < marker + len("[[ ## answer ## ]]") for end in ends)


def test_max_tokens_cuts_the_stream_like_the_reply(
    make_lm_server: Callable[..., LocalLMServer],
) -> None:
    server = make_lm_server(fixed_responder("one two three four five"), stream_chunk_chars=3)
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as http:
        payload = body([{"role": "user", "content": "x"}], max_tokens=2)
        plain = http.post(CHAT, json=payload).json()
        _, events = _stream(http, {**payload, "stream": True})
    chunks = _chunks(events)
    assert _contents(chunks) == {0: "one two"} == {0: plain["choices"][0]["message"]["content"]}
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"


def test_usage_chunk_only_when_asked(lm_server: LocalLMServer, client: httpx.Client) -> None:
    messages = chat_messages("What is 4 + 4?")
    usage = client.post(CHAT, json=body(messages)).json()["usage"]
    with_usage = body(messages, stream=True, stream_options={"include_usage": True})
    *chunks, usage_chunk = _chunks(_stream(client, with_usage)[1])
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"] == usage
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0
    assert all(c["usage"] is None and len(c["choices"]) == 1 for c in chunks)
    for options in ({"include_usage": False}, None):
        without = body(messages, stream=True, stream_options=options)
        assert all("usage" not in c and c["choices"] for c in _chunks(_stream(client, without)[1]))


def test_n_choices_take_turns(make_lm_server: Callable[..., LocalLMServer]) -> None:
    def responder(request: ChatRequest) -> list[str]:  # a callable: runs on a worker thread
        return [f"choice {i} says {'hello ' * (i + 1)}" for i in range(request.n)]

    server = make_lm_server(responder, stream_chunk_chars=5)
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as http:
        payload = body([{"role": "user", "content": "hi"}], n=2)
        plain = http.post(CHAT, json=payload).json()
        _, events = _stream(http, {**payload, "stream": True})
    chunks = _chunks(events)
    indexed = [c["choices"][0] for c in chunks]
    assert [c["index"] for c in indexed[:2]] == [0, 1]
    assert all(c["delta"] == {"role": "assistant", "content": ""} for c in indexed[:2])
    assert [(c["index"], c["finish_reason"]) for c in indexed[-2:]] == [(0, "stop"), (1, "stop")]
    assert {c["index"] for c in indexed[2:4]} == {0, 1}  # interleaved, not one after the other
    expected = {c["index"]: c["message"]["content"] for c in plain["choices"]}
    assert _contents(chunks) == expected
    assert expected[0] != expected[1]


def test_default_model_n_2_streams_both_choices(client: httpx.Client) -> None:
    messages = [{"role": "user", "content": "What is 6 * 7?"}]
    chunks = _chunks(_stream(client, body(messages, n=2, stream=True))[1])
    assert _contents(chunks) == {0: "42", 1: "42"}


# --- pacing ----------------------------------------------------------------------------


def test_stream_interval_spreads_the_events_after_the_latency(
    make_lm_server: Callable[..., LocalLMServer],
) -> None:
    interval, latency = 0.08, 0.1
    server = make_lm_server(  # a callable: answered on a worker, then held, then paced
        lambda request: "abcdefghijklmnop", latency=latency, stream_interval=interval
    )
    assert server.stream_chunk_chars == 8
    arrivals: list[float] = []
    events: list[str] = []
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as http:
        sent = time.monotonic()
        payload = body([{"role": "user", "content": "x"}], stream=True)
        with http.stream("POST", CHAT, json=payload) as response:
            for event in _data_lines(response.iter_lines()):
                arrivals.append(time.monotonic())
                events.append(event)
    assert len(events) == 5  # role, two content deltas, finish, [DONE]
    assert _contents(_chunks(events)) == {0: "abcdefghijklmnop"}
    assert arrivals[0] - sent >= latency
    gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
    assert min(gaps) >= interval / 2, gaps
    # the server sends each event at least an interval after the one before, so the last
    # one cannot arrive sooner than this (a client read delayed under load only adds to it)
    assert arrivals[-1] - sent >= latency + 4 * interval - 0.01, gaps


def test_the_chunked_body_ends_with_done_then_the_last_chunk(lm_server: LocalLMServer) -> None:
    payload = json.dumps(body([{"role": "user", "content": "What is 1 + 1?"}], stream=True))
    data = _exchange_raw(
        lm_server.port, _raw_request(payload.encode()), lambda d: d.endswith(b"\r\n0\r\n\r\n")
    )
    head, _, rest = data.partition(b"\r\n\r\n")
    assert b"Transfer-Encoding: chunked" in head
    assert rest.endswith(b"data: [DONE]\n\n\r\n0\r\n\r\n")


def test_set_stream_pacing_applies_to_later_requests(
    lm_server: LocalLMServer, client: httpx.Client
) -> None:
    messages = [{"role": "user", "content": "What is 100 + 23?"}]
    lm_server.set_stream_pacing(chunk_chars=1)
    chunks = _chunks(_stream(client, body(messages, stream=True))[1])
    assert [c["choices"][0]["delta"].get("content") for c in chunks[1:-1]] == ["1", "2", "3"]
    lm_server.set_stream_pacing(interval=0.0)
    assert lm_server.stream_chunk_chars == 1
    with pytest.raises(ValueError, match="stream_chunk_chars"):
        lm_server.set_stream_pacing(chunk_chars=0)
    with pytest.raises(ValueError, match="stream_interval"):
        LocalLMServer(stream_interval=-1)


# --- connections -------------------------------------------------------------------------


def test_keep_alive_after_streams(make_lm_server: Callable[..., LocalLMServer]) -> None:
    server = make_lm_server(stream_interval=0.001)
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    messages = [{"role": "user", "content": "What is 5 + 5?"}]
    with httpx.Client(base_url=server.url, timeout=TIMEOUT, limits=limits) as http:
        addresses = []
        for _ in range(2):
            with http.stream("POST", CHAT, json=body(messages, stream=True)) as response:
                assert _contents(_chunks(list(_data_lines(response.iter_lines())))) == {0: "10"}
                addresses.append(
                    response.extensions["network_stream"].get_extra_info("client_addr")
                )
            plain = http.post(CHAT, json=body(messages))
            assert plain.json()["choices"][0]["message"]["content"] == "10"
            addresses.append(plain.extensions["network_stream"].get_extra_info("client_addr"))
    assert len(set(addresses)) == 1  # one connection for all four


def _raw_request(payload: bytes, version: str = "HTTP/1.1") -> bytes:
    return (
        f"POST /v1/chat/completions {version}\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\n\r\n"
    ).encode() + payload


def _exchange_raw(port: int, data: bytes, until: Callable[[bytes], bool] | None) -> bytes:
    """Send ``data`` on a new connection; read until ``until(received)`` holds, or EOF."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        received = b""
        while until is None or not until(received):
            piece = sock.recv(65536)
            if not piece:
                break
            received += piece
        return received


def test_a_pipelined_request_waits_for_the_stream_to_end(
    make_lm_server: Callable[..., LocalLMServer],
) -> None:
    server = make_lm_server(stream_interval=0.01)
    streamed = json.dumps(body([{"role": "user", "content": "What is 2 * 21?"}], stream=True))
    plain = json.dumps(body([{"role": "user", "content": "What is 2 * 4?"}]))
    end_of_stream = b"data: [DONE]\n\n\r\n0\r\n\r\n"
    data = _exchange_raw(
        server.port,
        _raw_request(streamed.encode()) + _raw_request(plain.encode()),
        lambda d: d.partition(end_of_stream)[2].endswith(b"}"),
    )
    stream_part, end, second = data.partition(end_of_stream)
    assert end, data
    assert stream_part.startswith(b"HTTP/1.1 200 OK") and b"text/event-stream" in stream_part
    assert second.startswith(b"HTTP/1.1 200 OK") and b"application/json" in second
    reply = json.loads(second.partition(b"\r\n\r\n")[2])
    assert reply["choices"][0]["message"]["content"] == "8"


def test_http10_client_gets_a_stream_ended_by_close(lm_server: LocalLMServer) -> None:
    payload = json.dumps(body([{"role": "user", "content": "What is 3 + 3?"}], stream=True))
    data = _exchange_raw(lm_server.port, _raw_request(payload.encode(), "HTTP/1.0"), None)
    head, _, rest = data.partition(b"\r\n\r\n")
    assert b"Transfer-Encoding" not in head
    assert b"Connection: close" in head
    events = rest.decode().split("\n\n")
    assert events[-2:] == ["data: [DONE]", ""]
    chunks = _chunks([e.removeprefix("data: ") for e in events[:-1]])
    assert _contents(chunks) == {0: "6"}


# --- faults ------------------------------------------------------------------------------


def test_stream_cut_closes_without_done(lm_server: LocalLMServer, client: httpx.Client) -> None:
    lm_server.push_faults(Fault.stream_cut())
    events: list[str] = []
    payload = body(chat_messages("What is 7 + 8?"), stream=True)
    with (
        pytest.raises(httpx.RemoteProtocolError),
        client.stream("POST", CHAT, json=payload) as response,
    ):
        assert response.status_code == 200
        events.extend(_data_lines(response.iter_lines()))
    assert events and "[DONE]" not in events
    chunks = [json.loads(event) for event in events]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks)  # stopped mid-way
    assert len(_contents(chunks)[0]) > 0
    stats = lm_server.wait_for_stats(lambda s: s.in_flight == 0)
    assert (stats.faults, stats.streams, stats.status_counts) == ({"stream_cut": 1}, 1, {200: 1})
    assert _chunks(_stream(client, payload)[1])  # the next stream is whole (new connection)


def test_stream_cut_on_a_plain_request_cuts_the_body(
    lm_server: LocalLMServer, client: httpx.Client
) -> None:
    lm_server.push_faults(Fault.stream_cut())
    with pytest.raises(httpx.RemoteProtocolError):
        client.post(CHAT, json=body(chat_messages("What is 7 + 8?")))
    assert Fault.parse("stream_cut") == Fault.stream_cut()
    assert Fault.from_dict(Fault.stream_cut().to_dict()).label == "stream_cut"


def test_cut_of_a_paced_stream_comes_mid_way(make_lm_server: Callable[..., LocalLMServer]) -> None:
    server = make_lm_server(fixed_responder(LONG_TEXT), stream_interval=0.002)
    server.push_faults(Fault.stream_cut())
    events: list[str] = []
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as http:
        payload = body([{"role": "user", "content": "x"}], stream=True)
        with pytest.raises(httpx.RemoteProtocolError), http.stream("POST", CHAT, json=payload) as r:
            events.extend(_data_lines(r.iter_lines()))
    whole = 1 + -(-len(LONG_TEXT) // 8) + 1  # role, content deltas, finish
    assert len(events) == whole // 2
    assert LONG_TEXT.startswith(_contents([json.loads(e) for e in events])[0])
    assert server.wait_for_stats(lambda s: s.in_flight == 0).streams == 1


def test_http_error_on_a_stream_is_a_json_error(
    lm_server: LocalLMServer, client: httpx.Client
) -> None:
    lm_server.push_faults(Fault.http(429, retry_after=1))
    response, events = _stream(client, body(chat_messages("x"), stream=True))
    assert (response.status_code, response.headers["retry-after"], events) == (429, "1", [])
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"]["type"] == "rate_limit_error"
    assert lm_server.stats().streams == 0


def test_drop_and_hang_on_a_stream(lm_server: LocalLMServer, client: httpx.Client) -> None:
    lm_server.push_faults(Fault.drop(), Fault.hang(0.1))
    payload = body([{"role": "user", "content": "What is 1 + 2?"}], stream=True)
    with pytest.raises(httpx.RemoteProtocolError):
        _stream(client, payload)
    started = time.monotonic()
    _, events = _stream(client, payload)
    assert time.monotonic() - started >= 0.1
    assert _contents(_chunks(events)) == {0: "3"}
    assert lm_server.stats().faults == {"drop": 1, "hang": 1}


def test_malformed_json_and_no_choices_on_a_stream(
    lm_server: LocalLMServer, client: httpx.Client
) -> None:
    lm_server.push_faults(Fault.malformed_json(), Fault.no_choices())
    payload = body([{"role": "user", "content": "What is 1 + 2?"}], stream=True)
    _, events = _stream(client, payload)
    assert events[-1] == "[DONE]"
    broken = []
    for event in events[:-1]:
        try:
            json.loads(event)
        except ValueError:
            broken.append(event)
    assert len(broken) == 1
    chunks = _chunks(_stream(client, payload)[1])
    assert chunks and all("choices" not in c for c in chunks)


def test_bad_stream_parameters_get_400(client: httpx.Client) -> None:
    messages = [{"role": "user", "content": "x"}]
    cases: list[tuple[dict[str, Any], str]] = [
        ({"stream": "yes"}, "'stream' must be a boolean"),
        ({"stream_options": {"include_usage": True}}, "only allowed when 'stream' is enabled"),
        ({"stream": True, "stream_options": [1]}, "'stream_options' must be an object"),
        ({"stream": True, "stream_options": {"include_usage": 1}}, "include_usage"),
    ]
    for extra, fragment in cases:
        reply = client.post(CHAT, json=body(messages, **extra))
        assert reply.status_code == 400, extra
        assert fragment in reply.json()["error"]["message"]
    assert client.post(CHAT, json=body(messages, stream=False, stream_options=None)).is_success


# --- counters and shutdown ---------------------------------------------------------------


def test_a_stream_stays_in_flight_until_its_last_event(
    make_lm_server: Callable[..., LocalLMServer],
) -> None:
    server = make_lm_server(fixed_responder(LONG_TEXT), stream_interval=0.01)
    payload = body([{"role": "user", "content": "x"}], stream=True)
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as http:
        plain = http.post(CHAT, json=body([{"role": "user", "content": "x"}])).json()
        with http.stream("POST", CHAT, json=payload) as response:
            events = _data_lines(response.iter_lines())
            next(events)
            during = server.stats()
            assert (during.in_flight, during.streams, during.status(200)) == (1, 1, 2)
            rest = list(events)
        after = server.stats()
    assert rest[-1] == "[DONE]"
    assert (after.in_flight, after.max_in_flight, after.requests_total) == (0, 1, 2)
    assert after.prompt_tokens == 2 * plain["usage"]["prompt_tokens"]
    assert after.completion_tokens == 2 * plain["usage"]["completion_tokens"]
    assert after.to_dict()["streams"] == 1
    assert type(after).from_dict(after.to_dict()) == after


def test_a_client_leaving_mid_stream_ends_it(make_lm_server: Callable[..., LocalLMServer]) -> None:
    server = make_lm_server(fixed_responder(LONG_TEXT), stream_interval=0.02)
    payload = body([{"role": "user", "content": "x"}], stream=True)
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as http:
        with http.stream("POST", CHAT, json=payload) as response:
            next(_data_lines(response.iter_lines()))
        # closing an unread response closes its connection: the stream ends at the server
        assert server.wait_for_stats(lambda s: s.in_flight == 0).streams == 1
        with http.stream("POST", CHAT, json=payload) as response:
            events = _data_lines(response.iter_lines())
            next(events)
            server.close_connections()  # as a provider's idle timeout would
            with pytest.raises(httpx.RemoteProtocolError):
                list(events)
        assert server.wait_for_stats(lambda s: s.in_flight == 0).streams == 2


def test_stop_during_a_slow_stream_returns_promptly(
    make_lm_server: Callable[..., LocalLMServer],
) -> None:
    server = make_lm_server(fixed_responder(LONG_TEXT), stream_interval=5.0)
    payload = body([{"role": "user", "content": "x"}], stream=True)
    with (
        httpx.Client(base_url=server.url, timeout=TIMEOUT) as http,
        http.stream("POST", CHAT, json=payload) as response,
    ):
        events = _data_lines(response.iter_lines())
        assert json.loads(next(events))["choices"][0]["delta"]["role"] == "assistant"
        started = time.monotonic()
        server.stop()
        assert time.monotonic() - started < 1.0
        assert not _server_threads()
        with pytest.raises(httpx.RemoteProtocolError):
            list(events)
    assert server.stats().in_flight == 0


def test_server_process_takes_the_stream_options() -> None:
    with (
        ServerProcess("echo", stream_chunk_chars=2) as proc,
        httpx.Client(base_url=proc.url, timeout=TIMEOUT) as http,
    ):
        payload = body([{"role": "user", "content": "abcdef"}], stream=True)
        chunks = _chunks(_stream(http, payload)[1])
        assert [c["choices"][0]["delta"].get("content") for c in chunks[1:-1]] == ["ab", "cd", "ef"]
        proc.set_stream_pacing(chunk_chars=3, interval=0.0)
        chunks = _chunks(_stream(http, payload)[1])
        assert [c["choices"][0]["delta"].get("content") for c in chunks[1:-1]] == ["abc", "def"]
        assert proc.stats().streams == 2
