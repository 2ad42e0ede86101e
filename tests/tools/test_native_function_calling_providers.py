"""Native function calling on ``anthropic/`` and ``gemini/``: a Predict with a list[dx.Tool]
input and a dx.ToolCalls output, over HTTP to the local server's Anthropic and Gemini
routes (which validate the tool fields as the real APIs do and answer with tool calls)."""

from __future__ import annotations

import json
from typing import Any

import pytest

import dspex_actors as dx
from dspex_actors._types import LMToolCall
from dspex_actors.lm.providers import AnthropicProvider, GeminiProvider
from dspex_actors.lm.providers._tools import anthropic_tool_params, gemini_tool_params
from dspex_actors.testing import LocalLMServer

WHERE = {"model": "p/m", "endpoint": "https://api.example/x"}
MODELS = ["anthropic/claude-sonnet-4-5", "gemini/gemini-2.5-flash"]
IDS = ["anthropic", "gemini"]


def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b


def lookup(query: str) -> str:
    """Look a word up."""
    return f"definition of {query}"


def now() -> str:
    """The time (a tool without arguments)."""
    return "noon"


class Calls(dx.Signature):
    """Answer with tool calls."""

    question: str = dx.InputField()
    tools: list[dx.Tool] = dx.InputField()
    answer: str = dx.OutputField()
    calls: dx.ToolCalls = dx.OutputField()


TOOLS = [dx.Tool(multiply), dx.Tool(lookup), dx.Tool(now)]
NATIVE = dx.ChatAdapter(use_native_function_calling=True)


def _lm(model: str, server: LocalLMServer) -> dx.LM:
    return dx.LM(model, api_base=server.root_url, api_key="sk-test", cache=False)


@pytest.mark.parametrize("model", MODELS, ids=IDS)
@pytest.mark.parametrize("adapter", [NATIVE, dx.JSONAdapter()], ids=["chat", "json"])
def test_predict_gets_the_call_and_execute_runs_it(
    model: str, adapter: dx.ChatAdapter, lm_server: LocalLMServer
) -> None:
    with dx.ActorSystem(lm=_lm(model, lm_server)):
        pred = dx.Predict(Calls, adapter=adapter)(question="multiply 6 by 7", tools=TOOLS)
    assert pred.answer is None  # the model called a tool instead of answering
    [call] = pred.calls.tool_calls
    assert (call.name, call.args) == ("multiply", {"a": 6, "b": 7})
    assert call.id
    assert call.execute(TOOLS) == 42
    sent = lm_server.stats().requests[-1]
    if model.startswith("anthropic/"):
        assert [t["name"] for t in sent["tools"]] == ["multiply", "lookup", "now"]
        assert sent["tools"][0]["input_schema"]["required"] == ["a", "b"]
        assert "tool_choice" not in sent
    else:
        [declared] = sent["tools"]
        names = [f["name"] for f in declared["functionDeclarations"]]
        assert names == ["multiply", "lookup", "now"]
        assert "parameters" not in declared["functionDeclarations"][2]  # no arguments
        assert "toolConfig" not in sent


@pytest.mark.parametrize("model", MODELS, ids=IDS)
def test_tool_choice_none_gives_text(model: str, lm_server: LocalLMServer) -> None:
    with dx.ActorSystem(lm=_lm(model, lm_server)):
        pred = dx.Predict(Calls, adapter=NATIVE, tool_choice="none")(
            question="What is 2 + 3?", tools=TOOLS
        )
    assert pred.calls is None
    assert pred.answer == "5"
    sent = lm_server.stats().requests[-1]
    if model.startswith("anthropic/"):
        assert sent["tool_choice"] == {"type": "none"}
    else:
        assert sent["toolConfig"] == {"functionCallingConfig": {"mode": "NONE"}}


@pytest.mark.parametrize("model", MODELS, ids=IDS)
def test_required_and_no_parallel_calls_reach_the_request(
    model: str, lm_server: LocalLMServer
) -> None:
    with dx.ActorSystem(lm=_lm(model, lm_server)):
        pred = dx.Predict(Calls, adapter=NATIVE, tool_choice="required")(
            question="lookup the word actor", tools=TOOLS, config={"parallel_tool_calls": False}
        )
    [call] = pred.calls.tool_calls
    assert call.execute(TOOLS) == "definition of lookup the word actor"
    sent = lm_server.stats().requests[-1]
    assert "parallel_tool_calls" not in sent
    if model.startswith("anthropic/"):
        assert sent["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    else:
        assert sent["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}


@pytest.mark.parametrize("model", MODELS, ids=IDS)
def test_a_forced_tool_is_the_one_called(model: str, lm_server: LocalLMServer) -> None:
    forced = {"type": "function", "function": {"name": "lookup"}}
    with dx.ActorSystem(lm=_lm(model, lm_server)):
        pred = dx.Predict(Calls, adapter=NATIVE, tool_choice=forced)(
            question="multiply 6 by 7", tools=TOOLS
        )
    [call] = pred.calls.tool_calls
    assert (call.name, call.args) == ("lookup", {"query": "multiply 6 by 7"})
    sent = lm_server.stats().requests[-1]
    if model.startswith("anthropic/"):
        assert sent["tool_choice"] == {"type": "tool", "name": "lookup"}
    else:
        assert sent["toolConfig"]["functionCallingConfig"]["allowedFunctionNames"] == ["lookup"]


@pytest.mark.parametrize("model", MODELS, ids=IDS)
def test_a_streamed_reply_brings_the_call(model: str, lm_server: LocalLMServer) -> None:
    program = dx.Predict(Calls, adapter=NATIVE)
    streamed = dx.streamify(
        program, stream_listeners=[dx.StreamListener("answer")], async_streaming=False
    )
    with dx.ActorSystem(lm=_lm(model, lm_server)):
        items = list(streamed(question="multiply 12 by 3", tools=TOOLS))
    [pred] = [item for item in items if isinstance(item, dx.Prediction)]
    [call] = pred.calls.tool_calls
    assert (call.name, call.args) == ("multiply", {"a": 12, "b": 3})
    assert call.id
    assert lm_server.stats().streams == 1


def test_anthropic_reply_of_tool_use_blocks_only() -> None:
    content = [
        {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"x": 1}},
        {"type": "tool_use", "id": "toolu_2", "name": "g", "input": {}},
    ]
    reply = AnthropicProvider().parse(
        {"content": content, "stop_reason": "tool_use", "model": "claude"}, **WHERE
    )
    assert reply.texts == ("",)
    assert reply.finish_reasons == ("tool_calls",)
    assert reply.tool_calls == (
        (LMToolCall("toolu_1", "f", '{"x": 1}'), LMToolCall("toolu_2", "g", "{}")),
    )
    with pytest.raises(dx.MalformedResponseError, match="tool_use block has no name"):
        AnthropicProvider().parse({"content": [{"type": "tool_use", "input": {}}]}, **WHERE)
    with pytest.raises(dx.MalformedResponseError, match="not an object"):
        AnthropicProvider().parse(
            {"content": [{"type": "tool_use", "name": "f", "input": "x"}]}, **WHERE
        )
    with pytest.raises(dx.MalformedResponseError, match="no text"):
        AnthropicProvider().parse({"content": []}, **WHERE)


def test_gemini_reply_of_function_calls_only_gets_stable_ids() -> None:
    parts: list[dict[str, Any]] = [
        {"functionCall": {"name": "f", "args": {"x": 1}}},
        {"functionCall": {"name": "g"}},
        {"functionCall": {"name": "h", "args": {}, "id": "given"}},
    ]
    payload = {"candidates": [{"content": {"parts": parts}, "finishReason": "STOP"}]}
    reply = GeminiProvider().parse(payload, **WHERE)
    assert reply.texts == ("",)
    assert [(c.id, c.name, json.loads(c.arguments)) for c in reply.tool_calls[0]] == [
        ("call_0", "f", {"x": 1}),
        ("call_1", "g", {}),
        ("given", "h", {}),
    ]
    assert GeminiProvider().parse(payload, **WHERE) == reply
    nameless = {"candidates": [{"content": {"parts": [{"functionCall": {"args": {}}}]}}]}
    with pytest.raises(dx.MalformedResponseError, match="functionCall part has no name"):
        GeminiProvider().parse(nameless, **WHERE)
    empty = {"candidates": [{"content": {"parts": []}, "finishReason": "STOP"}]}
    with pytest.raises(dx.MalformedResponseError, match="no text"):
        GeminiProvider().parse(empty, **WHERE)


def test_tool_params_translation() -> None:
    tools = [multiply_tool := dx.Tool(multiply).format_as_litellm_function_call()]
    forced = {"type": "function", "function": {"name": "multiply"}}
    assert anthropic_tool_params({"tools": tools, "tool_choice": forced})["tool_choice"] == {
        "type": "tool",
        "name": "multiply",
    }
    gemini = gemini_tool_params({"tools": tools, "tool_choice": forced})
    assert gemini["toolConfig"] == {
        "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["multiply"]}
    }
    none = anthropic_tool_params(
        {"tools": tools, "tool_choice": "none", "parallel_tool_calls": False}
    )
    assert none["tool_choice"] == {"type": "none"}  # the API takes no flag with none
    assert anthropic_tool_params({"tool_choice": "auto"}) == {}  # nothing without tools
    native = {"name": "f", "input_schema": {"type": "object"}}
    assert anthropic_tool_params({"tools": [native]})["tools"] == [native]
    search = {"googleSearch": {}}
    assert gemini_tool_params({"tools": [search, multiply_tool]})["tools"][0] == search
    wide = dx.Tool(
        lambda x: None, name="wide", args={"x": {"type": "object", "additionalProperties": True}}
    )
    [declared] = gemini_tool_params({"tools": [wide.format_as_litellm_function_call()]})["tools"]
    assert "parametersJsonSchema" in declared["functionDeclarations"][0]  # beyond the subset


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"tools": "multiply"}, "tools must be a list"),
        ({"tools": [{"type": "function", "function": {}}]}, r"tools\[0\] has no function name"),
        (
            {"tools": [dx.Tool(multiply).format_as_litellm_function_call()], "tool_choice": "any"},
            "tool_choice must be",
        ),
    ],
)
def test_bad_tool_params_are_configuration_errors(params: dict[str, Any], message: str) -> None:
    for translate in (anthropic_tool_params, gemini_tool_params):
        with pytest.raises(dx.ConfigurationError, match=message):
            translate(params)


def test_openai_streamed_tool_calls_are_assembled_from_pieces(
    make_lm_server: Any,
) -> None:
    server = make_lm_server(stream_chunk_chars=3)  # the arguments' JSON cut every 3 chars
    program = dx.Predict(Calls, adapter=NATIVE)
    streamed = dx.streamify(
        program, stream_listeners=[dx.StreamListener("answer")], async_streaming=False
    )
    lm = dx.LM("openai/local-model", api_base=server.url, cache=False)
    with dx.ActorSystem(lm=lm):
        items = list(streamed(question="multiply 12 by 3", tools=TOOLS))
    [pred] = [item for item in items if isinstance(item, dx.Prediction)]
    [call] = pred.calls.tool_calls
    assert (call.name, call.args) == ("multiply", {"a": 12, "b": 3})
    assert call.id and call.execute([multiply]) == 36
    stats = server.stats()
    assert (stats.requests_total, stats.streams) == (1, 1)
    assert stats.last_request["stream"] is True and stats.last_request["tools"]
