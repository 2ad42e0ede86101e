"""Usage in DSPy's per-model shape, cost, the bounded history and inspect_history."""

from __future__ import annotations

import asyncio
import io
import threading
from collections.abc import Callable

import pytest

import dspex_actors as dx
from dspex_actors.lm._history import GLOBAL_HISTORY
from dspex_actors.system import ActorSystem
from dspex_actors.testing import ChatRequest, LocalLMServer
from tests._support import server_usage

MODEL = "openai/local-model"



def test_track_usage_sums_every_request_and_cached_answers_add_none(
    lm_server: LocalLMServer, make_system: Callable[..., ActorSystem]
) -> None:
    lm = dx.LM(MODEL, api_base=lm_server.url)
    qa = dx.Predict("question -> answer")
    with make_system(lm=lm):
        with dx.track_usage() as usage:
            first = qa(question="What is 2 + 3?")
            qa(question="What is 4 + 4?")
            again = qa(question="What is 2 + 3?")  # a cache hit: no request
        assert lm_server.stats().requests_total == 2
        assert usage.get_total_tokens() == {MODEL: {**server_usage(lm_server), "cache_hits": 1}}
        assert again.get_lm_usage() == {MODEL: {"cache_hits": 1}}
        assert first.get_lm_usage() is not None
        assert first.get_lm_usage()[MODEL]["total_tokens"] > 0  # type: ignore[index]


def test_a_json_fallback_request_is_counted_too(
    make_lm_server: Callable[..., LocalLMServer], make_system: Callable[..., ActorSystem]
) -> None:
    def chat_fails_json_works(request: ChatRequest) -> str:
        if "Respond with a JSON object" in request.last_user_text:
            return '{"answer": "5"}'
        return "no markers in this reply"

    server = make_lm_server(chat_fails_json_works)
    lm = dx.LM(MODEL, api_base=server.url, cache=False)
    with make_system(lm=lm):
        pred = dx.Predict("question -> answer")(question="What is 2 + 3?")
    assert pred.answer == "5"
    assert server.stats().requests_total == 2
    assert pred.get_lm_usage() == {MODEL: server_usage(server)}


def test_a_module_sums_its_predictors_and_nested_trackers_roll_up(
    lm_server: LocalLMServer, make_system: Callable[..., ActorSystem]
) -> None:
    class Two(dx.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = dx.Predict("question -> answer")
            self.b = dx.ChainOfThought("question -> answer")

        def forward(self, question: str) -> dx.Prediction:
            self.a(question=question)
            return self.b(question=question)

    lm = dx.LM(MODEL, api_base=lm_server.url, cache=False)
    with make_system(lm=lm), dx.track_usage() as outer:
        with dx.track_usage() as inner:
            pred = Two()(question="What is 1 + 2?")
        assert pred.get_lm_usage() == {MODEL: server_usage(lm_server)}
        assert inner.get_total_tokens() == outer.get_total_tokens() == pred.get_lm_usage()


def test_usage_of_async_calls_and_of_each_task(
    lm_server: LocalLMServer, make_system: Callable[..., ActorSystem]
) -> None:
    lm = dx.LM(MODEL, api_base=lm_server.url, cache=False)
    qa = dx.Predict("question -> answer")

    async def main() -> list[dx.Prediction]:
        return await asyncio.gather(*(qa.acall(question=f"What is {i} + 1?") for i in range(4)))

    with make_system(lm=lm), dx.track_usage() as usage:
        preds = asyncio.run(main())
    per_call = [p.get_lm_usage()[MODEL]["total_tokens"] for p in preds]  # type: ignore[index]
    assert sum(per_call) == usage.get_total_tokens()[MODEL]["total_tokens"]
    assert usage.get_total_tokens() == {MODEL: server_usage(lm_server)}


def test_cost_from_prices_in_usage_and_stats(
    lm_server: LocalLMServer, make_system: Callable[..., ActorSystem]
) -> None:
    lm = dx.LM(
        MODEL,
        api_base=lm_server.url,
        input_cost_per_million=3.0,
        output_cost_per_million=15.0,
    )
    with make_system(lm=lm) as system:
        pred = dx.ChainOfThought("question -> answer")(question="What is 2 + 3?")
        client = next(iter(system.stats()["clients"].values()))
    used = server_usage(lm_server)
    expected = (used["prompt_tokens"] * 3.0 + used["completion_tokens"] * 15.0) / 1e6
    usage = pred.get_lm_usage()
    assert usage is not None
    assert usage[MODEL]["cost"] == pytest.approx(expected)
    assert client["cost"] == pytest.approx(expected)
    assert lm.history[-1]["cost"] == pytest.approx(expected)
    with pytest.raises(dx.ConfigurationError, match="input_cost_per_million"):
        dx.LM(MODEL, api_base=lm_server.url, input_cost_per_million=-1)


def test_history_is_a_bounded_ring_of_entries(
    lm_server: LocalLMServer, make_system: Callable[..., ActorSystem]
) -> None:
    lm = dx.LM(MODEL, api_base=lm_server.url, history_size=3)
    with make_system(lm=lm):
        for i in range(5):
            lm(f"What is {i} + 2?")
        lm("What is 4 + 2?")  # cached
    assert len(lm.history) == 3 and lm.history_size == 3
    last = lm.history[-1]
    assert last["cached"] is True and last["usage"] == {} and last["outputs"] == ["6"]
    assert last["messages"] == [{"role": "user", "content": "What is 4 + 2?"}]
    assert last["model"] == MODEL and last["response_model"] == "local-model"
    assert isinstance(last["timestamp"], str) and "T" in last["timestamp"]
    fresh = lm.history[-2]
    assert fresh["cached"] is False and fresh["usage"]["total_tokens"] > 0
    assert [e["outputs"] for e in lm.history[-3:]] == [["5"], ["6"], ["6"]]
    assert lm.copy(temperature=0.5).history_size == 3


def test_history_size_zero_keeps_nothing(
    lm_server: LocalLMServer, make_system: Callable[..., ActorSystem]
) -> None:
    GLOBAL_HISTORY.clear()
    lm = dx.LM(MODEL, api_base=lm_server.url, history_size=0)
    with make_system(lm=lm):
        assert lm("What is 1 + 1?") == ["2"]
    assert len(lm.history) == 0 and len(GLOBAL_HISTORY) == 0


def test_history_stays_bounded_under_concurrent_calls(
    lm_server: LocalLMServer, make_system: Callable[..., ActorSystem]
) -> None:
    lm = dx.LM(MODEL, api_base=lm_server.url, history_size=10, cache=False)
    with make_system(lm=lm):
        threads = [
            threading.Thread(target=lambda i=i: lm(f"What is {i} + 0?")) for i in range(40)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    assert len(lm.history) == 10 and lm_server.stats().requests_total == 40


def test_inspect_history_prints_like_dspy(
    lm_server: LocalLMServer,
    make_system: Callable[..., ActorSystem],
    capsys: pytest.CaptureFixture[str],
) -> None:
    GLOBAL_HISTORY.clear()
    for entry in (
        {
            "messages": [
                {"role": "system", "content": "Sys line\n"},
                {"role": "user", "content": "  Q?  "},
            ],
            "outputs": ["  [[ ## answer ## ]]\n5\n"],
            "timestamp": "2026-12-01T11:00:00.000001",
        },
        {
            "messages": [{"role": "user", "content": "Second"}],
            "outputs": ["a", "b", "c"],
            "timestamp": "2026-12-01T11:00:01",
        },
    ):
        GLOBAL_HISTORY.append(entry)
    out = io.StringIO()
    dx.inspect_history(n=2, file=out)
    # What DSPy 3.4.1's pretty_print_history writes for the same two entries:
    assert out.getvalue() == (
        "\n\n\n\n[2026-12-01T11:00:00.000001]\n\nSystem message:\n\nSys line\n\n\n"
        "User message:\n\nQ?\n\n\nResponse:\n\n[[ ## answer ## ]]\n5\n\n\n\n\n\n"
        "[2026-12-01T11:00:01]\n\nUser message:\n\nSecond\n\n\nResponse:\n\na\n\n"
        " \t (and 2 other completions)\n\n\n\n\n"
    )
    dx.inspect_history()  # to stdout, coloured
    printed = capsys.readouterr().out
    assert "\x1b[34m[2026-12-01T11:00:01]\x1b[0m" in printed and "Sys line" not in printed

    lm = dx.LM(MODEL, api_base=lm_server.url)
    with make_system(lm=lm):
        dx.ChainOfThought("question -> answer")(question="What is 2 + 3?")
    dx.inspect_history(n=1)
    printed = capsys.readouterr().out
    assert "System message:" in printed and "What is 2 + 3?" in printed
    assert "[[ ## answer ## ]]\n5" in printed


def test_track_usage_around_an_evaluate_counts_every_worker(
    lm_server: LocalLMServer, make_system: Callable[..., ActorSystem]
) -> None:
    lm = dx.LM(MODEL, api_base=lm_server.url, cache=False)
    devset = [
        dx.Example(question=f"What is {i} + 1?", answer=str(i + 1)).with_inputs("question")
        for i in range(12)
    ]
    with make_system(lm=lm), dx.track_usage() as usage:
        result = dx.Evaluate(devset=devset, metric=dx.answer_exact_match, num_threads=4)(
            dx.Predict("question -> answer")
        )
    assert result.score == 100.0
    assert usage.get_total_tokens() == {MODEL: server_usage(lm_server)}
    per_example = sum(
        pred.get_lm_usage()[MODEL]["total_tokens"] for _, pred, _ in result.results
    )
    assert per_example == server_usage(lm_server)["total_tokens"]
