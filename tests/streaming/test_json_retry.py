"""A streamed ChatAdapter call whose reply does not parse: the JSON-mode retry and the stream.

Seen with llama-cpp-python's server and SmolLM2-135M: the model ignores the chat markers,
the adapter retries once in JSON mode, and that retry's reply is what the listeners follow.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

import dspex_actors as dx
from dspex_actors.testing import LocalLMServer, fixed_responder

MakeServer = Callable[..., LocalLMServer]
WAIT = 20.0
JSON_REPLY = '{"reasoning": "two plus three is five", "answer": "5"}'


def _stream(url: str, items: list[Any]) -> None:
    """Run a streamed ChainOfThought (ChatAdapter, both fields listened), items into ``items``."""
    cot = dx.ChainOfThought("question -> answer")
    listeners = [dx.StreamListener("reasoning"), dx.StreamListener("answer")]

    async def main() -> None:
        async for item in dx.streamify(cot, stream_listeners=listeners)(question="2 + 3?"):
            items.append(item)

    lm = dx.LM("openai/local-model", api_base=url, cache=False)
    with dx.ActorSystem(lm=lm):
        asyncio.run(asyncio.wait_for(main(), WAIT))


def _pieces(items: list[Any], field: str) -> list[str]:
    return [
        i.chunk
        for i in items
        if isinstance(i, dx.StreamResponse) and i.signature_field_name == field
    ]


def test_the_json_retry_of_an_unmarked_reply_streams_as_json(make_lm_server: MakeServer) -> None:
    server = make_lm_server(
        fixed_responder("The answer is 5 answer##", JSON_REPLY), stream_chunk_chars=4
    )
    items: list[Any] = []
    _stream(server.url, items)
    final = items[-1]
    assert isinstance(final, dx.Prediction) and final.answer == "5"
    reasoning = _pieces(items, "reasoning")
    assert len(reasoning) > 2  # pieces as they came, not the value given whole at the end
    assert "".join(reasoning) == final.reasoning == "two plus three is five"
    assert "".join(_pieces(items, "answer")) == "5"
    first, retry = server.stats().requests
    assert first["stream"] is True and "response_format" not in first
    assert retry["stream"] is True and retry["response_format"] == {"type": "json_object"}


def test_no_json_retry_once_the_failed_reply_streamed_a_field(make_lm_server: MakeServer) -> None:
    chat_reply = "[[ ## reasoning ## ]]\nI think it is five\n\nanswer## 5"
    server = make_lm_server(fixed_responder(chat_reply, JSON_REPLY), stream_chunk_chars=4)
    items: list[Any] = []
    with pytest.raises(dx.AdapterParseError, match="already given out `reasoning`") as caught:
        _stream(server.url, items)
    assert "question -> reasoning, answer" in str(caught.value)
    assert "".join(_pieces(items, "reasoning")).startswith("I think it is five")
    assert not any(isinstance(i, dx.Prediction) for i in items)
    assert server.stats().requests_total == 1  # the retry was not sent
