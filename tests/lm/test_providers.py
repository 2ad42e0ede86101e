"""Every provider against the local server: answers, usage, errors, retries, streams, keys.

The server speaks each provider's own protocol (Anthropic Messages, Gemini
generateContent, Azure deployments, OpenAI chat completions) and validates requests the
way the real APIs do, so a request our provider builds wrongly is refused there.
"""

from __future__ import annotations

import asyncio
import json
import logging
import queue
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import dspex_actors as dx
from dspex_actors._types import StreamChunk
from dspex_actors.lm import LMRequest
from dspex_actors.system import ActorSystem
from dspex_actors.testing import Fault, LocalLMServer
from dspex_actors.testing._stats import secret_fingerprint
from tests._support import server_usage

SECRET = "sk-provider-SECRET-0123456789abcdef"


@dataclass(frozen=True)
class Case:
    """One provider: its model string, where its api_base is, its key header and its
    retryable overload status."""

    model: str
    base: str  # "root" (http://host:port) or "v1" (the OpenAI api_base)
    key_header: str
    overload: int
    env: str


CASES = [
    Case("openai/local-model", "v1", "authorization", 503, "OPENAI_API_KEY"),
    Case("anthropic/claude-sonnet-4-5", "root", "x-api-key", 529, "ANTHROPIC_API_KEY"),
    Case("gemini/gemini-2.5-flash", "root", "x-goog-api-key", 503, "GEMINI_API_KEY"),
    Case("azure/my-deployment", "root", "api-key", 503, "AZURE_OPENAI_API_KEY"),
]
IDS = [case.model.partition("/")[0] for case in CASES]
KEY_HEADERS = {case.key_header for case in CASES}


def make_lm(case: Case, server: LocalLMServer, **options: object) -> dx.LM:
    base = server.url if case.base == "v1" else server.root_url
    options.setdefault("cache", False)
    return dx.LM(case.model, api_base=base, api_key=SECRET, **options)  # type: ignore[arg-type]


@pytest.fixture(params=CASES, ids=IDS)
def case(request: pytest.FixtureRequest) -> Case:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def system_for(
    make_system: Callable[..., ActorSystem],
) -> Callable[[dx.LM], ActorSystem]:
    return lambda lm: make_system(lm=lm)


@pytest.fixture
def server() -> Iterator[LocalLMServer]:
    with LocalLMServer() as running:
        yield running


def test_predict_and_chain_of_thought_with_the_servers_usage(
    case: Case, server: LocalLMServer, system_for: Callable[[dx.LM], ActorSystem]
) -> None:
    lm = make_lm(case, server)
    with system_for(lm):
        pred = dx.Predict("question -> answer")(question="What is 2 + 3?")
        assert pred.answer == "5"
        assert pred.get_lm_usage() == {case.model: server_usage(server)}
        server.reset_stats()
        cot = dx.ChainOfThought("question -> answer: int")(question="What is 6 times 7?")
        assert cot.answer == 42 and "42" in cot.reasoning
        assert cot.get_lm_usage() == {case.model: server_usage(server)}
        assert server_usage(server)["prompt_tokens"] > 0
    stats = server.stats()
    assert stats.requests_total == 1 and stats.status(200) == 1


def test_the_key_goes_only_in_the_providers_header(
    case: Case, server: LocalLMServer, system_for: Callable[[dx.LM], ActorSystem]
) -> None:
    lm = make_lm(case, server)
    with system_for(lm):
        lm("What is 1 + 1?")
    headers = server.stats().headers[-1]
    sent = f"Bearer {SECRET}" if case.key_header == "authorization" else SECRET
    assert headers[case.key_header] == secret_fingerprint(sent)
    for other in KEY_HEADERS - {case.key_header}:
        assert other not in headers, f"{case.model} also sent {other}"
    assert SECRET not in lm.endpoint and SECRET not in json.dumps(server.stats().requests)


def test_requests_have_each_providers_shape(
    server: LocalLMServer, make_system: Callable[..., ActorSystem]
) -> None:
    messages = [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "demo question one"},
        {"role": "user", "content": "demo question two"},  # merged: turns must alternate
        {"role": "assistant", "content": "demo answer"},
        {"role": "user", "content": "What is 2 + 3?"},
    ]
    claude = make_lm(CASES[1], server, stop=["\n\n"], max_tokens=77)
    gemini = make_lm(CASES[2], server, stop="END", max_tokens=55, top_p=0.5)
    with make_system(lm=claude) as system:
        assert system.request(LMRequest(messages=tuple(messages), params=claude.kwargs), lm=claude)
        sent = server.stats().last_request
        assert sent is not None
        assert sent["system"] == "Answer briefly."
        assert sent["max_tokens"] == 77 and sent["stop_sequences"] == ["\n\n"]
        assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "user"]
        assert sent["messages"][0]["content"] == "demo question one\n\ndemo question two"
        assert server.stats().headers[-1]["anthropic-version"] == "2023-06-01"

        request = LMRequest(messages=tuple(messages), params=gemini.kwargs)
        assert system.request(request, lm=gemini)
        sent = server.stats().last_request
        assert sent is not None
        assert sent["systemInstruction"] == {"parts": [{"text": "Answer briefly."}]}
        assert [c["role"] for c in sent["contents"]] == ["user", "model", "user"]
        assert sent["generationConfig"] == {
            "temperature": 0.0,
            "maxOutputTokens": 55,
            "topP": 0.5,
            "stopSequences": ["END"],
        }


def test_error_classes(
    case: Case, server: LocalLMServer, system_for: Callable[[dx.LM], ActorSystem]
) -> None:
    provider = case.model.partition("/")[0]
    lm = make_lm(case, server, num_retries=0)
    with system_for(lm):
        server.push_faults(Fault.http(400))
        with pytest.raises(dx.LMHTTPStatusError) as status:
            lm("What is 1 + 1?")
        assert status.value.status_code == 400
        assert "injected fault: HTTP 400" in str(status.value)  # the provider's message
        assert '{"' not in str(status.value)  # ... not the raw JSON body

        server.push_faults(Fault.blocked())
        with pytest.raises(dx.ContentBlockedError) as blocked:
            lm("What is 1 + 1?")
        assert blocked.value.reason and provider in str(blocked.value)

        for fault in (Fault.no_choices(), Fault.malformed_json()):
            server.push_faults(fault)
            with pytest.raises(dx.MalformedResponseError) as bad:
                lm("What is 1 + 1?")
            assert bad.value.model == case.model and bad.value.endpoint == lm.endpoint

        server.push_faults(Fault.drop())
        with pytest.raises(dx.LMConnectionError):
            lm("What is 1 + 1?")
        assert lm("What is 1 + 1?") == ["2"]


def test_no_text_is_malformed_naming_the_provider(
    case: Case, server: LocalLMServer, system_for: Callable[[dx.LM], ActorSystem]
) -> None:
    lm = make_lm(case, server, num_retries=0)
    with system_for(lm):
        server.push_faults(Fault.no_choices())
        with pytest.raises(dx.MalformedResponseError, match=case.model.partition("/")[0]):
            lm("What is 1 + 1?")


def test_retry_on_overload_then_success(
    case: Case, server: LocalLMServer, system_for: Callable[[dx.LM], ActorSystem]
) -> None:
    lm = make_lm(case, server, num_retries=2)
    with system_for(lm) as system:
        server.push_faults(Fault.http(case.overload, retry_after=0), Fault.http(429))
        assert lm("What is 3 + 4?") == ["7"]
        stats = server.stats()
        assert stats.requests_total == 3
        assert stats.status(case.overload) == 1 and stats.status(429) == 1
        assert stats.status(200) == 1
        client = next(iter(system.stats()["clients"].values()))
        assert client["retries"] == 2


def test_streaming(
    case: Case, server: LocalLMServer, system_for: Callable[[dx.LM], ActorSystem]
) -> None:
    server.set_stream_pacing(chunk_chars=5)
    server.set_responder("echo")
    lm = make_lm(case, server)
    request = lm.make_request("please say this back to me in pieces")
    with system_for(lm) as system:
        sink: queue.SimpleQueue[StreamChunk] = queue.SimpleQueue()
        response = asyncio.run(system.arequest(request, lm=lm, sink=sink))
        pieces = []
        while not sink.empty():
            pieces.append(sink.get_nowait())
        assert len(pieces) > 1
        assert "".join(p.text for p in pieces) == response.texts[0]
        assert "please say this back" in response.texts[0]
        assert response.usage == server_usage(server)
        assert server.stats().streams == 1
        server.set_responder("default")

        cot = dx.ChainOfThought("question -> answer: int")
        stream = dx.streamify(
            cot, stream_listeners=[dx.StreamListener(signature_field_name="reasoning")]
        )

        async def collect() -> list[object]:
            return [item async for item in stream(question="What is 5 + 3?")]

        items = asyncio.run(collect())
        final = items[-1]
        assert isinstance(final, dx.Prediction) and final.answer == 8
        chunks = [i for i in items if isinstance(i, dx.StreamResponse)]
        assert "".join(c.chunk for c in chunks).strip() == final.reasoning


def test_a_cut_stream_is_a_connection_error(
    case: Case, server: LocalLMServer, system_for: Callable[[dx.LM], ActorSystem]
) -> None:
    lm = make_lm(case, server, num_retries=0)
    with system_for(lm) as system:
        server.push_faults(Fault.stream_cut())
        sink: queue.SimpleQueue[StreamChunk] = queue.SimpleQueue()
        with pytest.raises(dx.LMConnectionError):
            asyncio.run(system.arequest(lm.make_request("What is 2 + 3?"), lm=lm, sink=sink))


def test_key_never_in_repr_logs_errors_history_or_saved_files(
    case: Case,
    server: LocalLMServer,
    system_for: Callable[[dx.LM], ActorSystem],
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    caplog.set_level(logging.DEBUG)
    lm = make_lm(case, server, num_retries=1)
    errors: list[BaseException] = []
    with system_for(lm) as system:
        program = dx.Predict("question -> answer")
        program(question="What is 2 + 3?")
        for fault in (Fault.http(401), Fault.http(case.overload), Fault.malformed_json()):
            server.push_faults(fault, fault)
            with pytest.raises(dx.LMError) as caught:
                program(question="What is 9 + 3?")
            errors.append(caught.value)
        stats = json.dumps(system.stats(), default=str)
    program.save(tmp_path / "program.json")
    seen = [
        repr(lm),
        str(lm),
        lm.config_id,
        caplog.text,
        stats,
        json.dumps(list(lm.history), default=str),
        (tmp_path / "program.json").read_text(),
        *(f"{e!r} {e} {e.__cause__!r}" for e in errors),
    ]
    for text in seen:
        assert SECRET not in text


def test_missing_key_fails_at_lm_naming_the_variable(
    case: Case, monkeypatch: pytest.MonkeyPatch
) -> None:
    for env in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY"):
        monkeypatch.delenv(env, raising=False)
    monkeypatch.delenv("AZURE_OPENAI_API_KEY", raising=False)
    base = "https://llm.example.com/v1"
    with pytest.raises(dx.ConfigurationError, match=case.env):
        dx.LM(case.model, api_base=base)
    monkeypatch.setenv(case.env, SECRET)
    assert dx.LM(case.model, api_base=base).api_key == SECRET


def test_gemini_takes_google_api_key_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    monkeypatch.setenv("GOOGLE_API_KEY", SECRET)
    lm = dx.LM("gemini/gemini-2.5-flash")
    assert lm.api_key == SECRET
    assert lm.endpoint == (
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"
    )
    assert lm.stream_endpoint.endswith(":streamGenerateContent?alt=sse")


def test_openai_on_loopback_needs_no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    for base in ("http://127.0.0.1:8000/v1", "http://localhost:11434/v1", "http://[::1]:8/v1"):
        assert dx.LM("openai/llama", api_base=base).api_key is None
    with pytest.raises(dx.ConfigurationError, match="OPENAI_API_KEY"):
        dx.LM("openai/llama", api_base="http://10.0.0.5:8000/v1")


def test_azure_needs_an_endpoint_and_puts_the_version_in_the_url(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("AZURE_OPENAI_ENDPOINT", raising=False)
    with pytest.raises(dx.ConfigurationError, match="AZURE_OPENAI_ENDPOINT"):
        dx.LM("azure/dep", api_key=SECRET)
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", "https://res.openai.azure.com")
    lm = dx.LM("azure/dep", api_key=SECRET, api_version="2025-01-01-preview")
    assert lm.endpoint == (
        "https://res.openai.azure.com/openai/deployments/dep/chat/completions"
        "?api-version=2025-01-01-preview"
    )


def test_unknown_provider_lists_the_known_ones() -> None:
    with pytest.raises(dx.ConfigurationError) as caught:
        dx.LM("cohere/command-r", api_key=SECRET)
    for name in ("anthropic", "azure", "gemini", "openai"):
        assert name in str(caught.value)


def test_n_above_one_is_refused_where_the_api_has_no_n(
    server: LocalLMServer, make_system: Callable[..., ActorSystem]
) -> None:
    with pytest.raises(dx.ConfigurationError, match="one choice per request"):
        make_lm(CASES[1], server, n=2)
    claude = make_lm(CASES[1], server)
    with make_system(lm=claude):
        with pytest.raises(dx.ConfigurationError, match="n=3"):
            dx.Predict("question -> answer", n=3)(question="What is 2 + 3?")
        with pytest.raises(dx.ConfigurationError, match="n=2"):
            claude("What is 2 + 3?", n=2)
    assert server.stats().requests_total == 0
    gemini = make_lm(CASES[2], server)
    with make_system(lm=gemini):
        pred = dx.Predict("question -> answer", n=2)(question="What is 2 + 3?")
    assert (
        len(pred.completions) == 2
        and server.stats().last_request["generationConfig"]["candidateCount"] == 2
    )


def test_anthropic_overload_waits_for_its_retry_after(
    server: LocalLMServer, make_system: Callable[..., ActorSystem]
) -> None:
    lm = make_lm(CASES[1], server, num_retries=1)
    with make_system(lm=lm):  # its own backoff is 10 ms: only Retry-After makes it wait longer
        server.push_faults(Fault.http(529, retry_after=0.3))
        started = time.monotonic()
        assert lm("What is 3 + 4?") == ["7"]
        assert time.monotonic() - started >= 0.3
    assert server.stats().status(529) == 1


def test_a_blocked_stream_is_content_blocked(
    case: Case, server: LocalLMServer, system_for: Callable[[dx.LM], ActorSystem]
) -> None:
    lm = make_lm(case, server, num_retries=0)
    with system_for(lm) as system:
        server.push_faults(Fault.blocked())
        sink: queue.SimpleQueue[StreamChunk] = queue.SimpleQueue()
        with pytest.raises(dx.ContentBlockedError):
            asyncio.run(system.arequest(lm.make_request("What is 2 + 3?"), lm=lm, sink=sink))
        assert sink.empty()
        client = next(iter(system.stats()["clients"].values()))
        assert client["breaker"]["fail_counter"] == 0  # a block says nothing of the endpoint
