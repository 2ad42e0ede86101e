"""Native function calling end to end: a Predict with a list[dx.Tool] input and a dx.ToolCalls
output, over HTTP to the local server (its default responder calls the request's tools)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import dspex_actors as dx
from dspex_actors._types import LMToolCall
from dspex_actors.lm.providers import OpenAIProvider
from dspex_actors.testing import LocalLMServer

WHERE = {"model": "p/m", "endpoint": "https://api.example/x"}
RAN: list[tuple[str, dict[str, Any]]] = []


def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    RAN.append(("multiply", {"a": a, "b": b}))
    return a * b


def lookup(query: str) -> str:
    """Look a word up."""
    RAN.append(("lookup", {"query": query}))
    return f"definition of {query}"


class Calls(dx.Signature):
    """Answer with tool calls."""

    question: str = dx.InputField()
    tools: list[dx.Tool] = dx.InputField()
    answer: str = dx.OutputField()
    calls: dx.ToolCalls = dx.OutputField()


TOOLS = [dx.Tool(multiply), dx.Tool(lookup)]


@pytest.mark.parametrize(
    "adapter",
    [dx.ChatAdapter(use_native_function_calling=True), dx.JSONAdapter()],
    ids=["chat", "json"],
)
def test_predict_gets_the_calls_and_execute_runs_them(
    adapter: dx.ChatAdapter, lm_server: LocalLMServer
) -> None:
    lm = dx.LM("openai/local", api_base=lm_server.url, cache=False)
    with dx.ActorSystem(lm=lm):
        pred = dx.Predict(Calls, adapter=adapter)(question="multiply 6 by 7", tools=TOOLS)
    assert pred.answer is None  # the model called a tool instead of answering
    assert isinstance(pred.calls, dx.ToolCalls)
    [call] = pred.calls.tool_calls
    assert (call.name, call.args) == ("multiply", {"a": 6, "b": 7})
    assert call.id
    RAN.clear()
    assert call.execute(TOOLS) == 42
    assert call.execute({"multiply": multiply}) == 42
    assert RAN == [("multiply", {"a": 6, "b": 7})] * 2
    body = lm_server.stats().requests[-1]
    assert [t["function"]["name"] for t in body["tools"]] == ["multiply", "lookup"]
    assert "tools" not in body["messages"][0]["content"].split("Your output fields")[0]


def test_a_text_reply_leaves_the_calls_none(lm_server: LocalLMServer) -> None:
    """tool_choice none: the server answers in text; the ToolCalls field is None."""
    lm = dx.LM("openai/local", api_base=lm_server.url, cache=False)
    adapter = dx.ChatAdapter(use_native_function_calling=True)
    with dx.ActorSystem(lm=lm):
        pred = dx.Predict(Calls, adapter=adapter, tool_choice="none")(
            question="What is 2 + 3?", tools=TOOLS
        )
    assert pred.calls is None
    assert pred.answer == "5"


def test_async_predict_and_execute_by_name_lookup(lm_server: LocalLMServer) -> None:
    lm = dx.LM("openai/local", api_base=lm_server.url, cache=False)

    async def run() -> dx.Prediction:
        return await dx.Predict(Calls, adapter=dx.JSONAdapter()).acall(
            question="lookup the word actor", tools=TOOLS
        )

    with dx.ActorSystem(lm=lm):
        pred = asyncio.run(run())
    [call] = pred.calls.tool_calls
    assert call.name == "lookup"
    RAN.clear()
    assert call.execute() == "definition of lookup the word actor"  # found among our globals
    with pytest.raises(dx.ToolArgumentError, match="no tool named 'lookup'"):
        call.execute([multiply])


def test_tool_calls_survive_both_cache_tiers(
    lm_server: LocalLMServer, make_system: Callable[..., dx.ActorSystem], tmp_path: Path
) -> None:
    lm = dx.LM("openai/local", api_base=lm_server.url)
    predict = dx.Predict(Calls, adapter=dx.JSONAdapter())
    first = make_system(lm, cache_dir=tmp_path)
    with first:
        fresh = predict(question="multiply 3 by 4", tools=TOOLS)
        memory_hit = predict(question="multiply 3 by 4", tools=TOOLS)
    second = make_system(lm, cache_dir=tmp_path)
    with second:
        disk_hit = predict(question="multiply 3 by 4", tools=TOOLS)
    assert lm_server.stats().requests_total == 1
    assert fresh.calls == memory_hit.calls == disk_hit.calls
    assert disk_hit.calls.tool_calls[0].execute(TOOLS) == 12


def test_without_native_calling_no_tools_are_sent(lm_server: LocalLMServer) -> None:
    lm = dx.LM("openai/local", api_base=lm_server.url, cache=False)
    adapter = dx.ChatAdapter(use_json_adapter_fallback=False)
    with dx.ActorSystem(lm=lm), pytest.raises(dx.AdapterParseError):
        dx.Predict(Calls, adapter=adapter)(question="multiply 6 by 7", tools=TOOLS)
    body = lm_server.stats().requests[-1]
    assert "tools" not in body  # the default model then cannot write ToolCalls JSON
    assert "multiply, whose description is" in body["messages"][-1]["content"]


class NoTools(dx.Signature):
    """Tool calls without tools."""

    question: str = dx.InputField()
    calls: dx.ToolCalls = dx.OutputField()


def test_tool_calls_output_without_tools_input_is_refused(lm_server: LocalLMServer) -> None:
    lm = dx.LM("openai/local", api_base=lm_server.url, cache=False)
    with dx.ActorSystem(lm=lm), pytest.raises(dx.ConfigurationError, match=r"list\[dx.Tool\]"):
        dx.Predict(NoTools, adapter=dx.JSONAdapter())(question="q")
    assert lm_server.stats().requests_total == 0


def test_openai_reply_with_tool_calls_and_no_text() -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"x": 1}'}}
    message = {"role": "assistant", "content": None, "tool_calls": [call]}
    reply = OpenAIProvider().parse(
        {"choices": [{"message": message, "finish_reason": "tool_calls"}]}, **WHERE
    )
    assert reply.texts == ("",)
    assert reply.tool_calls == ((LMToolCall("c1", "f", '{"x": 1}'),),)
    assert json.loads(reply.tool_calls[0][0].arguments) == {"x": 1}
    nameless = {"role": "assistant", "content": None, "tool_calls": [{"id": "1"}]}
    with pytest.raises(dx.MalformedResponseError, match="without a function name"):
        OpenAIProvider().parse({"choices": [{"message": nameless}]}, **WHERE)
