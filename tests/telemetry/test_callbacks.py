"""DSPy-style callbacks: DSPy's hook names, arguments and order; a failing callback is harmless."""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest

import dspex_actors as dx
from dspex_actors.testing import LocalLMServer


class Recorder(dx.BaseCallback):
    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []
        self.ids: dict[str, str] = {}

    def _start(self, kind: str, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        self.ids[call_id] = kind
        self.events.append((f"{kind}_start", (type(instance).__name__, inputs)))

    def _end(self, kind: str, call_id: str, outputs: Any, exception: Any) -> None:
        assert self.ids[call_id] == kind  # the same call_id as its start
        self.events.append((f"{kind}_end", (outputs, exception)))

    def on_module_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        self._start("module", call_id, instance, inputs)

    def on_module_end(self, call_id: str, outputs: Any, exception: Any = None) -> None:
        self._end("module", call_id, outputs, exception)

    def on_lm_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        self._start("lm", call_id, instance, inputs)

    def on_lm_end(self, call_id: str, outputs: Any, exception: Any = None) -> None:
        self._end("lm", call_id, outputs, exception)

    def on_adapter_format_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        self._start("format", call_id, instance, inputs)

    def on_adapter_format_end(self, call_id: str, outputs: Any, exception: Any = None) -> None:
        self._end("format", call_id, outputs, exception)

    def on_adapter_parse_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        self._start("parse", call_id, instance, inputs)

    def on_adapter_parse_end(self, call_id: str, outputs: Any, exception: Any = None) -> None:
        self._end("parse", call_id, outputs, exception)

    def on_evaluate_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        self._start("evaluate", call_id, instance, inputs)

    def on_evaluate_end(self, call_id: str, outputs: Any, exception: Any = None) -> None:
        self._end("evaluate", call_id, outputs, exception)

    def on_compile_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        self._start("compile", call_id, instance, inputs)

    def on_compile_end(self, call_id: str, outputs: Any, exception: Any = None) -> None:
        self._end("compile", call_id, outputs, exception)

    def kinds(self) -> list[str]:
        return [name for name, _ in self.events]


def _lm(server: LocalLMServer) -> dx.LM:
    return dx.LM("openai/local-model", api_base=server.url)


def test_a_predict_call_in_dspy_order_with_dspy_arguments(lm_server: LocalLMServer) -> None:
    recorder = Recorder()
    dx.configure(lm=_lm(lm_server), callbacks=[recorder])
    pred = dx.Predict("question -> answer")(question="What is 1 + 1?")
    assert recorder.kinds() == [
        "module_start",
        "format_start",
        "format_end",
        "lm_start",
        "lm_end",
        "parse_start",
        "parse_end",
        "module_end",
    ]
    events = dict(recorder.events)
    assert events["module_start"] == (
        "Predict",
        {"args": (), "kwargs": {"question": "What is 1 + 1?"}},
    )
    owner, format_inputs = events["format_start"]
    assert owner == "ChatAdapter" and sorted(format_inputs) == ["demos", "inputs", "signature"]
    messages, _ = events["format_end"]
    owner, lm_inputs = events["lm_start"]
    assert owner == "LM" and lm_inputs["messages"] == messages and lm_inputs["prompt"] is None
    texts, error = events["lm_end"]
    assert error is None and texts[0].startswith("[[ ## answer ## ]]")
    assert events["parse_start"][1]["completion"] == texts[0]
    assert events["parse_end"] == ({"answer": "2"}, None)
    assert events["module_end"] == (pred, None)


def test_instance_callbacks_follow_global_ones_and_errors_reach_end() -> None:
    global_recorder, own = Recorder(), Recorder()
    qa = dx.Predict("question -> answer", callbacks=[own])
    with dx.ActorSystem(
        lm=dx.LM("openai/local-model", api_base="http://127.0.0.1:9/v1", num_retries=0, timeout=2)
    ), dx.context(callbacks=[global_recorder]), pytest.raises(dx.LMConnectionError):
        qa(question="unreachable")
    for recorder in (global_recorder, own):
        assert recorder.kinds()[0] == "module_start" and recorder.kinds()[-1] == "module_end"
        outputs, error = dict(recorder.events)["module_end"]
        assert outputs is None and isinstance(error, dx.LMConnectionError)
    assert "lm_start" not in own.kinds()  # the LM has no instance callbacks; the global does
    assert "lm_end" in global_recorder.kinds()


def test_context_callbacks_are_per_thread(lm_server: LocalLMServer) -> None:
    mine, theirs = Recorder(), Recorder()
    qa = dx.Predict("question -> answer")
    with dx.ActorSystem(lm=_lm(lm_server)), dx.context(callbacks=[mine]):
        qa(question="here")
        thread = threading.Thread(target=lambda: qa(question="there"))
        thread.start()
        thread.join(20)
    assert mine.kinds().count("module_start") == 1 and not theirs.events


def test_a_failing_callback_is_logged_and_the_call_goes_on(
    lm_server: LocalLMServer, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken(dx.BaseCallback):
        def on_lm_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
            raise RuntimeError("callback bug")

    system = dx.ActorSystem(lm=_lm(lm_server))
    with system, dx.context(callbacks=[Broken()]), caplog.at_level(logging.WARNING):
        assert dx.Predict("question -> answer")(question="still works").answer
    assert any("on_lm_start" in r.getMessage() and r.exc_info for r in caplog.records)


def test_evaluate_and_compile_hooks(lm_server: LocalLMServer) -> None:
    recorder = Recorder()
    data = [
        dx.Example(question=f"What is {i} + 1?", answer=str(i + 1)).with_inputs("question")
        for i in range(4)
    ]
    qa = dx.Predict("question -> answer")
    with dx.ActorSystem(lm=_lm(lm_server)), dx.context(callbacks=[recorder]):
        result = dx.Evaluate(devset=data, metric=dx.answer_exact_match, num_threads=2)(qa)
        compiled = dx.LabeledFewShot(k=2).compile(qa, trainset=data)
    events = dict(recorder.events)
    assert (
        events["evaluate_start"][0] == "Evaluate" and events["evaluate_start"][1]["program"] is qa
    )
    assert events["evaluate_end"] == (result, None)
    assert events["compile_start"][0] == "LabeledFewShot"
    assert events["compile_start"][1]["student"] is qa
    assert events["compile_end"] == (compiled, None)
    assert recorder.kinds().count("module_start") == 4  # one per example, from the workers


def test_bad_callbacks_setting() -> None:
    with pytest.raises(dx.ConfigurationError, match="callbacks must be a list"):
        dx.configure(callbacks=Recorder())


def test_tool_hooks() -> None:
    seen: list[tuple[str, Any]] = []

    class ToolRecorder(dx.BaseCallback):
        def on_tool_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
            seen.append(("start", (instance.name, inputs)))

        def on_tool_end(self, call_id: str, outputs: Any, exception: Any = None) -> None:
            seen.append(("end", (outputs, exception)))

    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    with dx.context(callbacks=[ToolRecorder()]):
        assert dx.Tool(add)(a=2, b=3) == 5
    assert seen == [("start", ("add", {"kwargs": {"a": 2, "b": 3}})), ("end", (5, None))]
