"""The streaming seam: a Submit with a sink gets the reply's pieces as they arrive (SSE)."""

from __future__ import annotations

import queue
from collections.abc import Callable

import pykka
import pytest

from dspex_actors import LMConnectionError
from dspex_actors._types import LMResponse, StreamChunk, Submit
from dspex_actors.lm import LM
from dspex_actors.system import ActorSystem
from dspex_actors.testing import Fault, LocalLMServer
from tests._support import user

WAIT = 20.0
MakeServer = Callable[..., LocalLMServer]
MakeSystem = Callable[..., ActorSystem]


def _streamed(
    system: ActorSystem, lm: LM, text: str, **params: object
) -> tuple[pykka.ThreadingFuture[LMResponse], queue.SimpleQueue[StreamChunk]]:
    sink: queue.SimpleQueue[StreamChunk] = queue.SimpleQueue()
    reply = pykka.ThreadingFuture[LMResponse]()
    system.client_handle(lm).ref().tell(Submit(user(text, cache=False, **params), reply, sink))
    return reply, sink


def _drain(sink: queue.SimpleQueue[StreamChunk]) -> list[StreamChunk]:
    chunks = []
    while not sink.empty():
        chunks.append(sink.get_nowait())
    return chunks


def test_pieces_arrive_and_add_up_to_the_reply(
    make_lm_server: MakeServer, make_system: MakeSystem
) -> None:
    server = make_lm_server("echo", stream_chunk_chars=4, stream_interval=0.01)
    lm = LM("openai/local-model", api_base=server.url)
    system = make_system(lm)
    reply, sink = _streamed(system, lm, "stream me please")
    first = sink.get(timeout=WAIT)
    with pytest.raises(pykka.Timeout):  # a piece arrived while the call was still going
        reply.get(timeout=0)
    response = reply.get(timeout=WAIT)
    chunks = [first, *_drain(sink)]
    assert "".join(c.text for c in chunks) == response.texts[0]
    assert len(chunks) > 2 and all(c.choice == 0 and c.attempt == 1 for c in chunks)
    assert response.finish_reasons == ("stop",)
    assert response.usage["total_tokens"] > 0
    whole = system.request(user("stream me please", cache=False))
    assert whole.texts == response.texts
    body = server.stats().requests[0]
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}


def test_two_choices_stream_side_by_side(
    make_lm_server: MakeServer, make_system: MakeSystem
) -> None:
    server = make_lm_server("echo", stream_chunk_chars=3)
    lm = LM("openai/local-model", api_base=server.url)
    system = make_system(lm)
    reply, sink = _streamed(system, lm, "two of them", n=2)
    response = reply.get(timeout=WAIT)
    chunks = _drain(sink)
    for choice in (0, 1):
        text = "".join(c.text for c in chunks if c.choice == choice)
        assert text == response.texts[choice]


def test_a_failure_before_any_piece_is_retried_and_pieces_carry_the_attempt(
    make_lm_server: MakeServer, make_system: MakeSystem
) -> None:
    server = make_lm_server("echo", stream_chunk_chars=2)
    server.push_faults(Fault.http(503))
    lm = LM("openai/local-model", api_base=server.url, num_retries=1)
    system = make_system(lm)
    reply, sink = _streamed(system, lm, "retry this one")
    response = reply.get(timeout=WAIT)
    chunks = _drain(sink)
    assert {c.attempt for c in chunks} == {2}
    assert "".join(c.text for c in chunks) == response.texts[0]


def test_a_stream_cut_after_pieces_is_not_retried(
    make_lm_server: MakeServer, make_system: MakeSystem
) -> None:
    server = make_lm_server("echo", stream_chunk_chars=2)
    server.push_faults(Fault.parse("stream_cut"))
    lm = LM("openai/local-model", api_base=server.url, num_retries=3)
    system = make_system(lm)
    reply, sink = _streamed(system, lm, "cut this one")
    with pytest.raises(LMConnectionError):
        reply.get(timeout=WAIT)
    assert _drain(sink)  # the consumer saw pieces: a retry would repeat them
    assert server.stats().requests_total == 1


def test_a_cut_stream_without_retries_is_a_connection_error(
    make_lm_server: MakeServer, make_system: MakeSystem
) -> None:
    server = make_lm_server("echo")
    server.push_faults(Fault.parse("stream_cut"))
    lm = LM("openai/local-model", api_base=server.url, num_retries=0)
    system = make_system(lm)
    reply, _ = _streamed(system, lm, "cut")
    with pytest.raises(LMConnectionError):
        reply.get(timeout=WAIT)
