"""The tinyproxy fixture itself, driven with the stdlib only.

The LM server listens on 127.0.0.2 and the proxy on 127.0.0.1, so a request that went
through the proxy is told apart from one that bypassed it: the server sees a ``Via``
header and tinyproxy's log names the URL.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dspex_actors.testing import ChatRequest, LocalLMServer
from tests import _proxy
from tests._proxy import TinyProxy, TinyProxyError
from tests._support import WAIT

SERVER_HOST = "127.0.0.2"
VIA = "1.1 tinyproxy (tinyproxy/1.11.1)"
BODY = json.dumps({"model": "local-model", "messages": [{"role": "user", "content": "hi"}]})
JSON_HEADERS = {"Content-Type": "application/json"}


def _post_via_proxy(proxy: TinyProxy, url: str) -> tuple[int, dict[str, Any]]:
    """POST ``BODY`` to the absolute ``url`` through ``proxy``; (status, parsed body)."""
    conn = http.client.HTTPConnection(proxy.host, proxy.port, timeout=WAIT)
    try:
        conn.request("POST", url, body=BODY, headers=JSON_HEADERS)
        reply = conn.getresponse()
        return reply.status, json.loads(reply.read())
    finally:
        conn.close()


@contextlib.contextmanager
def _socket_listening() -> Iterator[int]:
    """A listening socket on a free 127.0.0.1 port, as another process would hold it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_request_reaches_the_server_through_the_proxy(
    tinyproxy: TinyProxy, make_lm_server: Callable[..., LocalLMServer]
) -> None:
    server = make_lm_server(host=SERVER_HOST)
    assert server.url.startswith(f"http://{SERVER_HOST}:")
    url = f"{server.url}/chat/completions"

    status, payload = _post_via_proxy(tinyproxy, url)

    assert status == 200
    assert payload["object"] == "chat.completion"
    assert payload["choices"][0]["message"]["role"] == "assistant"
    stats = server.stats()
    assert stats.requests_total == 1
    assert stats.headers[0]["via"] == VIA
    assert tinyproxy.forwarded() == [f"POST {url} HTTP/1.1"]
    assert tinyproxy.forwarded_urls() == [url]

    # A direct request is distinguishable: no Via, nothing in the proxy's log.
    direct = http.client.HTTPConnection(server.host, server.port, timeout=WAIT)
    try:
        direct.request("POST", "/v1/chat/completions", body=BODY, headers=JSON_HEADERS)
        assert direct.getresponse().status == 200
    finally:
        direct.close()
    assert "via" not in server.stats().headers[1]
    assert tinyproxy.forwarded_urls() == [url]


def test_urllib_proxy_handler_goes_through_the_proxy(
    tinyproxy: TinyProxy,
    make_lm_server: Callable[..., LocalLMServer],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("no_proxy", "NO_PROXY"):  # urllib's ProxyHandler still honours these
        monkeypatch.delenv(name, raising=False)
    server = make_lm_server(host=SERVER_HOST)
    url = f"{server.url}/chat/completions"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": tinyproxy.url}))
    request = urllib.request.Request(url, data=BODY.encode(), headers=JSON_HEADERS)

    with opener.open(request, timeout=WAIT) as reply:
        status, payload = reply.status, json.loads(reply.read())

    assert status == 200
    assert payload["choices"][0]["message"]["content"]
    assert server.stats().headers[0]["via"] == VIA
    assert tinyproxy.forwarded_urls() == [url]


def test_64_concurrent_requests_through_the_proxy(
    tinyproxy: TinyProxy, make_lm_server: Callable[..., LocalLMServer]
) -> None:
    """All 64 are inside the server's responder at once (a barrier proves it)."""
    count = 64
    barrier = threading.Barrier(count, timeout=WAIT)

    def responder(request: ChatRequest) -> str:
        barrier.wait()
        return "ok"

    server = make_lm_server(responder, host=SERVER_HOST)
    url = f"{server.url}/chat/completions"
    results: list[tuple[int, dict[str, Any]] | Exception | None] = [None] * count

    def call(index: int) -> None:
        try:
            results[index] = _post_via_proxy(tinyproxy, url)
        except Exception as exc:
            results[index] = exc

    threads = [
        threading.Thread(target=call, args=(i,), name=f"proxy-client-{i}") for i in range(count)
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + WAIT
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    assert not [t.name for t in threads if t.is_alive()], "a client through the proxy hung"

    replies = [r for r in results if isinstance(r, tuple)]
    assert [status for status, _ in replies] == [200] * count, results
    assert {p["choices"][0]["message"]["content"] for _, p in replies} == {"ok"}
    stats = server.stats(include_requests=False)
    assert (stats.requests_total, stats.max_in_flight) == (count, count)
    assert tinyproxy.forwarded_urls() == [url] * count


def test_connect_tunnel_to_any_port(
    tinyproxy: TinyProxy, make_lm_server: Callable[..., LocalLMServer]
) -> None:
    """CONNECT to a non-443 port is allowed, and the tunnel carries several requests."""
    server = make_lm_server(host=SERVER_HOST)
    conn = http.client.HTTPConnection(tinyproxy.host, tinyproxy.port, timeout=WAIT)
    conn.set_tunnel(server.host, server.port)
    try:
        for _ in range(2):
            conn.request("POST", "/v1/chat/completions", body=BODY, headers=JSON_HEADERS)
            reply = conn.getresponse()
            assert reply.status == 200
            reply.read()
    finally:
        conn.close()
    assert server.stats().requests_total == 2
    assert tinyproxy.forwarded() == [f"CONNECT {server.host}:{server.port} HTTP/1.0"]


def test_stop_leaves_no_process_behind(tmp_path: Path) -> None:
    proxy = TinyProxy(directory=tmp_path).start()
    pid, port = proxy.pid, proxy.port
    process = proxy._process
    assert process is not None
    assert process.poll() is None  # running
    # An open client connection must not hold up the shutdown.
    idle = http.client.HTTPConnection(proxy.host, port, timeout=WAIT)
    idle.connect()
    try:
        proxy.stop()
    finally:
        idle.close()

    assert process.returncode is not None  # reaped: no zombie
    assert not proxy.running
    assert not Path(f"/proc/{pid}").exists()
    with pytest.raises(ConnectionRefusedError):
        http.client.HTTPConnection(proxy.host, port, timeout=WAIT).connect()
    proxy.stop()  # idempotent
    assert "Shutting down" in proxy.log_text()


def test_own_temp_dir_removed_but_log_kept() -> None:
    with TinyProxy() as proxy:
        directory = proxy.config_path.parent
        assert "Allow 127.0.0.0/8" in proxy.config_path.read_text()
    assert not directory.exists()
    assert "Accepting connections" in proxy.log_text()
    assert proxy.forwarded() == []


def test_retries_on_a_port_lost_to_the_bind_race(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with _socket_listening() as busy:
        picks = iter([busy, _proxy._free_port("127.0.0.1")])
        monkeypatch.setattr(_proxy, "_free_port", lambda host: next(picks))
        with TinyProxy(directory=tmp_path) as proxy:
            assert proxy.port != busy
            assert proxy.running
        assert next(picks, None) is None  # both ports were tried


def test_missing_binary_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(TinyProxyError, match=r"Debian package 'tinyproxy'"):
        TinyProxy(directory=tmp_path).start()
