"""ActorSystem lifecycle, current_system(), configure() and isolation between systems."""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable
from typing import Any

import pytest

import dspex_actors as dx
from dspex_actors import ConfigurationError, LMUnavailableError
from dspex_actors.lm import LM, LMRequest
from dspex_actors.system import ActorSystem, configure, current_system, shutdown_default
from dspex_actors.testing import LocalLMServer

SECRET = "sk-test-SECRET-0123456789"
WAIT = 30.0

MakeSystem = Callable[..., ActorSystem]
Req = Callable[..., LMRequest]


def in_thread(fn: Callable[[], Any]) -> Any:
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(fn()))
    thread.start()
    thread.join(WAIT)
    assert result, "the thread failed or hung"
    return result[0]


def test_public_names() -> None:
    assert dx.LM is LM and dx.ActorSystem is ActorSystem
    assert dx.configure is configure and dx.current_system is current_system
    assert {"LM", "LMRequest", "LMResponse", "ActorSystem", "configure"} <= set(dx.__all__)


def test_context_manager_makes_the_system_current(lm_server: LocalLMServer) -> None:
    lm = LM("openai/local-model", api_base=lm_server.url)
    with ActorSystem(lm=lm) as system:
        assert system.running and current_system() is system
        assert lm("What is 2 + 2?")[0]
        assert in_thread(current_system) is system  # a plain thread started inside
        ctx = contextvars.copy_context()
        assert in_thread(lambda: ctx.run(current_system)) is system
        with ActorSystem(lm=lm) as inner:
            assert current_system() is inner
        assert current_system() is system
    assert not system.running
    assert current_system() is not system


def test_entering_a_started_system_does_not_stop_it(lm_server: LocalLMServer) -> None:
    system = ActorSystem(LM("openai/local-model", api_base=lm_server.url)).start()
    try:
        with system:
            assert current_system() is system
        assert system.running
    finally:
        system.stop()
    assert not system.running


def test_threads_entering_one_started_system_at_once(lm_server: LocalLMServer) -> None:
    system = ActorSystem(LM("openai/local-model", api_base=lm_server.url)).start()
    barrier = threading.Barrier(4, timeout=WAIT)
    errors: list[BaseException] = []
    seen: list[ActorSystem] = []

    def enter_and_call() -> None:
        try:
            barrier.wait()
            with system:
                barrier.wait()  # every thread is inside its own ``with`` at once
                seen.append(current_system())
                dx.Predict("question -> answer")(question="What is 1 + 1?")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=enter_and_call) for _ in range(4)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(WAIT)
        assert errors == []
        assert seen == [system] * 4
        assert system.running
    finally:
        system.stop()


def test_request_needs_an_lm(lm_server: LocalLMServer, make_system: MakeSystem, req: Req) -> None:
    system = make_system()
    with pytest.raises(ConfigurationError, match="no LM configured"):
        system.request(req("hi"))
    lm = LM("openai/local-model", api_base=lm_server.url)
    assert system.request(req("hi"), lm=lm).texts
    with pytest.raises(ConfigurationError):
        system.request("hi", lm=lm)  # type: ignore[arg-type]


def test_request_on_a_stopped_system_is_a_clear_error(req: Req) -> None:
    system = ActorSystem(LM("openai/x", api_base="http://127.0.0.1:9/v1"))
    with pytest.raises(LMUnavailableError, match="not running"):
        system.request(req("hi"))


def test_bad_options_are_configuration_errors() -> None:
    with pytest.raises(ConfigurationError, match="cache_maxsize"):
        ActorSystem(cache_maxsize=0)
    with pytest.raises(ConfigurationError, match="lm must be"):
        ActorSystem(lm="openai/x")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="no_such_option"):
        configure(no_such_option=1)


def test_restart_after_stop(lm_server: LocalLMServer, make_system: MakeSystem, req: Req) -> None:
    system = make_system(LM("openai/local-model", api_base=lm_server.url))
    assert system.request(req("a")).texts
    system.stop()
    system.start()
    assert system.request(req("b")).texts


def test_two_systems_do_not_share_lm_cache_or_counters(
    make_lm_server: Callable[..., LocalLMServer], make_system: MakeSystem, req: Req
) -> None:
    server_a, server_b = make_lm_server(), make_lm_server()
    lm_a = LM("openai/local-model", api_base=server_a.url)
    lm_b = LM("openai/local-model", api_base=server_b.url)
    system_a, system_b = make_system(lm_a), make_system(lm_b)
    system_a.request(req("same"))
    system_b.request(req("same"))
    system_b.request(req("same"))
    assert (server_a.stats().requests_total, server_b.stats().requests_total) == (1, 1)
    (client_a,) = system_a.stats()["clients"].values()
    (client_b,) = system_b.stats()["clients"].values()
    assert client_a["endpoint"] == lm_a.endpoint and client_b["endpoint"] == lm_b.endpoint
    assert system_a.stats()["cache"]["hits"] == 0
    assert system_b.stats()["cache"]["hits"] == 1
    # Same LM in both systems: separate caches and Client actors.
    system_a.request(req("other"), lm=lm_b)
    assert server_b.stats().requests_total == 2


def test_one_client_per_lm_config(
    lm_server: LocalLMServer, make_system: MakeSystem, req: Req
) -> None:
    lm = LM("openai/local-model", api_base=lm_server.url)
    system = make_system(lm)
    system.request(req("a"))
    system.request(req("b"), lm=LM("openai/local-model", api_base=lm_server.url))
    system.request(req("c"), lm=lm.copy(temperature=0.5))
    assert len(system.stats()["clients"]) == 2
    assert len(system.stats()["breakers"]) == 1  # one breaker per endpoint


def test_configure_default_system(lm_server: LocalLMServer) -> None:
    lm = LM("openai/local-model", api_base=lm_server.url)
    configure(lm=lm)
    system = current_system()
    assert system.running and system.lm is lm
    assert lm("hello")[0]
    assert in_thread(current_system) is system
    other = lm.copy(temperature=0.3)
    configure(lm=other)
    assert current_system() is system and system.lm is other
    configure(lm=other, cache_maxsize=10)
    replaced = current_system()
    assert replaced is not system and not system.running
    shutdown_default()
    assert not replaced.running
    assert current_system() is replaced and replaced.running  # lazily restarted
    shutdown_default(reset=True)
    assert current_system().lm is None


def test_secrets_stay_out_of_repr_and_stats(
    lm_server: LocalLMServer, make_system: MakeSystem, req: Req
) -> None:
    lm = LM("openai/local-model", api_base=lm_server.url, api_key=SECRET)
    system = make_system(lm)
    system.request(req("hi"))
    assert SECRET not in repr(system)
    assert SECRET not in repr(system.stats())
