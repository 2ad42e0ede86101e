"""MIPROv2 on the instruction-sensitive model: it finds the phrase, seeded, resumable."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from teleprompt_helpers import (
    API_KEY,
    SystemFactory,
    exact,
    examples,
    instructed_baseline,
    instructed_data,
)

from dspex_actors import MIPROv2
from dspex_actors._errors import ConfigurationError, OptimizerError
from dspex_actors.lm import LM
from dspex_actors.predict import Predict
from dspex_actors.primitives import Module
from dspex_actors.system import ActorSystem
from dspex_actors.testing import INSTRUCTED_PHRASE, Fault, LocalLMServer

ROOT = Path(__file__).resolve().parents[2]


data = instructed_data


def summary(program: Module) -> dict[str, Any]:
    """What a compile decided: instructions, demos, every trial's params and score."""
    return {
        "instructions": [p.signature.instructions for p in program.predictors()],
        "demos": [[d.toDict() for d in p.demos] for p in program.predictors()],
        "trials": program.trial_logs,  # type: ignore[attr-defined]
        "score": program.score,  # type: ignore[attr-defined]
    }


def test_mipro_finds_the_instruction_phrase(system_for: SystemFactory) -> None:
    _, server = system_for("instructed", latency=0.002)
    train, val, test = data()
    evaluate, baseline = instructed_baseline(test)

    compiled = MIPROv2(metric=exact, auto="light", num_threads=8).compile(
        Predict("question -> answer"), trainset=train, valset=val
    )
    assert INSTRUCTED_PHRASE in compiled.signature.instructions
    assert evaluate(compiled).score >= baseline + 30
    # DSPy's light settings: 6 demo sets, 3 instructions (the first the original), 10 trials.
    trials = compiled.trial_logs
    assert len([t for t in trials.values() if t["kind"] == "trial"]) == 10
    assert trials[1]["kind"] == "default"
    budget = compiled.budget
    assert set(budget["phases"]) == {"bootstrap", "propose", "search"}
    assert budget["total"]["lm_calls"] == sum(p["lm_calls"] for p in budget["phases"].values())
    assert 0 < budget["total"]["lm_calls"] <= server.stats(include_requests=False).requests_total
    assert budget["total"]["tokens"] > 0
    # Several candidates' examples were in flight at once.
    assert server.stats(include_requests=False).max_in_flight > 1


def test_same_seed_same_result_with_1_and_16_threads(system_for: SystemFactory) -> None:
    train, val, _ = data()
    results = []
    for threads in (1, 16):
        running, _server = system_for("instructed", latency=0.001)
        with running:
            compiled = MIPROv2(metric=exact, auto="light", num_threads=threads, seed=3).compile(
                Predict("question -> answer"), trainset=train, valset=val
            )
        results.append(summary(compiled))
    assert results[0] == results[1]


def test_save_and_load_keep_the_instruction_and_demos(
    system_for: SystemFactory, tmp_path: Path
) -> None:
    system_for("instructed")
    train, val, _ = data()
    compiled = MIPROv2(metric=exact, auto="light", num_threads=8).compile(
        Predict("question -> answer"), trainset=train, valset=val
    )
    path = tmp_path / "mipro.json"
    compiled.save(path)
    saved = json.loads(path.read_text())
    assert INSTRUCTED_PHRASE in json.dumps(saved)
    fresh = Predict("question -> answer").load(path)
    assert fresh.signature.instructions == compiled.signature.instructions
    assert [d.toDict() for d in fresh.demos] == [d.toDict() for d in compiled.demos]


CHILD = textwrap.dedent(
    """
    import sys
    import dspex_actors as dx
    from dspex_actors.testing import arithmetic_dataset

    url, log_dir = sys.argv[1], sys.argv[2]
    def ex(n, seed):
        return [dx.Example(**r).with_inputs("question") for r in arithmetic_dataset(n, seed=seed)]
    def exact(example, prediction, trace=None):
        return str(prediction.answer).strip() == str(example.answer).strip()
    lm = dx.LM("openai/local-model", api_base=url, api_key="sk-child", num_retries=0, cache=False)
    with dx.ActorSystem(lm=lm):
        dx.MIPROv2(metric=exact, auto="light", num_threads=1, log_dir=log_dir).compile(
            dx.Predict("question -> answer"), trainset=ex(20, 1), valset=ex(30, 2)
        )
    """
)


def run_uncached(server: LocalLMServer, log_dir: Path | None) -> Module:
    lm = LM("openai/local-model", api_base=server.url, api_key=API_KEY, num_retries=0, cache=False)
    train, val, _ = data()
    with ActorSystem(lm=lm):
        return MIPROv2(metric=exact, auto="light", num_threads=1, log_dir=log_dir).compile(
            Predict("question -> answer"), trainset=train, valset=val
        )


def test_resume_after_a_kill_repeats_no_finished_trial(make_lm_server: Any, tmp_path: Path) -> None:
    reference_server = make_lm_server("instructed")
    reference = run_uncached(reference_server, None)
    phases = reference.budget["phases"]  # type: ignore[attr-defined]
    before_search = phases["bootstrap"]["lm_calls"] + phases["propose"]["lm_calls"]
    val_size = 30
    # Light mode with a 30-example valset: the default program, then trials 2..10 (one batch,
    # sampled independently by TPE), then trial 11 alone; each a full valset evaluation.
    assert phases["search"]["lm_calls"] == val_size * 11

    server = make_lm_server("instructed")
    hang_at = before_search + val_size * 10 + 5  # inside the last trial
    server.push_faults(*([None] * hang_at), Fault.hang(60))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    log_dir = tmp_path / "log"
    errors = tmp_path / "child.err"
    with errors.open("w") as err:
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, server.url, str(log_dir)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
        try:
            server.wait_for_stats(lambda s: s.faults.get("hang", 0) >= 1, timeout=120)
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL, errors.read_text()
    server.clear_faults()
    checkpoint = json.loads((log_dir / "miprov2.json").read_text())
    finished = checkpoint["state"]["trials"]
    assert [t["kind"] for t in finished] == ["default"] + ["trial"] * 9
    killed_at = server.stats(include_requests=False).requests_total

    resumed = run_uncached(server, log_dir)
    repeated = server.stats(include_requests=False).requests_total - killed_at
    # Only the trial in progress at the kill runs again: bootstrap, proposals and the ten
    # finished evaluations come from the checkpoint.
    assert repeated == val_size
    assert summary(resumed) == summary(reference)


def test_settings_are_checked(system_for: SystemFactory, tmp_path: Path) -> None:
    system_for("instructed")
    train, val, _ = data()
    with pytest.raises(OptimizerError, match="auto must be"):
        MIPROv2(metric=exact, auto="huge")  # type: ignore[arg-type]
    with pytest.raises(OptimizerError, match="give both num_candidates and num_trials"):
        MIPROv2(metric=exact, auto=None, num_candidates=4).compile(
            Predict("question -> answer"), trainset=train, valset=val
        )
    with pytest.raises(OptimizerError, match="sets num_candidates and num_trials itself"):
        MIPROv2(metric=exact, num_candidates=4).compile(
            Predict("question -> answer"), trainset=train, valset=val
        )
    with pytest.raises(OptimizerError, match="minibatch_size=35 exceeds the valset size 30"):
        MIPROv2(metric=exact, auto=None, num_candidates=3, num_trials=2).compile(
            Predict("question -> answer"), trainset=train, valset=val
        )
    log_dir = tmp_path / "log"
    MIPROv2(
        metric=exact, auto=None, num_candidates=3, num_trials=2, minibatch=False, log_dir=log_dir
    ).compile(Predict("question -> answer"), trainset=train, valset=val)
    with pytest.raises(OptimizerError, match="other settings"):
        MIPROv2(
            metric=exact,
            auto=None,
            num_candidates=3,
            num_trials=3,
            minibatch=False,
            log_dir=log_dir,
        ).compile(Predict("question -> answer"), trainset=train, valset=val)


def test_minibatch_mode_does_periodic_full_evaluations(system_for: SystemFactory) -> None:
    system_for("instructed", latency=0.001)
    train, val = examples(20, seed=4), examples(60, seed=5)
    compiled = MIPROv2(
        metric=exact, auto=None, num_candidates=4, num_trials=7, num_threads=16
    ).compile(Predict("question -> answer"), trainset=train, valset=val, minibatch_size=10)
    kinds = [t["kind"] for t in compiled.trial_logs.values()]
    # DSPy's schedule: a full evaluation after every 5 minibatch trials and at the end.
    assert kinds == ["default"] + ["trial"] * 5 + ["full"] + ["trial"] * 2 + ["full"]
    assert all(len(t["batch"]) == 10 for t in compiled.trial_logs.values() if t["kind"] == "trial")
    assert compiled.score == max(
        t["score"] for t in compiled.trial_logs.values() if t["kind"] in {"default", "full"}
    )


def test_a_missing_optuna_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "optuna", None)
    with pytest.raises(ConfigurationError, match=r"dspex-actors\[optimizers\]"):
        MIPROv2(metric=exact)


@pytest.mark.parametrize(
    ("auto", "predictors", "expected"),
    [
        # DSPy 3.4.1: n = 6/12/18 candidates, half of them instructions when demos are on,
        # trials = int(max(2 * 2 * predictors * log2(n), 1.5 * n)).
        ("light", 1, (10, 3, 6, 100)),
        ("medium", 1, (18, 6, 12, 300)),
        ("heavy", 1, (27, 9, 18, 1000)),
        ("heavy", 3, (50, 9, 18, 1000)),
    ],
)
def test_auto_settings_are_dspys(auto: str, predictors: int, expected: tuple[int, ...]) -> None:
    class Chain(Module):
        def __init__(self) -> None:
            super().__init__()
            self.steps = [Predict("question -> answer") for _ in range(predictors)]

    optimizer = MIPROv2(metric=exact, auto=auto)  # type: ignore[arg-type]
    assert optimizer._resolve(Chain(), None, zeroshot=False) == expected
