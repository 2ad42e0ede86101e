"""SIMBA on the instruction-sensitive model: rules from contrasting trajectories find the phrase."""

from __future__ import annotations

import json
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from teleprompt_helpers import API_KEY, SystemFactory, exact, examples

from dspex_actors import SIMBA
from dspex_actors._errors import OptimizerError
from dspex_actors.evaluate import Evaluate
from dspex_actors.lm import LM
from dspex_actors.predict import Predict
from dspex_actors.teleprompt._simba import percentile
from dspex_actors.testing import (
    INSTRUCTED_PHRASE,
    ChatRequest,
    InstructionSensitiveResponder,
    parse_dspy_prompt,
)
from dspex_actors.testing._responders import answer_prompt


class NoisyWhenSampled:
    """The instruction-sensitive model, but sampling (temperature >= 0.5) without the phrase
    alternates right and wrong per question: trajectories of one example disagree, as
    SIMBA needs to write a rule."""

    def __init__(self) -> None:
        self.inner = InstructionSensitiveResponder()
        self.seen: Counter[str] = Counter()
        self.lock = threading.Lock()

    def __call__(self, request: ChatRequest) -> str:
        prompt = parse_dspy_prompt(request)
        sampled = float(request.params.get("temperature") or 0.0) >= 0.5
        names = [name for name, _ in prompt.output_fields] if prompt is not None else []
        if prompt is None or not sampled or "module_advice" in names:
            return self.inner(request)
        if INSTRUCTED_PHRASE in request.system_text.lower():
            return self.inner(request)
        with self.lock:
            self.seen[prompt.question] += 1
            right = self.seen[prompt.question] % 2 == 0
        return answer_prompt(prompt, wrong=not right)


def score(example: Any, prediction: Any, trace: Any = None) -> float:
    return float(exact(example, prediction))


def test_simba_appends_a_rule_with_the_phrase(system_for: SystemFactory) -> None:
    system_for(NoisyWhenSampled(), latency=0.001)
    train, test = examples(32, seed=1), examples(100, seed=3)
    evaluate = Evaluate(devset=test, metric=exact, num_threads=8)
    baseline = evaluate(Predict("question -> answer")).score
    compiled = SIMBA(metric=score, max_steps=3, bsize=16, num_candidates=4, num_threads=8).compile(
        Predict("question -> answer"), trainset=train
    )
    assert INSTRUCTED_PHRASE in compiled.signature.instructions
    assert evaluate(compiled).score >= baseline + 30
    assert compiled.candidate_programs[0]["score"] == 1.0
    assert set(compiled.budget["phases"]) >= {"trajectories", "strategies", "candidates", "final"}
    assert compiled.budget["phases"]["strategies"]["lm_calls"] >= 1


def test_checkpoint_resume_repeats_no_step(system_for: SystemFactory, tmp_path: Path) -> None:
    _, server = system_for("instructed", latency=0.001, cache=False)
    train = examples(24, seed=2)
    options: dict[str, Any] = {"bsize": 8, "num_candidates": 2, "num_threads": 4}
    log_dir = tmp_path / "log"
    first = SIMBA(metric=score, max_steps=2, log_dir=log_dir, **options).compile(
        Predict("question -> answer"), trainset=train
    )
    saved = json.loads((log_dir / "simba.json").read_text())["state"]
    assert saved["step"] == 2
    before = server.stats(include_requests=False).requests_total
    # Same settings and log_dir: every step is done; only the final scoring runs again.
    again = SIMBA(metric=score, max_steps=2, log_dir=log_dir, **options).compile(
        Predict("question -> answer"), trainset=train
    )
    repeated = server.stats(include_requests=False).requests_total - before
    finals = len(first.candidate_programs)
    assert repeated == finals * len(train)
    assert [c["score"] for c in again.candidate_programs] == [
        c["score"] for c in first.candidate_programs
    ]
    with pytest.raises(OptimizerError, match="other settings"):
        SIMBA(metric=score, max_steps=3, log_dir=log_dir, **options).compile(
            Predict("question -> answer"), trainset=train
        )


def test_inputs_are_checked() -> None:
    with pytest.raises(OptimizerError, match="bsize must be an int >= 1"):
        SIMBA(metric=score, bsize=0)
    with pytest.raises(OptimizerError, match="fewer than bsize=32"):
        SIMBA(metric=score).compile(Predict("question -> answer"), trainset=examples(5))


def test_percentile_matches_numpy_linear() -> None:
    values = [0.0, 1.0, 1.0, 0.0, 1.0]
    assert percentile(values, 10) == 0.0
    assert percentile(values, 90) == 1.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5


def test_teacher_lm_samples_the_first_model(system_for: SystemFactory, make_lm_server: Any) -> None:
    system_for("instructed")
    teacher_server = make_lm_server("instructed")
    teacher = LM("openai/teacher", api_base=teacher_server.url, api_key=API_KEY, num_retries=0)
    train = examples(16, seed=6)
    SIMBA(
        metric=score,
        bsize=8,
        num_candidates=3,
        max_steps=1,
        teacher_settings={"lm": teacher},
    ).compile(Predict("question -> answer"), trainset=train)
    requests = teacher_server.stats().requests
    # One model of three is the teacher: it ran each of the 8 minibatch examples once, at
    # its own temperature (the others sample at 1.0).
    assert len(requests) == 8
    assert all(r.get("temperature") != 1.0 for r in requests)
