"""GEPA's reflection request and reply reading, against what DSPy 3.4.1 sends and reads.

``golden/gepa_reflection.json`` was recorded from DSPy 3.4.1 (``/tmp/dspy-venv``):
a ``LocalLMServer`` whose responder answered each case's reply (matched by the case's
``Case i.`` line in the current instruction) served
``dspy.LM("openai/local-model", api_base=..., cache=False)``; for each case,
``InstructionProposer()(candidate={"self": current_instruction},
reflective_dataset={"self": reflective_dataset}, components_to_update=["self"])`` ran
under ``dspy.context(lm=lm)`` (DSPy's default GEPA proposer), and the file keeps the
messages the server logged (the body held only ``model`` and ``messages``), the
instruction DSPy returned or the type of the error it raised.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from teleprompt_helpers import SystemFactory
from test_gepa import feedback_metric

from dspex_actors import GEPA
from dspex_actors._errors import AdapterParseError, OptimizerError
from dspex_actors.predict import Predict
from dspex_actors.primitives import Example, Module, Prediction
from dspex_actors.teleprompt._gepa_reflection import ReflectionError, propose_instruction
from dspex_actors.testing import (
    ChatRequest,
    InstructionSensitiveResponder,
    LocalLMServer,
    arithmetic_dataset,
)

GOLDEN = json.loads((Path(__file__).parent / "golden" / "gepa_reflection.json").read_text())
CASES = GOLDEN["cases"]
ERRORS: dict[str, type[Exception]] = {
    "AdapterParseError": AdapterParseError,
    "ValueError": ReflectionError,
}


def rows(n: int, seed: int) -> list[Example]:
    return [Example(**r).with_inputs("question") for r in arithmetic_dataset(n, seed=seed)]


def is_reflection(request: ChatRequest) -> bool:
    return "[[ ## current_instruction ## ]]" in request.last_user_text


class FixedReflection:
    """The instruction-sensitive model, except reflection requests get ``reply``."""

    def __init__(self, reply: str) -> None:
        self.reply = reply
        self.inner = InstructionSensitiveResponder()

    def __call__(self, request: ChatRequest) -> str:
        return self.reply if is_reflection(request) else self.inner(request)


@pytest.mark.parametrize("case", CASES, ids=[str(i) for i in range(len(CASES))])
def test_reflection_request_and_reading_match_dspy(
    system_for: SystemFactory, case: dict[str, Any]
) -> None:
    running, server = system_for(FixedReflection(case["reply"]), cache=False)
    dataset = GOLDEN["reflective_dataset"]
    if "instruction" in case:
        got = propose_instruction(running.lm, "self", case["current_instruction"], dataset)
        assert got == case["instruction"]
    else:
        with pytest.raises(ERRORS[case["error"]]) as caught:
            propose_instruction(running.lm, "self", case["current_instruction"], dataset)
        assert isinstance(caught.value, ValueError)  # DSPy's errors are ValueErrors too
        if case["error"] == "ValueError":
            assert "'self'" in str(caught.value)
    [request] = server.stats().requests
    assert request["messages"] == case["messages"]


def never_right(
    gold: Example, pred: Any, trace: Any = None, pred_name: Any = None, pred_trace: Any = None
) -> Prediction:
    return Prediction(score=0.0, feedback="Wrong.")


def run_gepa(
    system_for: SystemFactory, responder: Any, program: Module, metric: Any = feedback_metric
) -> tuple[Module, LocalLMServer]:
    _running, server = system_for(responder, cache=False)
    train = [Example(question=f"What is {i} + 1?", answer=str(i + 1)) for i in range(6)]
    examples = [e.with_inputs("question") for e in train]
    compiled = GEPA(
        metric=metric,
        max_metric_calls=30,
        reflection_minibatch_size=3,
        use_merge=False,
        num_threads=2,
    ).compile(program, trainset=examples, valset=examples)
    return compiled, server


def test_a_reply_without_an_instruction_is_asked_again_then_skipped(
    system_for: SystemFactory,
) -> None:
    responder = FixedReflection("No JSON at all.")
    compiled, server = run_gepa(system_for, responder, Predict("question -> answer"))
    iterations = compiled.detailed_results["iterations"]  # type: ignore[attr-defined]
    reflected = [it for it in iterations if "component" in it and "batch" in it]
    assert reflected, iterations
    for it in reflected:
        assert it["outcome"] == "skipped: no instruction in the reply for self"
        assert "instruction" not in it and "child_scores" not in it
    # gepa retries a failed proposal once: two requests per such iteration.
    asked = [r for r in server.stats().requests if "current_instruction" in json.dumps(r)]
    assert len(asked) == 2 * len(reflected)
    assert compiled.budget["phases"]["reflection"]["lm_calls"] == len(asked)  # type: ignore[attr-defined]
    assert compiled.detailed_results["candidates"] == [  # type: ignore[attr-defined]
        {"self": "Given the fields `question`, produce the fields `answer`."}
    ]


class Twins(Module):
    """Two predictors with equal signatures; only the first runs."""

    def __init__(self) -> None:
        super().__init__()
        self.first = Predict("question -> answer")
        self.second = Predict("question -> answer")

    def forward(self, question: str) -> Prediction:
        return self.first(question=question)


def test_a_predictor_reflects_on_its_own_steps_only(system_for: SystemFactory) -> None:
    # Unlike DSPy (which matches steps by signature equality, so `second` would see
    # `first`'s), a predictor's reflective dataset holds only its own steps: `second`
    # never runs, so it is never reflected on. No child beats a metric that is never
    # right, so every iteration reflects on the seed.
    compiled, _ = run_gepa(system_for, InstructionSensitiveResponder(), Twins(), never_right)
    iterations = compiled.detailed_results["iterations"]  # type: ignore[attr-defined]
    by_component = {it["component"]: it for it in iterations if "component" in it}
    assert "instruction" in by_component["first"]
    assert by_component["second"]["outcome"] == "skipped: no trace of second"


def test_a_run_sends_the_reflection_request_dspy_sends(system_for: SystemFactory) -> None:
    # golden/gepa_run_reflection.json: the one reflection request DSPy 3.4.1 sent in
    # `dspy.GEPA(metric=<this metric>, max_metric_calls=20, reflection_lm=lm,
    # num_threads=2).compile(dspy.Predict("question -> answer"), trainset=arithmetic_dataset(6,
    # seed=1), valset=arithmetic_dataset(4, seed=2))` against `ServerProcess("instructed")`
    # (`dspy.LM("openai/local-model", cache=False)`), as the server logged it. Same
    # minibatch, same step drawn, same feedback, same rendering.
    golden = json.loads((Path(__file__).parent / "golden" / "gepa_run_reflection.json").read_text())
    _running, server = system_for("instructed", cache=False)

    def metric(gold: Example, pred: Any, trace: Any, pred_name: Any, pred_trace: Any) -> Any:
        right = str(pred.answer).strip() == gold.answer
        text = "Correct." if right else f"Expected {gold.answer}, got {pred.answer}."
        return Prediction(score=float(right), feedback=text)

    GEPA(metric=metric, max_metric_calls=20, num_threads=2).compile(
        Predict("question -> answer"), trainset=rows(6, 1), valset=rows(4, 2)
    )
    asked = [r for r in server.stats().requests if "current_instruction" in json.dumps(r)]
    assert [r["messages"] for r in asked] == [golden["messages"]]


def test_a_checkpoint_of_another_proposal_prompt_is_not_resumed(
    system_for: SystemFactory, tmp_path: Path
) -> None:
    # Checkpoints written before the DSPy prompt (the gepa template) lack "proposer".
    _running, _server = system_for("instructed")
    options: dict[str, Any] = {"max_metric_calls": 20, "num_threads": 2, "log_dir": tmp_path}
    program, train = Predict("question -> answer"), rows(6, 1)
    GEPA(metric=feedback_metric, **options).compile(program, trainset=train, valset=train)
    path = tmp_path / "gepa.json"
    saved = json.loads(path.read_text())
    del saved["settings"]["proposer"]
    path.write_text(json.dumps(saved))
    with pytest.raises(OptimizerError, match="other settings"):
        GEPA(metric=feedback_metric, **options).compile(program, trainset=train, valset=train)
