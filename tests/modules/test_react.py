"""ReAct end to end against the local server: its default model plays the agent.

The agent calls a tool (the one named in the question, else the first), then ``finish``;
the extract step answers from the last observation. So an answer equal to what the tool
returned shows the tool really ran and its observation reached the LM.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from pathlib import Path
from typing import Any

import pytest

import dspex_actors as dx
from dspex_actors.testing import fixed_responder
from tests.modules.conftest import SystemFor


def test_the_tool_runs_and_the_answer_comes_from_its_observation(system_for: SystemFor) -> None:
    _, server = system_for()
    calls: list[str] = []

    def lookup_capital(country: str) -> str:
        """Look up the capital of a country."""
        calls.append(country)
        return "Zorbaville (looked up)"

    def unit_price(item: str) -> str:
        """The price of an item."""
        raise AssertionError("the agent picked the wrong tool")

    react = dx.ReAct("question -> answer", tools=[lookup_capital, unit_price])
    question = "Use lookup_capital: what is the capital of Freedonia?"
    pred = react(question=question)
    assert calls == [question]
    assert pred.answer == "Zorbaville (looked up)"
    assert pred.trajectory == {
        "thought_0": "I will call lookup_capital to find out.",
        "tool_name_0": "lookup_capital",
        "tool_args_0": {"country": question},
        "observation_0": "Zorbaville (looked up)",
        "thought_1": "I have what I need.",
        "tool_name_1": "finish",
        "tool_args_1": {},
        "observation_1": "Completed.",
    }
    assert "Zorbaville" in pred.reasoning
    assert server.stats().requests_total == 3  # two steps, then the extract step


def test_typed_arguments_and_a_typed_answer(system_for: SystemFor) -> None:
    system_for()

    def multiply(a: int, b: int) -> int:
        """Multiply two integers."""
        assert isinstance(a, int)
        assert isinstance(b, int)
        return a * b

    pred = dx.ReAct("question -> answer: int", tools=[multiply])(question="What is 6 times 7?")
    assert pred.trajectory["tool_args_0"] == {"a": 6, "b": 7}
    assert pred.trajectory["observation_0"] == 42
    assert pred.answer == 42


def test_a_tool_that_raises_puts_the_error_in_the_observation(system_for: SystemFor) -> None:
    system_for()

    def flaky(query: str) -> str:
        raise RuntimeError("the index is down")

    pred = dx.ReAct("question -> answer", tools=[flaky])(question="Find it.")
    observation = pred.trajectory["observation_0"]
    assert observation.startswith("Execution error in flaky: \nTraceback")
    assert "RuntimeError: the index is down" in observation
    assert pred.trajectory["tool_name_1"] == "finish"
    assert "the index is down" in pred.answer


def test_past_max_iters_it_ends_with_the_extract_step(system_for: SystemFor) -> None:
    _, server = system_for()
    calls: list[str] = []

    def search(query: str) -> str:
        calls.append(query)
        return "found it"

    react = dx.ReAct("question -> answer", tools=[search], max_iters=1)
    pred = react(question="Look for it.")
    assert list(pred.trajectory) == ["thought_0", "tool_name_0", "tool_args_0", "observation_0"]
    assert pred.answer == "found it"
    assert calls == ["Look for it."]
    assert server.stats().requests_total == 2
    none = react(question="Look again.", max_iters=0)
    assert none.trajectory == {}
    assert calls == ["Look for it."]


def test_an_unknown_tool_name_ends_the_trajectory(
    system_for: SystemFor, caplog: pytest.LogCaptureFixture
) -> None:
    bad_step = "[[ ## next_thought ## ]]\nx\n\n[[ ## next_tool_name ## ]]\nteleport\n\n" + (
        "[[ ## next_tool_args ## ]]\n{}\n\n[[ ## completed ## ]]"
    )
    bad_json = '{"next_thought": "x", "next_tool_name": "teleport", "next_tool_args": {}}'
    extract = "[[ ## reasoning ## ]]\nNo tool.\n\n[[ ## answer ## ]]\nunknown"
    _, server = system_for(fixed_responder(bad_step, bad_json, extract))

    def search(query: str) -> str:
        raise AssertionError("never called")

    with caplog.at_level(logging.WARNING, logger="dspex_actors.modules._react"):
        pred = dx.ReAct("question -> answer", tools=[search])(question="q")
    assert pred.answer == "unknown"
    assert pred.trajectory == {}
    assert "failed to select a valid tool" in caplog.text
    assert server.stats().requests_total == 3  # the step, its JSON retry, the extract step


def test_acall_awaits_async_tools_and_runs_plain_ones_off_the_loop(
    system_for: SystemFor,
) -> None:
    system_for()
    threads: list[threading.Thread] = []

    async def fetch_page(url: str) -> str:
        """Fetch a page."""
        await asyncio.sleep(0)
        return f"page text of {url}"

    def count_words(text: str) -> int:
        threads.append(threading.current_thread())
        return len(text.split())

    async def main() -> tuple[Any, Any, threading.Thread]:
        first = await dx.ReAct("question -> answer", tools=[fetch_page]).acall(question="Go.")
        second = await dx.ReAct("question -> answer", tools=[count_words]).acall(
            question="count_words: one two three"
        )
        return first, second, threading.current_thread()

    first, second, loop_thread = asyncio.run(main())
    assert first.answer == "page text of Go."
    assert second.trajectory["observation_0"] == 4  # the question, word by word
    assert threads and threads[0] is not loop_thread


def test_predictors_are_named_as_in_dspy() -> None:
    react = dx.ReAct("question -> answer", tools=[len])
    assert [name for name, _ in react.named_predictors()] == ["react", "extract.predict"]
    assert list(react.tools) == ["len", "finish"]
    with pytest.raises(dx.ConfigurationError, match="max_iters"):
        dx.ReAct("question -> answer", tools=[len], max_iters=-1)
    with pytest.raises(dx.ConfigurationError, match="list of functions"):
        dx.ReAct("question -> answer", tools=len)


def test_a_saved_agent_loads_into_a_fresh_one(tmp_path: Path) -> None:
    def search(query: str) -> str:
        """Search."""
        return query

    react = dx.ReAct("question -> answer", tools=[search])
    react.react.demos = [dx.Example(question="q", trajectory="", next_thought="t")]
    path = tmp_path / "agent.json"
    react.save(path)
    saved = json.loads(path.read_text())
    assert set(saved) == {"react", "extract.predict", "metadata"}
    fresh = dx.ReAct("question -> answer", tools=[search]).load(path)
    assert fresh.react.demos[0].next_thought == "t"
    assert fresh.react.signature.instructions == react.react.signature.instructions


def test_evaluate_runs_an_agent_on_its_async_path(system_for: SystemFor) -> None:
    system_for()
    calls: list[tuple[int, int]] = []
    lock = threading.Lock()

    def multiply(a: int, b: int) -> int:
        """Multiply two integers."""
        with lock:
            calls.append((a, b))
        return a * b

    devset = [
        dx.Example(question=f"What is {i} times 3?", answer=str(i * 3)).with_inputs("question")
        for i in range(8)
    ]
    react = dx.ReAct("question -> answer", tools=[multiply])
    assert react.has_native_aforward
    result = dx.Evaluate(devset=devset, metric=dx.answer_exact_match, num_threads=4)(react)
    assert result.score == 100.0
    assert sorted(calls) == [(i, 3) for i in range(8)]
