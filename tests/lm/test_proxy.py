"""Proxies: HTTP(S)_PROXY / NO_PROXY from the environment, LM(proxy=...), through a real tinyproxy.

The LM server listens on 127.0.0.2 so a request that went through the proxy (which adds
a ``Via`` header and logs the URL) is told apart from one that went direct.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from dspex_actors import LMConnectionError
from dspex_actors.lm import LM
from dspex_actors.system import ActorSystem
from dspex_actors.testing import LocalLMServer, secret_fingerprint
from tests._proxy import TinyProxy
from tests._support import user

MakeSystem = Callable[..., ActorSystem]

_PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


@pytest.fixture
def server() -> Iterator[LocalLMServer]:
    with LocalLMServer(host="127.0.0.2") as server:
        yield server


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


def _via_proxy(server: LocalLMServer) -> list[bool]:
    """For each request the server saw: whether it came through tinyproxy."""
    return [
        "tinyproxy" in {k.lower(): v for k, v in headers.items()}.get("via", "")
        for headers in server.stats().headers
    ]


def _calls(system: ActorSystem, count: int) -> None:
    for index in range(count):
        assert system.request(user(f"What is {index} + 1?", cache=False)).texts


def test_the_environment_proxy_is_used(
    server: LocalLMServer,
    tinyproxy: TinyProxy,
    make_system: MakeSystem,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTP_PROXY", tinyproxy.url)
    lm = LM("openai/local-model", api_base=server.url)
    system = make_system(lm)
    _calls(system, 20)  # tinyproxy closes the client connection after every reply
    assert _via_proxy(server) == [True] * 20
    assert f"{server.url}/chat/completions" in tinyproxy.forwarded_urls()
    client = system.stats()["clients"][f"client:{lm.config_id}"]
    assert client["proxy"] == tinyproxy.url
    assert client["failures"] == 0


def test_no_proxy_is_respected(
    server: LocalLMServer,
    tinyproxy: TinyProxy,
    make_system: MakeSystem,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTP_PROXY", tinyproxy.url)
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.2")
    system = make_system(LM("openai/local-model", api_base=server.url))
    _calls(system, 3)
    assert _via_proxy(server) == [False] * 3
    assert tinyproxy.forwarded() == []


def test_an_explicit_proxy_is_used_and_never_sent_as_a_parameter(
    server: LocalLMServer, tinyproxy: TinyProxy, make_system: MakeSystem
) -> None:
    system = make_system(LM("openai/local-model", api_base=server.url, proxy=tinyproxy.url))
    _calls(system, 3)
    assert _via_proxy(server) == [True] * 3
    assert all("proxy" not in body for body in server.stats().requests)


def test_proxy_false_ignores_the_environment(
    server: LocalLMServer,
    tinyproxy: TinyProxy,
    make_system: MakeSystem,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTP_PROXY", tinyproxy.url)
    system = make_system(LM("openai/local-model", api_base=server.url, proxy=False))
    _calls(system, 2)
    assert _via_proxy(server) == [False] * 2
    assert tinyproxy.forwarded() == []


def test_an_unreachable_proxy_is_a_connection_error_without_its_password(
    server: LocalLMServer, make_system: MakeSystem
) -> None:
    lm = LM(
        "openai/local-model",
        api_base=server.url,
        proxy="http://alice:pa55word@127.0.0.1:9",
        num_retries=0,
    )
    system = make_system(lm)
    with pytest.raises(
        LMConnectionError, match=r"cannot reach the proxy http://127\.0\.0\.1:9"
    ) as caught:
        system.request(user("q", cache=False))
    assert "pa55word" not in str(caught.value)
    assert "alice" not in str(caught.value)
    assert server.stats().requests_total == 0


def test_proxy_credentials_reach_the_proxy_as_a_header(
    server: LocalLMServer, make_system: MakeSystem
) -> None:
    """A proxy URL with user:password sends Proxy-Authorization (seen here at a fake proxy:
    the LM server itself, which receives the absolute-URI request as a proxy would)."""
    lm = LM(
        "openai/local-model",
        api_base=server.url,
        proxy=f"http://alice:pa55@{server.host}:{server.port}",
    )
    make_system(lm).request(user("q", cache=False))
    headers = {k.lower(): v for k, v in server.stats().headers[-1].items()}
    assert headers["proxy-authorization"] == secret_fingerprint("Basic YWxpY2U6cGE1NQ==")
