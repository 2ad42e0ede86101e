"""The Client's I/O on the system's event loop: threads, sockets, stop, deadlines, options."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

import pykka
import pytest

from dspex_actors import (
    ConfigurationError,
    LMHTTPStatusError,
    LMTimeoutError,
    LMUnavailableError,
)
from dspex_actors._types import LMResponse, Submit
from dspex_actors.lm import LM
from dspex_actors.lm._connector import check_aiohttp_hooks
from dspex_actors.system import ActorSystem
from dspex_actors.testing import Fault, LocalLMServer
from tests._support import user

WAIT = 30.0

MakeServer = Callable[..., LocalLMServer]
MakeSystem = Callable[..., ActorSystem]


def _sockets() -> int:
    """Open socket file descriptors of this process."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}").startswith("socket:"):
                count += 1
        except OSError:
            continue
    return count


def _submit_many(
    system: ActorSystem, lm: LM, count: int
) -> list[pykka.ThreadingFuture[LMResponse]]:
    """``count`` calls told straight to the LM's Client from this thread (no caller threads)."""
    ref = system.client_handle(lm).ref()
    futures = [pykka.ThreadingFuture[LMResponse]() for _ in range(count)]
    for index, future in enumerate(futures):
        ref.tell(Submit(user(f"question {index}", cache=False), future))
    return futures


def test_aiohttp_internals_the_connector_relies_on_are_unchanged() -> None:
    check_aiohttp_hooks()


def test_many_calls_in_flight_use_a_handful_of_threads(make_lm_server: MakeServer) -> None:
    """512 calls in flight at once: the system's threads stay <= 10, whatever C is."""
    server = make_lm_server()
    server.push_faults(*[Fault.hang(WAIT)] * 512)
    lm = LM("openai/local-model", api_base=server.url, max_concurrency=512, timeout=60)
    baseline = threading.active_count()
    system = ActorSystem(lm).start()
    try:
        futures = _submit_many(system, lm, 512)
        server.wait_for_stats(lambda s: s.in_flight == 512, WAIT)
        assert threading.active_count() - baseline <= 10, [t.name for t in threading.enumerate()]
    finally:
        system.stop()
    for future in futures:
        with pytest.raises(LMUnavailableError):
            future.get(timeout=WAIT)


def test_max_concurrency_1024_opens_1024_connections(make_lm_server: MakeServer) -> None:
    server = make_lm_server()
    server.push_faults(*[Fault.hang(WAIT)] * 1024)
    lm = LM("openai/local-model", api_base=server.url, max_concurrency=1024, timeout=60)
    with ActorSystem(lm) as system:
        futures = _submit_many(system, lm, 1100)
        stats = server.wait_for_stats(lambda s: s.in_flight == 1024, WAIT)
        assert stats.in_flight == 1024
        client = system.stats()["clients"][f"client:{lm.config_id}"]
        assert (client["in_flight"], client["queued"]) == (1024, 76)
    for future in futures:
        with pytest.raises(LMUnavailableError):
            future.get(timeout=WAIT)


def test_stop_cancels_stuck_calls_and_leaves_no_thread_or_socket(
    make_lm_server: MakeServer,
) -> None:
    """Calls stuck on a hung server with a long timeout: stop() ends them within 1 s."""
    server = make_lm_server()
    server.push_faults(*[Fault.hang(WAIT)] * 20)
    lm = LM("openai/local-model", api_base=server.url, timeout=120, num_retries=0)
    threads_before, sockets_before = set(threading.enumerate()), _sockets()
    system = ActorSystem(lm).start()
    futures = _submit_many(system, lm, 20)
    server.wait_for_stats(lambda s: s.in_flight == 20, WAIT)
    started = time.monotonic()
    system.stop()
    deadline = started + 1.0
    for thread in set(threading.enumerate()) - threads_before:
        thread.join(max(0.0, deadline - time.monotonic()))
    elapsed = time.monotonic() - started
    assert elapsed < 1.0, f"stop took {elapsed:.2f}s"
    assert not [t for t in set(threading.enumerate()) - threads_before if t.is_alive()]
    assert _sockets() <= sockets_before + 20  # only the server's side of the 20 is left
    server.close_connections()
    assert _sockets() <= sockets_before
    for future in futures:
        with pytest.raises(LMUnavailableError, match="stopped before the call finished"):
            future.get(timeout=WAIT)


def test_a_hung_reply_times_out_within_the_attempt_timeout(
    lm_server: LocalLMServer, make_system: MakeSystem
) -> None:
    lm_server.push_faults(Fault.hang(WAIT))
    lm = LM("openai/local-model", api_base=lm_server.url, timeout=0.3, num_retries=0)
    system = make_system(lm)
    started = time.monotonic()
    with pytest.raises(LMTimeoutError, match=r"did not answer within 0\.3s"):
        system.request(user("hang", cache=False))
    assert time.monotonic() - started < 1.3


def test_a_deadline_bounds_the_call_across_retries(
    lm_server: LocalLMServer, make_system: MakeSystem
) -> None:
    lm_server.push_faults(*[Fault.http(503)] * 50)
    lm = LM("openai/local-model", api_base=lm_server.url, num_retries=50, deadline=0.5)
    system = make_system(lm, retry_base_delay=0.05, retry_max_delay=0.1, breaker_fail_max=100)
    started = time.monotonic()
    with pytest.raises(LMTimeoutError, match=r"deadline of 0\.5s") as caught:
        system.request(user("q", cache=False))
    assert time.monotonic() - started < 1.5
    assert isinstance(caught.value.__cause__, LMHTTPStatusError)
    assert lm_server.stats().requests_total >= 2


def test_a_retry_after_beyond_the_deadline_fails_at_once(
    lm_server: LocalLMServer, make_system: MakeSystem
) -> None:
    lm_server.push_faults(Fault.http(429, retry_after=30))
    lm = LM("openai/local-model", api_base=lm_server.url, num_retries=3, deadline=5)
    system = make_system(lm)
    started = time.monotonic()
    with pytest.raises(LMTimeoutError, match="would pass before the next retry"):
        system.request(user("q", cache=False))
    assert time.monotonic() - started < 1.0
    assert lm_server.stats().requests_total == 1


def test_a_redirect_is_an_http_status_error_naming_it(make_system: MakeSystem) -> None:
    from dspex_actors.testing import HostileServer

    with HostileServer("redirect") as server:
        lm = LM("openai/hostile-model", api_base=server.url, num_retries=3)
        system = make_system(lm)
        with pytest.raises(LMHTTPStatusError, match=r"HTTP 301.*redirect to") as caught:
            system.request(user("q", cache=False))
        assert caught.value.status_code == 301
        assert server.requests == 1  # a redirect is not retried


def test_requests_ask_for_compression(lm_server: LocalLMServer, make_system: MakeSystem) -> None:
    lm = LM("openai/local-model", api_base=lm_server.url)
    make_system(lm).request(user("q", cache=False))
    headers = {k.lower(): v for k, v in lm_server.stats().headers[-1].items()}
    assert "gzip" in headers["accept-encoding"]
    assert headers["user-agent"].startswith("dspex-actors/")


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"proxy": True}, "proxy must be a proxy URL"),
        ({"proxy": "ftp://proxy:21"}, "http:// or https:// proxy URL"),
        ({"verify": "/no/such/ca.pem"}, "no CA bundle"),
        ({"verify": 3}, "verify must be True, False or a CA bundle path"),
        ({"max_response_bytes": 0}, "max_response_bytes"),
        ({"deadline": -1}, "deadline"),
    ],
)
def test_bad_http_options_are_configuration_errors(
    options: dict[str, object], fragment: str
) -> None:
    with pytest.raises(ConfigurationError, match=fragment):
        LM("openai/x", **options)  # type: ignore[arg-type]


def test_proxy_credentials_stay_out_of_repr_and_config_id() -> None:
    lm = LM("openai/x", api_key="k", proxy="http://user:s3cret@127.0.0.1:3128")
    assert "s3cret" not in repr(lm)
    assert "user" not in repr(lm)
    assert "s3cret" not in lm.config_id
    assert LM("openai/x", api_key="k", proxy="http://user:other@127.0.0.1:3128") != lm
    assert "proxy" not in lm.kwargs


@pytest.mark.parametrize("key", ["sk-abc\n", "sk-ab\r\nX-Evil: 1", "sk-é", " sk-padded"])
def test_a_key_a_header_cannot_carry_is_refused_at_construction(key: str) -> None:
    with pytest.raises(ConfigurationError, match="cannot be sent in an HTTP header") as caught:
        LM("openai/x", api_key=key)
    assert key.strip() not in str(caught.value)


def test_absurd_num_threads_is_a_configuration_error() -> None:
    from dspex_actors import Evaluate, answer_exact_match

    with pytest.raises(ConfigurationError, match="num_threads=100000 is more than 4096"):
        Evaluate(devset=[], metric=answer_exact_match, num_threads=100_000)
