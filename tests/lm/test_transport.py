"""SocketTransport against the real local server (and a local TLS server): success,
keep-alive, error mapping."""

from __future__ import annotations

import contextlib
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from dspex_actors.lm._transport import SocketTransport
from dspex_actors.testing import Fault, LocalLMServer
from tests._support import read_request

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


def _tls_server(directory: Path) -> tuple[ssl.SSLContext, Path]:
    """A server TLS context with a throwaway certificate for 127.0.0.1, and that certificate.

    Made with the openssl command.
    """
    cert, key = directory / "cert.pem", directory / "key.pem"
    command = [
        "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
        "-keyout", str(key), "-out", str(cert),
    ]  # fmt: skip
    subprocess.run(command, check=True, capture_output=True, timeout=60)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context, cert


needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")


@needs_openssl
def test_https_round_trips_on_one_tls_connection(tmp_path: Path) -> None:
    server_context, cert = _tls_server(tmp_path)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    accepted: list[int] = []

    def serve() -> None:
        raw, _ = listener.accept()
        accepted.append(1)
        with server_context.wrap_socket(raw, server_side=True) as conn:
            reader = conn.makefile("rb")
            for reply in (b'{"n": 1}', b'{"n": 2}'):
                read_request(reader)
                head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(reply)
                conn.sendall(head + reply)
            reader.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    client_context = ssl.create_default_context(cafile=str(cert))
    transport = SocketTransport(client_context)
    url = f"https://127.0.0.1:{port}/v1/chat/completions"
    timeouts = {"timeout": {"connect": 10.0, "read": 10.0}}
    try:
        for expected in (b'{"n": 1}', b'{"n": 2}'):
            request = httpx.Request("POST", url, json=BODY, extensions=timeouts)
            assert transport.handle_request(request).read() == expected
    finally:
        transport.close()
        thread.join(10.0)
        listener.close()
    assert not thread.is_alive()
    assert accepted == [1]  # both requests went over the one TLS connection


@needs_openssl
def test_https_with_an_untrusted_certificate_is_a_connect_error(tmp_path: Path) -> None:
    server_context, _ = _tls_server(tmp_path)
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        raw, _ = listener.accept()
        with contextlib.suppress(OSError), server_context.wrap_socket(raw, server_side=True):
            pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    transport = SocketTransport(ssl.create_default_context())  # system CAs only
    url = f"https://127.0.0.1:{listener.getsockname()[1]}/v1/chat/completions"
    try:
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            transport.handle_request(
                httpx.Request("POST", url, json=BODY, extensions={"timeout": {"connect": 10.0}})
            )
    finally:
        transport.close()
        thread.join(10.0)
        listener.close()
    assert not thread.is_alive()
