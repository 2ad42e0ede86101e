"""SocketTransport against the real local server: success, keep-alive, error mapping."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx
import pytest

from dspex_actors.lm._transport import SocketTransport
from dspex_actors.testing import Fault, LocalLMServer

BODY = {"model": "local-model", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10.0, transport=SocketTransport()) as client:
        yield client


def chat(client: httpx.Client, server: LocalLMServer, timeout: float = 10.0) -> httpx.Response:
    return client.post(f"{server.url}/chat/completions", json=BODY, timeout=timeout)


def test_success_reuses_one_connection(client: httpx.Client, lm_server: LocalLMServer) -> None:
    first = chat(client, lm_server)
    second = chat(client, lm_server)
    assert first.status_code == 200 == second.status_code
    assert first.json()["choices"][0]["message"]["content"]
    assert first.headers["content-type"].startswith("application/json")
    assert first.http_version == "HTTP/1.1"
    assert first.elapsed.total_seconds() >= 0
    assert lm_server.stats().requests_total == 2


def test_http_error_status_is_a_response(client: httpx.Client, lm_server: LocalLMServer) -> None:
    lm_server.push_faults(Fault.http(503, retry_after=1))
    response = chat(client, lm_server)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert chat(client, lm_server).status_code == 200


def test_hang_past_the_timeout_is_a_read_timeout(
    client: httpx.Client, lm_server: LocalLMServer
) -> None:
    lm_server.push_faults(Fault.hang(3.0))
    with pytest.raises(httpx.ReadTimeout):
        chat(client, lm_server, timeout=0.2)
    assert chat(client, lm_server).status_code == 200  # a fresh connection after the timeout


def test_dropped_connection_is_a_protocol_error_and_not_resent(
    client: httpx.Client, lm_server: LocalLMServer
) -> None:
    assert chat(client, lm_server).status_code == 200  # the drop hits a reused connection
    lm_server.push_faults(Fault.drop())
    with pytest.raises(httpx.RemoteProtocolError):
        chat(client, lm_server)
    assert lm_server.stats().requests_total == 2
    assert chat(client, lm_server).status_code == 200


def test_refused_connection_is_a_connect_error(client: httpx.Client) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(httpx.ConnectError):
        client.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=BODY)


def test_reconnects_after_the_server_closed_an_idle_connection(
    client: httpx.Client, lm_server: LocalLMServer
) -> None:
    assert chat(client, lm_server).status_code == 200
    lm_server.close_connections(timeout=10.0)
    response = chat(client, lm_server)
    assert response.status_code == 200
    assert lm_server.stats().requests_total == 2


def test_closed_transport_opens_a_new_connection(lm_server: LocalLMServer) -> None:
    transport = SocketTransport()
    with httpx.Client(transport=transport) as client:
        assert chat(client, lm_server).status_code == 200
        transport.close()
        assert chat(client, lm_server).status_code == 200


def test_unsupported_scheme_is_rejected() -> None:
    transport = SocketTransport()
    with pytest.raises(httpx.UnsupportedProtocol):
        transport.handle_request(httpx.Request("GET", "ftp://127.0.0.1/x"))
