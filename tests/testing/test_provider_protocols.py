"""The local server speaks Anthropic, Gemini and Azure OpenAI faithfully: the official SDKs
(``anthropic``, ``google-genai``, ``openai``) are its clients here, and requests the real
APIs refuse are refused with the real error shapes and statuses."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as genai_types

from dspex_actors.testing import Fault, LocalLMServer
from dspex_actors.testing._stats import secret_fingerprint

KEY = "sdk-test-key"


@pytest.fixture
def server() -> Iterator[LocalLMServer]:
    with LocalLMServer(stream_chunk_chars=3) as running:
        yield running


@pytest.fixture
def claude(server: LocalLMServer) -> Iterator[anthropic.Anthropic]:
    client = anthropic.Anthropic(base_url=server.root_url, api_key=KEY, max_retries=0)
    yield client
    client.close()


@pytest.fixture
def gemini(server: LocalLMServer) -> genai.Client:
    options = genai_types.HttpOptions(base_url=server.root_url)
    return genai.Client(api_key=KEY, http_options=options)


# --- Anthropic ------------------------------------------------------------------------


def test_anthropic_sdk_message_and_usage(
    server: LocalLMServer, claude: anthropic.Anthropic
) -> None:
    message = claude.messages.create(
        model="claude-sonnet-4-5",
        max_tokens=50,
        system="Answer with a number.",
        messages=[{"role": "user", "content": "What is 2 + 3?"}],
    )
    assert message.content[0].type == "text" and message.content[0].text == "5"
    assert message.stop_reason == "end_turn" and message.model == "claude-sonnet-4-5"
    stats = server.stats()
    assert message.usage.input_tokens == stats.prompt_tokens > 0
    assert message.usage.output_tokens == stats.completion_tokens == 1


def test_anthropic_sdk_stream(server: LocalLMServer, claude: anthropic.Anthropic) -> None:
    server.set_responder("echo")
    with claude.messages.stream(
        model="claude-sonnet-4-5",
        max_tokens=50,
        messages=[{"role": "user", "content": "stream these words back"}],
    ) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert len(pieces) > 3 and "".join(pieces) == final.content[0].text  # type: ignore[union-attr]
    assert "stream these words back" in "".join(pieces)
    assert final.usage.output_tokens == server.stats().completion_tokens
    assert server.stats().streams == 1


def test_anthropic_sdk_max_tokens_and_stop_sequences(
    server: LocalLMServer, claude: anthropic.Anthropic
) -> None:
    server.set_responder("echo")
    text = "one two three four five six"
    cut = claude.messages.create(
        model="m", max_tokens=3, messages=[{"role": "user", "content": text}]
    )
    assert cut.stop_reason == "max_tokens" and cut.usage.output_tokens == 3
    stopped = claude.messages.create(
        model="m",
        max_tokens=50,
        stop_sequences=["four"],
        messages=[{"role": "user", "content": text}],
    )
    assert stopped.stop_reason == "stop_sequence" and stopped.stop_sequence == "four"
    assert "four" not in stopped.content[0].text  # type: ignore[union-attr]


def test_anthropic_sdk_errors_have_the_real_shapes(
    server: LocalLMServer, claude: anthropic.Anthropic
) -> None:
    server.push_faults(Fault.http(529))
    with pytest.raises(anthropic.APIStatusError) as overloaded:
        claude.messages.create(model="m", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert overloaded.value.status_code == 529
    assert isinstance(overloaded.value.body, dict)
    assert overloaded.value.body["error"]["type"] == "overloaded_error"

    server.push_faults(Fault.http(429, retry_after=3))
    with pytest.raises(anthropic.RateLimitError) as limited:
        claude.messages.create(model="m", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert limited.value.response.headers["retry-after"] == "3"

    with pytest.raises(anthropic.BadRequestError, match='Unexpected role "system"'):
        claude.messages.create(
            model="m", max_tokens=5, messages=[{"role": "system", "content": "x"}]
        )
    with pytest.raises(anthropic.BadRequestError, match="roles must alternate"):
        claude.messages.create(
            model="m",
            max_tokens=5,
            messages=[{"role": "user", "content": "a"}, {"role": "user", "content": "b"}],
        )


def _raw(server: LocalLMServer, path: str, body: Any, **headers: str) -> httpx.Response:
    return httpx.post(server.root_url + path, json=body, headers=headers, timeout=10)


def test_anthropic_required_fields_and_headers(server: LocalLMServer) -> None:
    good = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    auth = {"x-api-key": KEY, "anthropic-version": "2023-06-01"}
    assert _raw(server, "/v1/messages", good, **auth).status_code == 200
    zero = _raw(server, "/v1/messages", {**good, "max_tokens": 0}, **auth)
    assert zero.status_code == 400
    for field in ("max_tokens", "messages", "model"):
        body = {k: v for k, v in good.items() if k != field}
        reply = _raw(server, "/v1/messages", body, **auth)
        assert reply.status_code == 400
        assert reply.json() == {
            "type": "error",
            "error": {"type": "invalid_request_error", "message": f"{field}: Field required"},
        }
    hot = _raw(server, "/v1/messages", {**good, "temperature": 1.5}, **auth)
    assert hot.status_code == 400 and "less than or equal to 1" in hot.json()["error"]["message"]
    extra = _raw(server, "/v1/messages", {**good, "n": 2}, **auth)
    assert extra.json()["error"]["message"] == "n: Extra inputs are not permitted"
    nokey = _raw(server, "/v1/messages", good, **{"anthropic-version": "2023-06-01"})
    assert nokey.status_code == 401
    assert nokey.json()["error"]["type"] == "authentication_error"
    version = _raw(server, "/v1/messages", good, **{"x-api-key": KEY})
    assert version.status_code == 400 and "anthropic-version" in version.json()["error"]["message"]
    assert server.stats().headers[-1]["x-api-key"] == secret_fingerprint(KEY)


# --- Gemini ---------------------------------------------------------------------------


def test_gemini_sdk_generate_content_and_usage(
    server: LocalLMServer, gemini: genai.Client
) -> None:
    config = genai_types.GenerateContentConfig(
        system_instruction="Answer with a number.", max_output_tokens=20, temperature=0.0
    )
    response = gemini.models.generate_content(
        model="gemini-2.5-flash", contents="What is 2 + 3?", config=config
    )
    assert response.text == "5"
    usage = response.usage_metadata
    assert usage is not None
    stats = server.stats()
    assert usage.prompt_token_count == stats.prompt_tokens > 0
    assert usage.candidates_token_count == stats.completion_tokens == 1
    assert usage.total_token_count == stats.prompt_tokens + stats.completion_tokens
    assert response.candidates and response.candidates[0].finish_reason == "STOP"
    sent = server.stats().last_request
    assert sent is not None and sent["systemInstruction"]["parts"][0]["text"]
    assert server.stats().headers[-1]["x-goog-api-key"] == secret_fingerprint(KEY)


def test_gemini_sdk_stream_and_candidates(server: LocalLMServer, gemini: genai.Client) -> None:
    server.set_responder("echo")
    chunks = list(
        gemini.models.generate_content_stream(
            model="gemini-2.5-flash", contents="stream these words back please"
        )
    )
    assert len(chunks) > 3
    assert "".join(c.text or "" for c in chunks).endswith("stream these words back please")
    last = chunks[-1]
    assert last.candidates and last.candidates[0].finish_reason == "STOP"
    assert last.usage_metadata is not None
    assert last.usage_metadata.candidates_token_count == server.stats().completion_tokens
    two = gemini.models.generate_content(
        model="gemini-2.5-flash",
        contents="What is 2 + 3?",
        config=genai_types.GenerateContentConfig(candidate_count=2),
    )
    assert two.candidates is not None and len(two.candidates) == 2


def test_gemini_sdk_errors_and_safety_block(server: LocalLMServer, gemini: genai.Client) -> None:
    server.push_faults(Fault.http(503))
    with pytest.raises(genai_errors.ServerError) as unavailable:
        gemini.models.generate_content(model="gemini-2.5-flash", contents="x")
    assert unavailable.value.code == 503 and unavailable.value.status == "UNAVAILABLE"
    server.push_faults(Fault.http(429))
    with pytest.raises(genai_errors.ClientError) as exhausted:
        gemini.models.generate_content(model="gemini-2.5-flash", contents="x")
    assert exhausted.value.status == "RESOURCE_EXHAUSTED"
    server.push_faults(Fault.blocked())
    blocked = gemini.models.generate_content(model="gemini-2.5-flash", contents="x")
    assert blocked.prompt_feedback is not None
    assert blocked.prompt_feedback.block_reason == "SAFETY" and not blocked.candidates


def test_gemini_validation(server: LocalLMServer) -> None:
    path = "/v1beta/models/gemini-2.5-flash:generateContent"
    good = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    assert _raw(server, path, good, **{"x-goog-api-key": KEY}).status_code == 200
    nokey = _raw(server, path, good)
    assert nokey.status_code == 403 and nokey.json()["error"]["status"] == "PERMISSION_DENIED"
    bad_role = {"contents": [{"role": "assistant", "parts": [{"text": "hi"}]}]}
    reply = _raw(server, path, bad_role, **{"x-goog-api-key": KEY})
    assert reply.status_code == 400
    assert reply.json()["error"] == {
        "code": 400,
        "message": "Please use a valid role: user, model.",
        "status": "INVALID_ARGUMENT",
    }
    unknown = _raw(
        server, path, {**good, "generationConfig": {"max_tokens": 5}}, **{"x-goog-api-key": KEY}
    )
    assert unknown.status_code == 400
    assert 'Unknown name "max_tokens"' in unknown.json()["error"]["message"]
    empty = _raw(server, path, {"contents": []}, **{"x-goog-api-key": KEY})
    assert empty.status_code == 400 and "contents is not specified" in empty.text
    snake = {**good, "generation_config": {"max_output_tokens": 5}}  # proto JSON allows both
    assert _raw(server, path, snake, **{"x-goog-api-key": KEY}).status_code == 200


# --- OpenAI and Azure OpenAI ----------------------------------------------------------


def test_openai_and_azure_sdks(server: LocalLMServer) -> None:
    client = openai.OpenAI(base_url=server.url, api_key=KEY, max_retries=0)
    reply = client.chat.completions.create(
        model="local-model", messages=[{"role": "user", "content": "What is 2 + 3?"}]
    )
    assert reply.choices[0].message.content == "5"
    assert reply.usage is not None and reply.usage.prompt_tokens == server.stats().prompt_tokens
    streamed = client.chat.completions.create(
        model="local-model",
        stream=True,
        messages=[{"role": "user", "content": "What is 2 + 3?"}],
    )
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == "5"
    client.close()

    azure = openai.AzureOpenAI(
        azure_endpoint=server.root_url, api_key=KEY, api_version="2024-10-21", max_retries=0
    )
    deployed = azure.chat.completions.create(
        model="my-deployment", messages=[{"role": "user", "content": "What is 6 times 7?"}]
    )
    assert deployed.choices[0].message.content == "42" and deployed.model == "my-deployment"
    assert server.stats().headers[-1]["api-key"] == secret_fingerprint(KEY)
    server.push_faults(Fault.blocked())
    filtered = azure.chat.completions.create(
        model="my-deployment", messages=[{"role": "user", "content": "x"}]
    )
    assert filtered.choices[0].finish_reason == "content_filter"
    assert filtered.choices[0].message.content is None
    azure.close()
    no_version = httpx.post(
        server.root_url + "/openai/deployments/d/chat/completions",
        json={"messages": [{"role": "user", "content": "x"}]},
        headers={"api-key": KEY},
        timeout=10,
    )
    assert no_version.status_code == 404


# --- Tool calls (native function calling) on the Anthropic and Gemini routes ------------

MULTIPLY_SCHEMA = {
    "type": "object",
    "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
    "required": ["a", "b"],
}


def test_anthropic_sdk_tool_use_then_tool_result(claude: anthropic.Anthropic) -> None:
    tools: Any = [
        {"name": "multiply", "description": "Multiply.", "input_schema": MULTIPLY_SCHEMA},
        {"name": "lookup", "input_schema": {"type": "object", "properties": {}}},
    ]
    asked: Any = [{"role": "user", "content": "multiply 6 by 7"}]
    message = claude.messages.create(
        model="claude-sonnet-4-5", max_tokens=50, tools=tools, messages=asked
    )
    assert message.stop_reason == "tool_use"
    [use] = message.content
    assert use.type == "tool_use" and use.name == "multiply" and use.input == {"a": 6, "b": 7}
    assert use.id.startswith("toolu_")
    result = {"type": "tool_result", "tool_use_id": use.id, "content": "42"}
    answered = claude.messages.create(
        model="claude-sonnet-4-5",
        max_tokens=50,
        tools=tools,
        messages=[
            *asked,
            {"role": "assistant", "content": [use.model_dump()]},
            {"role": "user", "content": [result]},
        ],
    )
    assert answered.stop_reason == "end_turn" and answered.content[0].type == "text"
    refused = claude.messages.create(
        model="claude-sonnet-4-5",
        max_tokens=50,
        tools=tools,
        tool_choice={"type": "none"},
        messages=[{"role": "user", "content": "What is 2 + 3?"}],
    )
    assert refused.content[0].type == "text" and refused.content[0].text == "5"


def test_anthropic_sdk_streams_a_tool_use(
    server: LocalLMServer, claude: anthropic.Anthropic
) -> None:
    tools: Any = [{"name": "multiply", "input_schema": MULTIPLY_SCHEMA}]
    with claude.messages.stream(
        model="claude-sonnet-4-5",
        max_tokens=50,
        tools=tools,
        tool_choice={"type": "auto", "disable_parallel_tool_use": True},
        messages=[{"role": "user", "content": "multiply 12 by 3"}],
    ) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    [use] = final.content
    assert use.type == "tool_use" and (use.name, use.input) == ("multiply", {"a": 12, "b": 3})
    assert server.stats().streams == 1


def test_anthropic_tools_are_validated(server: LocalLMServer) -> None:
    auth = {"x-api-key": KEY, "anthropic-version": "2023-06-01"}
    good = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    cases = [
        ({"tools": [{"name": "f"}]}, "tools.0.custom.input_schema: Field required"),
        ({"tools": [{"input_schema": MULTIPLY_SCHEMA}]}, "tools.0.custom.name: Field required"),
        (
            {"tools": [{"name": "f", "input_schema": {"type": "string"}}]},
            "tools.0.custom.input_schema.type: Input should be 'object'",
        ),
        (
            {"tools": [{"name": "bad name", "input_schema": MULTIPLY_SCHEMA}]},
            "tools.0.custom.name: String should match pattern",
        ),
        (
            {"tools": [{"type": "function", "function": {"name": "f"}}]},
            "tools.0: Input tag 'function' found using 'type'",  # OpenAI's shape refused
        ),
        (
            {"tools": [{"name": "f", "input_schema": MULTIPLY_SCHEMA, "parameters": {}}]},
            "tools.0.custom.parameters: Extra inputs are not permitted",
        ),
        ({"tool_choice": {"type": "auto"}}, "tool_choice may only be specified while providing"),
    ]
    tools = {"tools": [{"name": "f", "input_schema": MULTIPLY_SCHEMA}]}
    cases += [
        ({**tools, "tool_choice": {"type": "required"}}, "Input tag 'required' found using 'type'"),
        ({**tools, "tool_choice": {"type": "tool"}}, "tool_choice.tool.name: Field required"),
        (
            {**tools, "tool_choice": {"type": "none", "disable_parallel_tool_use": True}},
            "tool_choice.none.disable_parallel_tool_use: Extra inputs are not permitted",
        ),
    ]
    for extra, message in cases:
        reply = _raw(server, "/v1/messages", {**good, **extra}, **auth)
        assert reply.status_code == 400, extra
        error = reply.json()["error"]
        assert error["type"] == "invalid_request_error" and message in error["message"], extra


def _multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b


def test_gemini_sdk_function_call_and_automatic_calling(
    server: LocalLMServer, gemini: genai.Client
) -> None:
    declaration = genai_types.FunctionDeclaration(
        name="multiply", description="Multiply.", parameters_json_schema=MULTIPLY_SCHEMA
    )
    config = genai_types.GenerateContentConfig(
        tools=[genai_types.Tool(function_declarations=[declaration])]
    )
    response = gemini.models.generate_content(
        model="gemini-2.5-flash", contents="multiply 6 by 7", config=config
    )
    assert response.function_calls is not None
    [call] = response.function_calls
    assert (call.name, call.args) == ("multiply", {"a": 6, "b": 7})
    assert response.candidates and response.candidates[0].finish_reason == "STOP"
    none = genai_types.GenerateContentConfig(
        tools=config.tools,
        tool_config=genai_types.ToolConfig(
            function_calling_config=genai_types.FunctionCallingConfig(mode="NONE")
        ),
    )
    text = gemini.models.generate_content(
        model="gemini-2.5-flash", contents="What is 2 + 3?", config=none
    )
    assert text.function_calls is None and text.text == "5"
    automatic = gemini.models.generate_content(  # the SDK runs the function, sends its result
        model="gemini-2.5-flash",
        contents="multiply 6 by 7",
        config=genai_types.GenerateContentConfig(tools=[_multiply]),
    )
    assert automatic.function_calls is None and automatic.text  # text once it has the result
    sent = server.stats().requests[-1]
    assert sent["tools"][0]["functionDeclarations"][0]["name"] == "_multiply"
    [result] = sent["contents"][-1]["parts"]
    assert result["functionResponse"] == {"name": "_multiply", "response": {"result": 42}}


def test_gemini_sdk_streams_a_function_call(gemini: genai.Client) -> None:
    declaration = genai_types.FunctionDeclaration(
        name="multiply", parameters_json_schema=MULTIPLY_SCHEMA
    )
    chunks = list(
        gemini.models.generate_content_stream(
            model="gemini-2.5-flash",
            contents="multiply 12 by 3",
            config=genai_types.GenerateContentConfig(
                tools=[genai_types.Tool(function_declarations=[declaration])]
            ),
        )
    )
    calls = [call for chunk in chunks for call in chunk.function_calls or ()]
    assert [(c.name, c.args) for c in calls] == [("multiply", {"a": 12, "b": 3})]


def test_gemini_tools_are_validated(server: LocalLMServer) -> None:
    path = "/v1beta/models/gemini-2.5-flash:generateContent"
    good = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    where = "* GenerateContentRequest.tools[0].function_declarations[0]"
    empty = {"type": "OBJECT"}
    cases = [
        ({"tools": [{"functionDeclarations": [{"description": "d"}]}]}, f"{where}.name: Name"),
        (
            {"tools": [{"functionDeclarations": [{"name": "f", "parameters": "x"}]}]},
            f"{where}.parameters: must be an object",
        ),
        (
            {"tools": [{"function_declarations": [{"name": "f", "parameters": empty}]}]},
            "should be non-empty for OBJECT type",
        ),
        ({"tools": [{"function": {"name": "f"}}]}, 'Unknown name "function"'),
        (
            {"toolConfig": {"functionCallingConfig": {"mode": "REQUIRED"}}},
            "Invalid value at 'tool_config.function_calling_config.mode'",
        ),
        (
            {"tool_config": {"function_calling_config": {"allowed_function_names": ["f"]}}},
            "allowed_function_names may only be set when mode is ANY",
        ),
    ]
    for extra, message in cases:
        reply = _raw(server, path, {**good, **extra}, **{"x-goog-api-key": KEY})
        assert reply.status_code == 400, extra
        error = reply.json()["error"]
        assert error["status"] == "INVALID_ARGUMENT" and message in error["message"], extra
