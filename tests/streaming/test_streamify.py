"""streamify: listened fields arrive as the LM writes them, then the Prediction."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

import dspex_actors as dx
from dspex_actors import ConfigurationError, LMConnectionError
from dspex_actors.primitives import Module
from dspex_actors.testing import Fault, LocalLMServer

MakeServer = Callable[..., LocalLMServer]
WAIT = 20.0


def _collect(stream: Any, **inputs: Any) -> list[tuple[float, Any]]:
    """(arrival time, item) for every item of an async stream, run to its end."""

    async def main() -> list[tuple[float, Any]]:
        items = []
        async for item in stream(**inputs):
            items.append((time.monotonic(), item))
        return items

    return asyncio.run(asyncio.wait_for(main(), WAIT))


def _text(items: list[Any], field: str) -> str:
    return "".join(
        i.chunk
        for i in items
        if isinstance(i, dx.StreamResponse) and i.signature_field_name == field
    )


def test_chain_of_thought_streams_reasoning_then_answer(make_lm_server: MakeServer) -> None:
    server = make_lm_server(stream_chunk_chars=4, stream_interval=0.03)
    cot = dx.ChainOfThought("question -> answer")
    listeners = [dx.StreamListener("reasoning"), dx.StreamListener("answer")]
    with dx.ActorSystem(lm=dx.LM("openai/local-model", api_base=server.url)):
        timed = _collect(dx.streamify(cot, stream_listeners=listeners), question="What is 4 + 4?")
    items = [item for _, item in timed]
    final = items[-1]
    assert isinstance(final, dx.Prediction)
    assert _text(items, "reasoning") == final.reasoning
    assert _text(items, "answer") == final.answer == "8"
    pieces = [i for i in items if isinstance(i, dx.StreamResponse)]
    fields = [p.signature_field_name for p in pieces]
    assert fields == sorted(fields, key=["reasoning", "answer"].index)  # reasoning first
    assert [p.is_last_chunk for p in pieces].count(True) == 2
    assert {p.predict_name for p in pieces} == {"predict"}
    first_answer = next(t for t, i in timed if getattr(i, "signature_field_name", "") == "answer")
    assert timed[-1][0] - first_answer >= 0.1  # the answer arrived while the LM still wrote
    stats = server.stats()
    assert (stats.requests_total, stats.streams) == (1, 1)  # exactly one request, streamed


@pytest.mark.parametrize("chunk_chars", [1, 2, 3, 7])
def test_markers_split_across_chunks(make_lm_server: MakeServer, chunk_chars: int) -> None:
    server = make_lm_server(stream_chunk_chars=chunk_chars)
    cot = dx.ChainOfThought("question -> answer: int")
    stream = dx.streamify(
        cot,
        stream_listeners=[dx.StreamListener("reasoning"), dx.StreamListener("answer")],
        async_streaming=False,
    )
    with dx.ActorSystem(lm=dx.LM("openai/local-model", api_base=server.url, cache=False)):
        items = list(stream(question="What is 6 + 7?"))
    final = items[-1]
    assert final.answer == 13
    assert _text(items, "answer") == "13"
    assert _text(items, "reasoning") == final.reasoning


def test_a_cached_answer_streams_whole_without_a_request(lm_server: LocalLMServer) -> None:
    qa = dx.Predict("question -> answer")
    stream = dx.streamify(qa, stream_listeners=[dx.StreamListener("answer")])
    with dx.ActorSystem(lm=dx.LM("openai/local-model", api_base=lm_server.url)):
        first = [i for _, i in _collect(stream, question="What is 2 + 2?")]
        again = [i for _, i in _collect(stream, question="What is 2 + 2?")]
    assert lm_server.stats().requests_total == 1
    assert again[:-1] == [dx.StreamResponse("self", "answer", "4", True)]
    assert _text(first, "answer") == "4"


def test_without_listeners_only_the_prediction_comes(lm_server: LocalLMServer) -> None:
    with dx.ActorSystem(lm=dx.LM("openai/local-model", api_base=lm_server.url)):
        items = [
            i
            for _, i in _collect(
                dx.streamify(dx.Predict("question -> answer")), question="What is 1 + 1?"
            )
        ]
    assert len(items) == 1 and items[0].answer == "2"
    assert lm_server.stats().streams == 0


def test_a_cut_stream_raises_a_typed_error(make_lm_server: MakeServer) -> None:
    server = make_lm_server(stream_chunk_chars=2)
    server.push_faults(Fault.parse("stream_cut"))
    qa = dx.Predict("question -> answer")
    stream = dx.streamify(qa, stream_listeners=[dx.StreamListener("answer")])
    lm = dx.LM("openai/local-model", api_base=server.url, num_retries=3, cache=False)
    with dx.ActorSystem(lm=lm), pytest.raises(LMConnectionError):
        _collect(stream, question="What is 3 + 3?")
    assert server.stats().requests_total == 1  # pieces were seen: not retried


def test_a_listener_for_a_missing_field_names_it_and_the_signature() -> None:
    with pytest.raises(ConfigurationError, match=r"'summary'.*question -> answer"):
        dx.streamify(
            dx.Predict("question -> answer"), stream_listeners=[dx.StreamListener("summary")]
        )


def test_an_ambiguous_field_asks_for_the_predictor() -> None:
    class Two(Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = dx.Predict("question -> answer")
            self.b = dx.Predict("question -> answer")

    program = Two()
    with pytest.raises(ConfigurationError, match="several predictors"):
        dx.streamify(program, stream_listeners=[dx.StreamListener("answer")])
    dx.streamify(program, stream_listeners=[dx.StreamListener("answer", predict=program.b)])


@pytest.mark.parametrize("chunk_chars", [1, 4])
def test_json_adapter_output_streams_from_dx_context(
    make_lm_server: MakeServer, chunk_chars: int
) -> None:
    server = make_lm_server(stream_chunk_chars=chunk_chars, stream_interval=0.002)
    cot = dx.ChainOfThought("question -> answer")
    listeners = [dx.StreamListener("reasoning"), dx.StreamListener("answer")]
    lm = dx.LM("openai/local-model", api_base=server.url, cache=False)
    with dx.ActorSystem(lm=lm), dx.context(adapter=dx.JSONAdapter()):
        items = [
            i
            for _, i in _collect(
                dx.streamify(cot, stream_listeners=listeners), question="What is 4 + 4?"
            )
        ]
    final = items[-1]
    assert _text(items, "reasoning") == final.reasoning and final.reasoning
    assert _text(items, "answer") == final.answer == "8"
    stats = server.stats()
    assert (stats.requests_total, stats.streams) == (1, 1)
    sent = stats.last_request
    assert sent["stream"] is True and sent["response_format"] == {"type": "json_object"}
