"""Fault injection at the local server: every kind, scripts, seeded rates, counters."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator

import httpx
import pytest
from _lmserver_helpers import body

from dspex_actors.testing import Fault, LocalLMServer

MESSAGES = [{"role": "user", "content": "What is 1 + 1?"}]


@pytest.fixture
def client(lm_server: LocalLMServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=lm_server.url, timeout=30) as http:
        yield http


def _post(client: httpx.Client, **kwargs: object) -> httpx.Response:
    return client.post("/chat/completions", json=body(MESSAGES), **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("status", "retry_after", "header"), [(429, 2, "2"), (500, None, None), (503, 0.25, "0.25")]
)
def test_http_error_with_retry_after(
    lm_server: LocalLMServer,
    client: httpx.Client,
    status: int,
    retry_after: float | None,
    header: str | None,
) -> None:
    lm_server.push_faults(Fault.http(status, retry_after=retry_after))
    reply = _post(client)
    assert reply.status_code == status
    assert reply.headers.get("Retry-After") == header
    assert reply.json()["error"]["code"] == status
    assert _post(client).status_code == 200
    stats = lm_server.stats()
    assert stats.faults == {f"http_{status}": 1}
    assert stats.status_counts == {status: 1, 200: 1}
    assert stats.requests_total == 2


def test_malformed_json(lm_server: LocalLMServer, client: httpx.Client) -> None:
    lm_server.push_faults(Fault.malformed_json())
    reply = _post(client)
    assert reply.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(reply.content)
    assert lm_server.stats().faults == {"malformed_json": 1}


def test_body_without_choices(lm_server: LocalLMServer, client: httpx.Client) -> None:
    lm_server.push_faults(Fault.no_choices())
    data = _post(client).json()
    assert "choices" not in data
    assert "usage" in data
    assert lm_server.stats().faults == {"no_choices": 1}


def test_dropped_connection(lm_server: LocalLMServer, client: httpx.Client) -> None:
    lm_server.push_faults(Fault.drop())
    with pytest.raises(httpx.RemoteProtocolError):
        _post(client)
    assert _post(client).status_code == 200  # the client reconnects
    stats = lm_server.stats()
    assert stats.faults == {"drop": 1}
    assert stats.status_counts == {200: 1}
    assert stats.requests_total == 2
    assert stats.in_flight == 0


def test_hang_past_client_timeout(lm_server: LocalLMServer, client: httpx.Client) -> None:
    lm_server.push_faults(Fault.hang(60))
    with pytest.raises(httpx.ReadTimeout):
        _post(client, timeout=0.3)
    assert lm_server.stats().faults == {"hang": 1}
    assert _post(client).status_code == 200  # other requests are unaffected
    started = time.monotonic()
    lm_server.stop()  # interrupts the 60 s hang
    assert time.monotonic() - started < 10.0


def test_short_hang_then_normal_reply(lm_server: LocalLMServer, client: httpx.Client) -> None:
    lm_server.push_faults(Fault.hang(0.05))
    reply = _post(client)
    assert reply.status_code == 200
    assert reply.json()["choices"][0]["message"]["content"] == "2"


def test_script_runs_in_order_with_normal_gaps(
    lm_server: LocalLMServer, client: httpx.Client
) -> None:
    lm_server.push_faults(Fault.http(500), None, Fault.http(503))
    assert lm_server.pending_faults == 3
    assert [_post(client).status_code for _ in range(4)] == [500, 200, 503, 200]
    assert lm_server.pending_faults == 0


def test_seeded_rates_are_reproducible(make_lm_server: Callable[..., LocalLMServer]) -> None:
    def run() -> list[int]:
        server = make_lm_server(seed=7)
        server.set_fault_rates({Fault.http(503): 0.3, Fault.http(429): 0.2})
        with httpx.Client(base_url=server.url) as http:
            codes = [
                http.post("/chat/completions", json=body(MESSAGES)).status_code for _ in range(40)
            ]
        stats = server.stats()
        assert stats.faults.get("http_503", 0) == codes.count(503)
        assert stats.faults.get("http_429", 0) == codes.count(429)
        return codes

    first, second = run(), run()
    assert first == second
    assert {200, 429, 503} == set(first)


def test_clear_faults(lm_server: LocalLMServer, client: httpx.Client) -> None:
    lm_server.set_fault_rates([(Fault.drop(), 1.0)])
    lm_server.push_faults(Fault.http(500))
    lm_server.clear_faults()
    assert _post(client).status_code == 200
    assert lm_server.stats().faults == {}


def test_fault_validation() -> None:
    assert Fault.parse("429") == Fault.http(429)
    assert Fault.parse("drop") == Fault.drop()
    assert Fault.from_dict(Fault.http(503, retry_after=1.5).to_dict()) == Fault.http(
        503, retry_after=1.5
    )
    with pytest.raises(ValueError, match="status"):
        Fault.http(200)
    with pytest.raises(ValueError, match="cannot parse fault"):
        Fault.parse("explode")
    server = LocalLMServer()
    with pytest.raises(ValueError, match="> 1"):
        server.set_fault_rates({Fault.drop(): 0.7, Fault.http(500): 0.5})
    with pytest.raises(TypeError, match="Fault or None"):
        server.push_faults("429")  # type: ignore[arg-type]
