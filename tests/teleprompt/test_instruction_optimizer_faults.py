"""MIPROv2, GEPA and SIMBA under failures: max_errors and Ctrl-C keep the partial best."""

from __future__ import annotations

import _thread
import threading
from pathlib import Path
from typing import Any

import pytest
from teleprompt_helpers import SystemFactory, exact, examples

from dspex_actors import GEPA, SIMBA, MIPROv2
from dspex_actors._errors import CompileInterrupted, OptimizerError
from dspex_actors.predict import ChainOfThought, Predict
from dspex_actors.primitives import Example, Module, Prediction
from dspex_actors.testing import ChatRequest, InstructionSensitiveResponder, parse_dspy_prompt

DEFAULT_INSTRUCTIONS = "Given the fields `question`, produce the fields `answer`."


class RefusesNewInstructions:
    """The instruction-sensitive model, but task prompts with any instruction other than
    the default one get an unparseable reply (also on the JSON retry)."""

    def __init__(self) -> None:
        self.inner = InstructionSensitiveResponder()

    def __call__(self, request: ChatRequest) -> str:
        prompt = parse_dspy_prompt(request)
        names = [name for name, _ in prompt.output_fields] if prompt is not None else []
        task = prompt is not None and names == ["answer"]
        if task and DEFAULT_INSTRUCTIONS not in request.system_text:
            return "I would rather not say."
        return self.inner(request)


def feedback_metric(
    gold: Example, pred: Any, trace: Any = None, pred_name: Any = None, pred_trace: Any = None
) -> Prediction:
    right = str(pred.answer).strip() == gold.answer
    return Prediction(score=float(right), feedback="Correct." if right else "Off by one.")


def test_mipro_max_errors_keeps_the_best_so_far(system_for: SystemFactory) -> None:
    system_for(RefusesNewInstructions())
    with pytest.raises(OptimizerError, match="stopped early") as caught:
        MIPROv2(metric=exact, auto="light", num_threads=8, max_errors=3).compile(
            Predict("question -> answer"),
            trainset=examples(20, seed=1),
            valset=examples(30, seed=2),
        )
    partial = caught.value.partial
    assert isinstance(partial, Predict)
    assert partial.signature.instructions == DEFAULT_INSTRUCTIONS


def test_gepa_max_errors_keeps_the_seed_candidate(system_for: SystemFactory) -> None:
    system_for(RefusesNewInstructions())
    with pytest.raises(OptimizerError) as caught:
        GEPA(metric=feedback_metric, max_metric_calls=300, max_errors=1).compile(
            Predict("question -> answer"),
            trainset=examples(20, seed=1),
            valset=examples(30, seed=2),
        )
    assert isinstance(caught.value.partial, Predict)
    assert caught.value.partial.signature.instructions == DEFAULT_INSTRUCTIONS


def test_ctrl_c_during_gepa_keeps_the_checkpoint_and_resumes(
    system_for: SystemFactory, tmp_path: Path
) -> None:
    system_for("instructed")
    calls = 0
    fired = threading.Event()

    def interrupting(gold: Example, pred: Any, *args: Any) -> Prediction:
        nonlocal calls
        calls += 1
        if calls == 45 and not fired.is_set():
            fired.set()
            _thread.interrupt_main()
        return feedback_metric(gold, pred)

    def run(metric: Any) -> Module:
        return GEPA(metric=metric, max_metric_calls=120, log_dir=tmp_path).compile(
            Predict("question -> answer"),
            trainset=examples(20, seed=1),
            valset=examples(30, seed=2),
        )

    with pytest.raises(CompileInterrupted, match="GEPA: interrupted in iteration") as caught:
        run(interrupting)  # a KeyboardInterrupt: an `except Exception:` cannot swallow it
    assert fired.is_set()
    assert isinstance(caught.value.result, Predict)
    assert (tmp_path / "gepa.json").exists()
    resumed = run(feedback_metric)
    assert resumed.detailed_results["total_metric_calls"] >= 120


class Pipeline(Module):
    def __init__(self) -> None:
        super().__init__()
        self.draft = ChainOfThought("question -> answer")
        self.final = Predict("question, draft -> answer")

    def forward(self, question: str) -> Prediction:
        draft = self.draft(question=question).answer
        result: Prediction = self.final(question=question, draft=draft)
        return result


def test_two_predictors_each_get_an_instruction(system_for: SystemFactory) -> None:
    system_for("instructed")
    train, val = examples(20, seed=1), examples(30, seed=2)
    mipro = MIPROv2(metric=exact, auto=None, num_candidates=3, num_trials=4).compile(
        Pipeline(), trainset=train, valset=val, minibatch=False
    )
    assert set(mipro.trial_logs[2]["params"]) == {
        "0_predictor_instruction",
        "0_predictor_demos",
        "1_predictor_instruction",
        "1_predictor_demos",
    }
    gepa = GEPA(metric=feedback_metric, max_metric_calls=150).compile(
        Pipeline(), trainset=train, valset=val
    )
    components = {it.get("component") for it in gepa.detailed_results["iterations"]}
    assert components - {None} <= {"draft.predict", "final"}
    simba = SIMBA(metric=exact, bsize=8, num_candidates=2, max_steps=1).compile(
        Pipeline(), trainset=train
    )
    assert [name for name, _ in simba.named_predictors()] == ["draft.predict", "final"]


def test_max_errors_counts_per_candidate(system_for: SystemFactory) -> None:
    """Two failing runs in each of several candidates stay within max_errors=2 (DSPy counts
    per Evaluate call, one per candidate), though together they are more than 2."""
    bad = {ex.question for ex in examples(30, seed=2)[:2]}

    class TwoBad(InstructionSensitiveResponder):
        def __call__(self, request: ChatRequest) -> str:
            prompt = parse_dspy_prompt(request)
            if prompt is not None and prompt.question in bad:
                return "I would rather not say."
            return super().__call__(request)

    system_for(TwoBad())
    compiled = MIPROv2(metric=exact, auto="light", num_threads=8, max_errors=2).compile(
        Predict("question -> answer"), trainset=examples(20, seed=1), valset=examples(30, seed=2)
    )
    assert compiled.score <= 100 * 28 / 30
