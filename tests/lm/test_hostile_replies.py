"""The Client against servers that misbehave on purpose (``testing.HostileServer``).

Each case is one a user's provider or proxy can produce: a trickled reply, an endless,
huge or gzip-bomb body, a reply too many on a kept-alive connection (in the same read or
later, while the connection is idle), a redirect, a dropped reply, an untrusted
certificate.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pykka
import pytest

from dspex_actors import (
    LMConnectionError,
    LMTimeoutError,
    LMTLSError,
    MalformedResponseError,
)
from dspex_actors._types import LMResponse, StreamChunk, Submit
from dspex_actors.lm import LM
from dspex_actors.system import ActorSystem
from dspex_actors.testing import (
    STALE_REPLY_CONTENT,
    HostileServer,
    self_signed_certificate,
    server_ssl_context,
)
from tests._support import user

MakeSystem = Callable[..., ActorSystem]
WAIT = 30.0
MB = 2**20


def _rss() -> int:
    """This process's resident set size in bytes."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


@pytest.fixture
def hostile() -> Iterator[Callable[..., HostileServer]]:
    servers: list[HostileServer] = []

    def make(behaviour: str, **options: object) -> HostileServer:
        server = HostileServer(behaviour, **options).start()  # type: ignore[arg-type]
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


def _lm(server: HostileServer, **options: object) -> LM:
    return LM("openai/hostile-model", api_base=server.url, **options)  # type: ignore[arg-type]


def test_a_trickled_reply_times_out_within_the_attempt_timeout(
    hostile: Callable[..., HostileServer], make_system: MakeSystem
) -> None:
    server = hostile("trickle", interval=0.05)
    system = make_system(_lm(server, timeout=1.0, num_retries=0))
    started = time.monotonic()
    with pytest.raises(LMTimeoutError, match=r"did not answer within 1s"):
        system.request(user("q", cache=False))
    assert time.monotonic() - started < 2.0
    assert server.wait_connections_closed(WAIT)  # the stuck connection was let go


@pytest.mark.parametrize("behaviour", ["endless", "oversized", "gzip_bomb"])
def test_huge_bodies_are_malformed_replies_with_bounded_memory(
    behaviour: str, hostile: Callable[..., HostileServer], make_system: MakeSystem
) -> None:
    server = hostile(behaviour)
    system = make_system(_lm(server, timeout=20.0, num_retries=0))
    before = _rss()
    started = time.monotonic()
    with pytest.raises(MalformedResponseError, match="larger than max_response_bytes"):
        system.request(user("q", cache=False))
    assert time.monotonic() - started < 20.0
    assert _rss() - before < 100 * MB
    assert server.wait_connections_closed(WAIT)


def test_a_smaller_cap_applies_to_the_decoded_size(
    hostile: Callable[..., HostileServer], make_system: MakeSystem
) -> None:
    server = hostile("gzip_bomb", decoded_size=4 * MB)
    system = make_system(_lm(server, max_response_bytes=MB, num_retries=0))
    with pytest.raises(MalformedResponseError, match="max_response_bytes=1048576"):
        system.request(user("q", cache=False))


@pytest.mark.parametrize("behaviour", ["extra_reply_same_read", "extra_reply_later"])
def test_an_unsolicited_reply_never_reaches_the_next_call_or_the_cache(
    behaviour: str, hostile: Callable[..., HostileServer], make_system: MakeSystem
) -> None:
    server = hostile(behaviour)
    system = make_system(_lm(server))
    first = system.request(user("first"))
    assert first.texts == ("reply to: first",)
    assert server.wait_extra_sent(WAIT)
    if behaviour == "extra_reply_later":  # in the client's receive buffer before the next call
        assert server.wait_extra_written(WAIT)
    for index in range(3):
        answer = system.request(user(f"next {index}"))
        assert answer.texts == (f"reply to: next {index}",)
    assert server.connections >= 2  # the connection with the stale bytes was not reused
    again = [system.request(user(q)).texts for q in ("first", "next 0", "next 1", "next 2")]
    assert all(STALE_REPLY_CONTENT not in texts[0] for texts in again)
    assert system.stats()["cache"]["hits"] == 4


def test_a_reply_cut_after_its_headers_is_a_retried_connection_error(
    hostile: Callable[..., HostileServer], make_system: MakeSystem
) -> None:
    server = hostile("close_after_headers")
    system = make_system(_lm(server, num_retries=2), breaker_fail_max=100)
    with pytest.raises(LMConnectionError):
        system.request(user("q", cache=False))
    assert server.requests == 3


def test_a_stream_that_ended_without_its_final_event_leaves_no_connection_to_reuse(
    hostile: Callable[..., HostileServer], make_system: MakeSystem
) -> None:
    # llama-cpp-python's server: a kept-alive 200 stream with no event, closed a moment later.
    server = hostile("empty_stream_then_close")
    lm = _lm(server, num_retries=0)
    system = make_system(lm)
    sink: queue.SimpleQueue[StreamChunk] = queue.SimpleQueue()
    reply = pykka.ThreadingFuture[LMResponse]()
    system.client_handle(lm).ref().tell(Submit(user("overflow", cache=False), reply, sink))
    with pytest.raises(LMConnectionError, match="ended before its final event"):
        reply.get(timeout=WAIT)
    assert sink.empty()
    answer = system.request(user("next", cache=False))  # no retry to hide a lost request
    assert answer.texts == ("reply to: next",)
    assert server.connections == 2 and server.requests == 2


@pytest.fixture
def tls_files(tmp_path: Path) -> tuple[Path, Path]:
    return self_signed_certificate(tmp_path)


def test_an_untrusted_certificate_is_not_retried_nor_an_outage(
    tls_files: tuple[Path, Path],
    hostile: Callable[..., HostileServer],
    make_system: MakeSystem,
) -> None:
    server = hostile("normal", ssl_context=server_ssl_context(*tls_files))
    lm = _lm(server, num_retries=3)
    system = make_system(lm)
    for _ in range(6):
        with pytest.raises(LMTLSError, match="verify="):
            system.request(user("q", cache=False))
    assert server.requests == 0
    breaker = system.stats()["breakers"][lm.endpoint]
    assert (breaker["state"], breaker["fail_counter"]) == ("closed", 0)
    client = system.stats()["clients"][f"client:{lm.config_id}"]
    assert (client["attempts"], client["retries"]) == (6, 0)


def test_a_private_ca_bundle_or_no_verification_reaches_the_server(
    tls_files: tuple[Path, Path],
    hostile: Callable[..., HostileServer],
    make_system: MakeSystem,
) -> None:
    cert, _ = tls_files
    server = hostile("normal", ssl_context=server_ssl_context(*tls_files))
    trusted = make_system(_lm(server, verify=str(cert)))
    assert trusted.request(user("trusted", cache=False)).texts == ("reply to: trusted",)
    unverified = make_system(_lm(server, verify=False))
    assert unverified.request(user("open", cache=False)).texts == ("reply to: open",)
    assert server.requests == 2
