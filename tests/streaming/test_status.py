"""Status messages in a stream (DSPy's StatusMessageProvider), in order with the pieces."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import dspex_actors as dx
from dspex_actors.streaming import StatusMessage, StatusMessageProvider, apply_sync_streaming
from dspex_actors.telemetry._callbacks import context_callbacks
from dspex_actors.testing import LocalLMServer

MakeServer = Callable[..., LocalLMServer]
WAIT = 20.0


def _collect(stream: Any, **inputs: Any) -> list[Any]:
    async def main() -> list[Any]:
        return [item async for item in stream(**inputs)]

    return asyncio.run(asyncio.wait_for(main(), WAIT))


def _messages(items: list[Any]) -> list[str]:
    return [item.message for item in items if isinstance(item, StatusMessage)]


def lookup_capital(country: str) -> str:
    """Look up the capital of a country."""
    return "Zorbaville"


def test_an_agent_streams_its_tool_calls_as_dspy_words_them(lm_server: LocalLMServer) -> None:
    react = dx.ReAct("question -> answer", tools=[lookup_capital])
    stream = dx.streamify(react)
    with dx.ActorSystem(lm=dx.LM("openai/local-model", api_base=lm_server.url)):
        items = _collect(stream, question="Use lookup_capital: the capital of Freedonia?")
    assert _messages(items) == [  # none for ReAct's own `finish` step
        "Calling tool lookup_capital...",
        "Tool calling finished! Querying the LLM with tool calling results...",
    ]
    assert isinstance(items[-1], dx.Prediction) and items[-1].answer == "Zorbaville"
    assert context_callbacks().get() is None  # installed in the streamed run only


class Steps(StatusMessageProvider):
    def module_start_status_message(self, instance: Any, inputs: dict[str, Any]) -> str:
        return f"start {type(instance).__name__}"

    def module_end_status_message(self, outputs: Any) -> str:
        return "end"

    def lm_start_status_message(self, instance: Any, inputs: dict[str, Any]) -> str:
        return f"calling {instance.model}"


def test_a_provider_of_ones_own_in_order_with_the_pieces(make_lm_server: MakeServer) -> None:
    server = make_lm_server(stream_chunk_chars=2)
    stream = dx.streamify(
        dx.Predict("question -> answer"),
        status_message_provider=Steps(),
        stream_listeners=[dx.StreamListener("answer")],
    )
    with dx.ActorSystem(lm=dx.LM("openai/local-model", api_base=server.url, cache=False)):
        items = _collect(stream, question="What is 40 + 2?")
    kinds = [
        item.message if isinstance(item, StatusMessage) else type(item).__name__
        for item in items
    ]
    assert kinds[:2] == ["start Predict", "calling openai/local-model"]
    assert kinds[-2:] == ["end", "Prediction"]
    assert set(kinds[2:-2]) == {"StreamResponse"}
    assert "".join(i.chunk for i in items if isinstance(i, dx.StreamResponse)) == "42"


class ToolInAThread(dx.Module):
    """A program with ``forward`` only: streamify runs it on a worker thread."""

    def __init__(self) -> None:
        super().__init__()
        self.tool = dx.Tool(lookup_capital)
        self.threads: list[threading.Thread] = []

    def forward(self, country: str) -> dx.Prediction:
        self.threads.append(threading.current_thread())
        return dx.Prediction(capital=self.tool(country=country))


def test_messages_from_a_worker_thread_and_the_sync_stream(lm_server: LocalLMServer) -> None:
    program = ToolInAThread()
    with dx.ActorSystem(lm=dx.LM("openai/local-model", api_base=lm_server.url)):
        plain = list(dx.streamify(program, async_streaming=False)(country="Freedonia"))
        helper = list(apply_sync_streaming(dx.streamify(program)(country="Freedonia")))
    for items in (plain, helper):
        assert _messages(items) == [
            "Calling tool lookup_capital...",
            "Tool calling finished! Querying the LLM with tool calling results...",
        ]
        assert items[-1].capital == "Zorbaville"
    assert all(thread is not threading.main_thread() for thread in program.threads)
