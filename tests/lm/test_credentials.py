"""Credentials in an api_base, short keys, keyless remote servers, and the local server's
stats: a secret is sent where it belongs and shown nowhere."""

from __future__ import annotations

import base64
import json
import logging
import urllib.request
from collections.abc import Callable

import pytest

import dspex_actors as dx
from dspex_actors.lm._redact import redact_text
from dspex_actors.testing import ChatRequest, LocalLMServer, secret_fingerprint

MakeServer = Callable[..., LocalLMServer]
PASSWORD = "s3cret-pass-778"
QUERY_KEY = "qk-9a8b7c6d5e"


def _with_credentials(url: str) -> str:
    return url.replace("http://", f"http://alice:{PASSWORD}@") + f"?api-key={QUERY_KEY}&v=2"


def test_credentials_in_api_base_are_sent_but_never_shown(
    make_lm_server: MakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server = make_lm_server()
    lm = dx.LM("openai/local-model", api_base=_with_credentials(server.url), num_retries=0)
    dead = dx.LM("openai/local-model", api_base=_with_credentials("http://127.0.0.1:9/v1"))
    shown = [repr(lm), lm.api_base, lm.endpoint, lm.config_id, repr(dead)]
    with dx.ActorSystem(lm=lm) as system:
        assert lm("What is 2 + 3?") == ["5"]
        with pytest.raises(dx.LMConnectionError) as failed:
            dead("hello", cache=False)
        shown += [str(failed.value), str(failed.value.endpoint), json.dumps(system.stats())]
    shown += [r.getMessage() for r in caplog.records]

    text = "\n".join(shown)
    assert PASSWORD not in text and QUERY_KEY not in text and "alice" not in text
    assert "http://***@127.0.0.1:" in lm.api_base and "api-key=***&v=2" in lm.api_base
    basic = base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
    (headers,) = server.stats().headers
    assert headers["authorization"] == secret_fingerprint(f"Basic {basic}")
    assert lm.copy(temperature=0.5).request_url() == lm.request_url()  # copies keep them
    other = dx.LM("openai/local-model", api_base=_with_credentials(server.url).replace("778", "9"))
    assert other.config_id != lm.config_id and other.endpoint == lm.endpoint


def test_a_short_key_never_mangles_messages(make_lm_server: MakeServer) -> None:
    def responder(request: ChatRequest) -> str:
        raise RuntimeError("rejected key o")

    server = make_lm_server(responder)
    lm = dx.LM("openai/local-model", api_base=server.url, api_key="o", num_retries=0)
    with dx.ActorSystem(lm=lm), pytest.raises(dx.LMHTTPStatusError) as failed:
        lm("hi")
    message = str(failed.value)
    assert f"{server.url}/chat/completions answered HTTP 500 for openai/local-model" in message
    assert "responder failed: RuntimeError: rejected key ***" in message
    assert redact_text("local-model at localhost", ["local"]) == "local-model at localhost"
    assert redact_text("Bearer sk-verylongkey123 sent", ["sk-verylongkey123"]) == "Bearer *** sent"


def test_no_key_for_a_remote_server_fails_at_construction(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(dx.ConfigurationError, match=r"no API key for openai/x at http://10\.1\.2\.3/v1"):
        dx.LM("openai/x", api_base="http://10.1.2.3/v1")
    with pytest.raises(dx.ConfigurationError, match="OPENAI_API_KEY"):
        dx.LM("openai/gpt-4o-mini")
    assert dx.LM("openai/x", api_base="http://127.0.0.1:8000/v1").api_key is None
    assert dx.LM("openai/x", api_base="http://localhost:8000/v1").api_key is None
    assert dx.LM("openai/x", api_base="http://10.1.2.3/v1", api_key="").api_key == ""
    assert dx.LM("openai/x", api_base="http://u:p@10.1.2.3/v1").endpoint.startswith("http://***@")


@pytest.mark.parametrize("key", ["sk-é", "sk-a\r\nX-Evil: 1", "sk-\n"])
def test_a_key_a_header_cannot_carry_is_refused(key: str) -> None:
    with pytest.raises(dx.ConfigurationError, match="HTTP header"):
        dx.LM("openai/x", api_key=key)


def test_local_server_stats_endpoint_redacts_credential_headers(lm_server: LocalLMServer) -> None:
    secret = "sk-stats-secret-424242"
    body = json.dumps(
        {"model": "local-model", "messages": [{"role": "user", "content": "What is 1 + 1?"}]}
    ).encode()
    headers = {
        "Content-Type": "application/json",
        "Authorization": f"Bearer {secret}",
        "X-Api-Key": secret,
        "X-Custom-Token": secret,
    }
    request = urllib.request.Request(
        f"{lm_server.url}/chat/completions", data=body, headers=headers
    )
    with urllib.request.urlopen(request, timeout=10) as reply:
        assert reply.status == 200
    with urllib.request.urlopen(f"{lm_server.root_url}/_dspex/stats", timeout=10) as reply:
        raw = reply.read().decode()
    assert secret not in raw
    (logged,) = json.loads(raw)["headers"]
    for name in ("authorization", "x-api-key", "x-custom-token"):
        value = next(v for k, v in logged.items() if k.lower() == name)
        assert value.startswith("*** sha256:")
