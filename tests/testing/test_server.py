"""LocalLMServer over real HTTP: protocol, counters, concurrency, clean shutdown."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from _lmserver_helpers import body, chat_messages

from dspex_actors.testing import (
    ChatRequest,
    Fault,
    LocalLMServer,
    ServerControl,
    secret_fingerprint,
)

MESSAGES = [{"role": "user", "content": "x"}]


def _server_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("dspex-lm-")]


def test_chat_completion_has_openai_shape(lm_server: LocalLMServer) -> None:
    assert lm_server.url == f"http://127.0.0.1:{lm_server.port}/v1"
    reply = httpx.post(
        f"{lm_server.url}/chat/completions",
        json=body(chat_messages("What is 2 + 3?"), temperature=0.0, max_tokens=100),
    )
    assert reply.status_code == 200
    data = reply.json()
    assert data["object"] == "chat.completion"
    assert data["id"].startswith("chatcmpl-")
    assert data["model"] == "local-model"
    [choice] = data["choices"]
    assert choice["finish_reason"] == "stop"
    assert choice["message"]["role"] == "assistant"
    assert "[[ ## answer ## ]]\n5\n" in choice["message"]["content"]
    usage = data["usage"]
    assert usage["completion_tokens"] == len(choice["message"]["content"].split())
    assert usage["prompt_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_n_choices(lm_server: LocalLMServer) -> None:
    data = httpx.post(
        f"{lm_server.url}/chat/completions",
        json=body([{"role": "user", "content": "What is 6 * 7?"}], n=3),
    ).json()
    assert [c["index"] for c in data["choices"]] == [0, 1, 2]
    assert {c["message"]["content"] for c in data["choices"]} == {"42"}
    assert data["usage"]["completion_tokens"] == 3


def test_responder_list_gives_one_choice_per_text(
    make_lm_server: Callable[..., LocalLMServer],
) -> None:
    server = make_lm_server(lambda req: [f"reply {i}" for i in range(req.n)])
    data = httpx.post(
        f"{server.url}/chat/completions", json=body([{"role": "user", "content": "hi"}], n=2)
    ).json()
    assert [c["message"]["content"] for c in data["choices"]] == ["reply 0", "reply 1"]


def test_models_endpoint(make_lm_server: Callable[..., LocalLMServer]) -> None:
    server = make_lm_server(model="tiny-test-model")
    data = httpx.get(f"{server.url}/models").json()
    assert data["object"] == "list"
    assert [m["id"] for m in data["data"]] == ["tiny-test-model"]
    assert server.stats().models_requests == 1


def test_responder_sees_parsed_request(make_lm_server: Callable[..., LocalLMServer]) -> None:
    seen: list[ChatRequest] = []

    def responder(request: ChatRequest) -> str:
        seen.append(request)
        return "ok"

    server = make_lm_server(responder)
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello"}]
    httpx.post(
        f"{server.url}/chat/completions",
        json=body(messages, temperature=0.7, max_tokens=50, response_format={"type": "text"}),
        headers={"Authorization": "Bearer sk-test"},
    )
    [request] = seen
    assert request.model == "local-model"
    assert request.messages == messages
    assert request.params == {
        "temperature": 0.7,
        "max_tokens": 50,
        "response_format": {"type": "text"},
    }
    assert request.headers["authorization"] == "Bearer sk-test"
    assert request.system_text == "be brief"
    assert request.last_user_text == "hello"


def test_request_log_and_counters(lm_server: LocalLMServer) -> None:
    with httpx.Client(base_url=lm_server.url) as client:
        for i in range(3):
            client.post("/chat/completions", json=body([{"role": "user", "content": f"q{i}"}]))
    stats = lm_server.stats()
    assert stats.requests_total == 3
    assert stats.status(200) == 3
    assert stats.in_flight == 0
    assert stats.max_in_flight == 1
    assert [r["messages"][0]["content"] for r in stats.requests] == ["q0", "q1", "q2"]
    assert stats.last_request is not None
    assert stats.last_request["model"] == "local-model"
    lm_server.reset_stats()
    cleared = lm_server.stats()
    assert (cleared.requests_total, cleared.status_counts, cleared.requests) == (0, {}, [])


def test_max_tokens_truncates_with_length_finish(
    make_lm_server: Callable[..., LocalLMServer],
) -> None:
    server = make_lm_server(lambda req: "one two three four five")
    data = httpx.post(
        f"{server.url}/chat/completions",
        json=body([{"role": "user", "content": "x"}], max_tokens=2),
    ).json()
    [choice] = data["choices"]
    assert choice["message"]["content"] == "one two"
    assert choice["finish_reason"] == "length"
    assert data["usage"]["completion_tokens"] == 2


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        (b"{not json", "not valid JSON"),
        (b'{"model": "m"}', "'messages'"),
        (b'{"messages": [{"role": "user", "content": "x"}], "n": 0}', "'n'"),
        (b'{"messages": [{"role": "user", "content": "x"}], "stream": "yes"}', "'stream'"),
    ],
)
def test_bad_requests_get_400(lm_server: LocalLMServer, payload: bytes, fragment: str) -> None:
    reply = httpx.post(
        f"{lm_server.url}/chat/completions",
        content=payload,
        headers={"Content-Type": "application/json"},
    )
    assert reply.status_code == 400
    assert fragment in reply.json()["error"]["message"]
    assert lm_server.stats().status(400) == 1


def test_unknown_route_is_404(lm_server: LocalLMServer) -> None:
    assert httpx.post(f"{lm_server.url}/completions", json={}).status_code == 404


def test_failing_responder_gives_500(make_lm_server: Callable[..., LocalLMServer]) -> None:
    def broken(request: ChatRequest) -> str:
        raise RuntimeError("model exploded")

    server = make_lm_server(broken)
    reply = httpx.post(
        f"{server.url}/chat/completions", json=body([{"role": "user", "content": "x"}])
    )
    assert reply.status_code == 500
    assert "model exploded" in reply.json()["error"]["message"]


def test_latency_does_not_serialise(make_lm_server: Callable[..., LocalLMServer]) -> None:
    server = make_lm_server(latency=0.2)
    limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
    with httpx.Client(base_url=server.url, limits=limits, timeout=30) as client:

        def call(i: int) -> int:
            messages = [{"role": "user", "content": f"What is {i} + 1?"}]
            return client.post("/chat/completions", json=body(messages)).status_code

        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=20) as pool:
            statuses = list(pool.map(call, range(20)))
        elapsed = time.monotonic() - started
    assert statuses == [200] * 20
    # Serialised, 20 replies would take 4 s; concurrent ones take about 0.2 s.
    assert elapsed < 2.0
    assert server.stats().max_in_flight > 1


def test_concurrent_requests_are_in_flight_together(
    make_lm_server: Callable[..., LocalLMServer],
) -> None:
    """64 keep-alive connections all inside the responder at once (a barrier proves it)."""
    barrier = threading.Barrier(64, timeout=20)

    def responder(request: ChatRequest) -> str:
        barrier.wait()
        return "ok"

    server = make_lm_server(responder)
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    with (
        httpx.Client(base_url=server.url, limits=limits, timeout=30) as client,
        ThreadPoolExecutor(max_workers=64) as pool,
    ):
        messages = [{"role": "user", "content": "x"}]
        replies = list(
            pool.map(lambda _: client.post("/chat/completions", json=body(messages)), range(64))
        )
    assert [r.status_code for r in replies] == [200] * 64
    assert server.stats().max_in_flight == 64


def test_latency_and_jitter_settable(lm_server: LocalLMServer) -> None:
    lm_server.set_latency(0.05, jitter=0.01)
    assert (lm_server.latency, lm_server.jitter) == (0.05, 0.01)
    with pytest.raises(ValueError, match="latency"):
        lm_server.set_latency(-1)


def test_stop_closes_idle_keepalive_connections(
    make_lm_server: Callable[..., LocalLMServer],
) -> None:
    server = make_lm_server()
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        for _ in range(3):
            conn.request("POST", "/v1/chat/completions", json.dumps(body(MESSAGES)))
            reply = conn.getresponse()
            assert (reply.status, reply.getheader("Connection")) == (200, None)
            reply.read()
        assert conn.sock is not None  # kept alive, now idle
        assert _server_threads() != []
        server.stop()
        assert conn.sock.recv(1) == b""  # the server closed it
        assert _server_threads() == []
        assert not server.running
    finally:
        conn.close()


def test_close_connections_makes_clients_reconnect(lm_server: LocalLMServer) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", lm_server.port, timeout=10)
    try:
        conn.request("POST", "/v1/chat/completions", json.dumps(body(MESSAGES)))
        conn.getresponse().read()
        assert conn.sock is not None
        lm_server.close_connections()
        assert conn.sock.recv(1) == b""  # closed by the server while idle
    finally:
        conn.close()
    with httpx.Client(base_url=lm_server.url) as client:
        assert client.post("/chat/completions", json=body(MESSAGES)).status_code == 200
    assert lm_server.stats().requests_total == 2


def test_stop_interrupts_latency_wait(make_lm_server: Callable[..., LocalLMServer]) -> None:
    server = make_lm_server(latency=60.0)
    with ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(
            httpx.post,
            f"{server.url}/chat/completions",
            json=body([{"role": "user", "content": "x"}]),
            timeout=30,
        )
        server.wait_for_stats(lambda s: s.in_flight == 1)
        started = time.monotonic()
        server.stop()
        assert time.monotonic() - started < 10.0
        with pytest.raises(httpx.HTTPError):
            future.result(timeout=30)
    assert _server_threads() == []


def test_control_endpoints_match_in_process_api(lm_server: LocalLMServer) -> None:
    control = ServerControl(lm_server.root_url)
    try:
        httpx.post(
            f"{lm_server.url}/chat/completions", json=body([{"role": "user", "content": "x"}])
        )
        remote = control.stats()
        assert remote == lm_server.stats()
        assert control.stats(include_requests=False).requests == []
        control.set_latency(0.01, 0.0)
        assert lm_server.latency == 0.01
        control.set_responder("echo")
        reply = httpx.post(
            f"{lm_server.url}/chat/completions", json=body([{"role": "user", "content": "mirror"}])
        )
        assert reply.json()["choices"][0]["message"]["content"] == "mirror"
        control.reset_stats()
        assert lm_server.stats().requests_total == 0
        with pytest.raises(ValueError, match="unknown responder"):
            control.set_responder("no-such-model")
    finally:
        control.close()


def test_not_running_server_has_no_url() -> None:
    server = LocalLMServer()
    with pytest.raises(RuntimeError, match="not running"):
        _ = server.url
    server.stop()
    with pytest.raises(ValueError, match="unknown responder"):
        LocalLMServer("nonsense")


def _raw_exchange(server: LocalLMServer, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):  # the server closes: read to EOF
            chunks.append(chunk)
    return b"".join(chunks)


def test_connection_close_and_http10_are_honoured(lm_server: LocalLMServer) -> None:
    payload = b'{"messages": [{"role": "user", "content": "What is 2 + 2?"}]}'
    for version, extra in (("HTTP/1.1", "Connection: close\r\n"), ("HTTP/1.0", "")):
        head = (
            f"POST /v1/chat/completions {version}\r\nHost: x\r\n{extra}"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
        )
        reply = _raw_exchange(lm_server, head.encode() + payload)
        assert reply.startswith(b"HTTP/1.1 200 OK\r\n")
        assert b"Connection: close\r\n" in reply
        assert b'"content": "4"' in reply


def test_garbage_request_line_gets_400(lm_server: LocalLMServer) -> None:
    reply = _raw_exchange(lm_server, b"NONSENSE\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 400 Bad Request\r\n")


def test_wait_for_stats_wakes_on_a_change_and_times_out(lm_server: LocalLMServer) -> None:
    with pytest.raises(TimeoutError, match="did not reach"):
        lm_server.wait_for_stats(lambda s: s.requests_total >= 1, timeout=0.05)
    done = threading.Event()

    def post() -> None:
        messages = [{"role": "user", "content": "What is 2 + 3?"}]
        httpx.post(f"{lm_server.url}/chat/completions", json=body(messages), timeout=10.0)
        done.set()

    thread = threading.Thread(target=post)
    thread.start()
    stats = lm_server.wait_for_stats(lambda s: s.status(200) == 1, timeout=10.0)
    assert stats.requests_total == 1 and stats.requests[0]["messages"]
    thread.join(10.0)
    assert done.is_set()


def _read_replies(sock: socket.socket, count: int) -> list[bytes]:
    """``count`` whole replies (head and body) from a keep-alive socket."""
    data = b""
    replies: list[bytes] = []
    while len(replies) < count:
        head_end = data.find(b"\r\n\r\n")
        if head_end >= 0:
            length = int(data[:head_end].split(b"Content-Length: ")[1].split(b"\r\n")[0])
            if len(data) >= head_end + 4 + length:
                replies.append(data[: head_end + 4 + length])
                data = data[head_end + 4 + length :]
                continue
        chunk = sock.recv(65536)
        assert chunk, f"the server closed after {len(replies)} replies"
        data += chunk
    return replies


def test_pipelined_replies_keep_request_order(lm_server: LocalLMServer) -> None:
    """The first request is held (a short hang); the two behind it still answer after it."""
    lm_server.push_faults(Fault.hang(0.2))
    requests = b""
    for question in ("What is 1 + 1?", "What is 2 + 2?", "What is 3 + 3?"):
        payload = json.dumps(body([{"role": "user", "content": question}])).encode()
        requests += (
            f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n"
        ).encode() + payload
    with socket.create_connection(("127.0.0.1", lm_server.port), timeout=10) as sock:
        sock.sendall(requests)  # all three at once, on one connection
        replies = _read_replies(sock, 3)
    answers = [json.loads(r.split(b"\r\n\r\n", 1)[1])["choices"][0]["message"] for r in replies]
    assert [a["content"] for a in answers] == ["2", "4", "6"]
    assert lm_server.stats().faults == {"hang": 1}


def test_a_blocking_responder_holds_up_only_its_own_request(
    make_lm_server: Callable[..., LocalLMServer],
) -> None:
    release = threading.Event()

    def responder(request: ChatRequest) -> str:
        if request.last_user_text == "slow":
            release.wait(20)
        return request.last_user_text

    server = make_lm_server(responder)
    with ThreadPoolExecutor(max_workers=1) as pool:
        slow = pool.submit(
            httpx.post,
            f"{server.url}/chat/completions",
            json=body([{"role": "user", "content": "slow"}]),
            timeout=30,
        )
        try:
            server.wait_for_stats(lambda s: s.in_flight == 1)
            fast = httpx.post(
                f"{server.url}/chat/completions",
                json=body([{"role": "user", "content": "fast"}]),
                timeout=30,
            )
            assert fast.json()["choices"][0]["message"]["content"] == "fast"
            assert not slow.done()
        finally:
            release.set()
        assert slow.result(timeout=30).json()["choices"][0]["message"]["content"] == "slow"
    assert server.stats().status(200) == 2


def test_latency_applies_to_a_callable_responder(
    make_lm_server: Callable[..., LocalLMServer],
) -> None:
    called_on: list[str] = []

    def responder(request: ChatRequest) -> str:
        called_on.append(threading.current_thread().name)
        return "ok"

    server = make_lm_server(responder, latency=0.2)
    started = time.monotonic()
    reply = httpx.post(f"{server.url}/chat/completions", json=body(MESSAGES), timeout=30)
    assert time.monotonic() - started >= 0.2  # never early: the latency is a lower bound
    assert reply.json()["choices"][0]["message"]["content"] == "ok"
    assert [name.startswith("dspex-lm-responder-") for name in called_on] == [True]


def test_stats_never_show_credentials(lm_server: LocalLMServer) -> None:
    httpx.post(
        f"{lm_server.url}/chat/completions",
        json={"messages": [{"role": "user", "content": "x"}]},
        headers={"Authorization": "Bearer sk-secret", "x-api-key": "k2", "X-Other": "kept"},
    )
    for stats in (lm_server.stats(), ServerControl(lm_server.root_url).stats()):
        (headers,) = stats.headers
        assert headers["authorization"] == secret_fingerprint("Bearer sk-secret")
        assert headers["x-api-key"] == secret_fingerprint("k2")
        assert headers["x-other"] == "kept"
        assert "sk-secret" not in repr(stats)
