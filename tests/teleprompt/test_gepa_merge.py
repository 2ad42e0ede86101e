"""GEPA's merge step on a two-predictor program whose predictors specialise apart."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from specialists import Routed, SpecialistResponder
from teleprompt_helpers import API_KEY, SystemFactory, examples
from test_gepa import decided, feedback_metric, iteration_requests

from dspex_actors import GEPA
from dspex_actors._errors import ConfigurationError, OptimizerError
from dspex_actors.lm import LM
from dspex_actors.primitives import Module
from dspex_actors.system import ActorSystem
from dspex_actors.testing import Fault, LocalLMServer

VAL = 30


def data() -> tuple[list[Any], list[Any]]:
    return examples(20, seed=1), examples(VAL, seed=2)


def compile_routed(**options: Any) -> Module:
    train, val = data()
    # Seed 1: a run whose first two children specialise different predictors of the seed
    # (so a merge has a pair); with seed 0 the second child descends from the first.
    settings: dict[str, Any] = {"max_metric_calls": 300, "num_threads": 4, "seed": 1}
    settings.update(options)
    return GEPA(metric=feedback_metric, **settings).compile(Routed(), trainset=train, valset=val)


def merges(program: Module) -> list[dict[str, Any]]:
    iterations = program.detailed_results["iterations"]  # type: ignore[attr-defined]
    return [it for it in iterations if "merge" in it]


def test_merge_combines_two_parents_and_keeps_a_better_result(system_for: SystemFactory) -> None:
    _, server = system_for(SpecialistResponder(), cache=False)
    compiled = compile_routed()
    details = compiled.detailed_results  # type: ignore[attr-defined]
    candidates, averages = details["candidates"], details["val_aggregate_scores"]
    tried = merges(compiled)
    assert tried
    for record in tried:
        first, second, ancestor = record["merge"]
        merged = record["candidate"]
        # Every instruction is one parent's; each parent gave one the other lacks.
        assert all(merged[n] in (candidates[first][n], candidates[second][n]) for n in merged)
        assert any(merged[n] == candidates[first][n] != candidates[second][n] for n in merged)
        assert any(merged[n] == candidates[second][n] != candidates[first][n] for n in merged)
        assert averages[ancestor] <= min(averages[first], averages[second])
        assert len(record["subsample"]) == len(record["child_scores"]) == 5
        kept = sum(record["child_scores"]) >= max(record["parent_sums"])
        assert str(record["outcome"]).startswith("accepted") == kept
    accepted = [r for r in tried if str(r["outcome"]).startswith("accepted")]
    assert accepted
    for record in accepted:
        index = int(record["outcome"].rsplit(" ", 1)[1])
        first, second, _ = record["merge"]
        assert details["parents"][index] == [first, second]
        assert candidates[index] == record["candidate"]
        assert averages[index] > max(averages[first], averages[second])
    assert len(accepted) == details["merge_invocations"] <= 5
    # The subsample runs are real LM calls (cache off), 5 per merge tried.
    assert compiled.budget["phases"]["merge"]["lm_calls"] == 5 * len(tried)  # type: ignore[attr-defined]
    bodies = [r["messages"][0]["content"] for r in server.stats().requests]
    merged_add = accepted[0]["candidate"]["add"]
    assert any(merged_add in body for body in bodies)
    assert details["val_aggregate_scores"][details["best_idx"]] == 1.0


def test_max_merge_invocations_bounds_accepted_merges(system_for: SystemFactory) -> None:
    system_for(SpecialistResponder())
    limited = compile_routed(max_metric_calls=600, max_merge_invocations=1)
    tried = merges(limited)
    assert tried
    assert limited.detailed_results["merge_invocations"] == 1  # type: ignore[attr-defined]
    assert sum(str(r["outcome"]).startswith("accepted") for r in tried) == 1
    none = compile_routed(max_merge_invocations=0)
    assert merges(none) == [] and none.detailed_results["merge_invocations"] == 0  # type: ignore[attr-defined]


def test_merges_are_the_same_with_1_and_16_threads(system_for: SystemFactory) -> None:
    results = []
    for threads in (1, 16):
        running, _ = system_for(SpecialistResponder(), latency=0.001)
        with running:
            compiled = compile_routed(num_threads=threads)
        assert merges(compiled)
        results.append(decided(compiled))
    assert results[0] == results[1]


def test_use_merge_false_is_reflection_only(system_for: SystemFactory) -> None:
    system_for(SpecialistResponder())
    merged = decided(compile_routed())
    plain_program = compile_routed(use_merge=False)
    plain = decided(plain_program)
    assert merges(plain_program) == []
    assert all(p is None or isinstance(p, int) for p in plain_program.detailed_results["parents"])  # type: ignore[attr-defined]
    assert "merge_invocations" not in plain_program.detailed_results  # type: ignore[attr-defined]
    assert "merge" not in plain_program.budget["phases"]  # type: ignore[attr-defined]
    # Up to the first merge both runs take the same reflective steps.
    first = next(i for i, it in enumerate(merged["iterations"]) if "merge" in it)
    assert first >= 2
    assert plain["iterations"][:first] == merged["iterations"][:first]
    assert plain["iterations"][first:] != merged["iterations"][first + 1 :]


def run_uncached(server: LocalLMServer, log_dir: Path | None) -> Module:
    lm = LM("openai/local-model", api_base=server.url, api_key=API_KEY, num_retries=0, cache=False)
    with ActorSystem(lm=lm):
        return compile_routed(log_dir=log_dir, max_errors=0, max_metric_calls=250)


def test_resume_repeats_no_finished_merge_evaluation(make_lm_server: Any, tmp_path: Path) -> None:
    reference = run_uncached(make_lm_server(SpecialistResponder()), None)
    iterations = reference.detailed_results["iterations"]  # type: ignore[attr-defined]
    costs = [iteration_requests(it, VAL) for it in iterations]
    at = next(
        i
        for i, it in enumerate(iterations)
        if "merge" in it and str(it["outcome"]).startswith("accepted")
    )
    # Crash inside the accepted merge's valset evaluation, after its subsample.
    finished_before_crash = VAL + sum(costs[:at]) + len(iterations[at]["subsample"])

    server = make_lm_server(SpecialistResponder())
    server.push_faults(*([None] * (finished_before_crash + 2)), *([Fault.http(500)] * 8))
    log_dir = tmp_path / "log"
    with pytest.raises(OptimizerError):
        run_uncached(server, log_dir)
    saved = json.loads((log_dir / "gepa.json").read_text())["state"]
    assert len(saved["iterations"]) == at + 1
    assert saved["iterations"][-1]["outcome"] == "evaluated on the subsample"
    server.clear_faults()
    crashed_at = server.stats(include_requests=False).requests_total

    resumed = run_uncached(server, log_dir)
    repeated = server.stats(include_requests=False).requests_total - crashed_at
    assert repeated == VAL + sum(costs[at + 1 :])
    assert decided(resumed) == decided(reference)


@pytest.mark.parametrize("bad", [-1, 1.5, "5", True, None])
def test_max_merge_invocations_must_be_a_non_negative_int(bad: Any) -> None:
    with pytest.raises(ConfigurationError, match="max_merge_invocations"):
        GEPA(metric=feedback_metric, auto="light", max_merge_invocations=bad)


def test_use_merge_must_be_a_bool() -> None:
    with pytest.raises(ConfigurationError, match="use_merge"):
        GEPA(metric=feedback_metric, auto="light", use_merge="yes")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("child_scores", "kept"), [([1.0, 1.0, 0.0, 0.0, 0.0], True), ([1.0] + [0.0] * 4, False)]
)
def test_a_merge_as_good_as_the_better_parent_is_kept(
    system_for: SystemFactory, tmp_path: Path, child_scores: list[float], kept: bool
) -> None:
    # A finished run's checkpoint with a merge left between subsample and decision: the
    # re-run decides it (a tie with the better parent's subsample sum is kept) and stops.
    system_for(SpecialistResponder())
    finished = compile_routed(log_dir=tmp_path)
    path = tmp_path / "gepa.json"
    saved = json.loads(path.read_text())
    state = saved["state"]
    pool = len(state["candidates"])
    candidate = {"add": "Focus on sums.", "mul": "Focus on products."}
    state["iterations"].append(
        {
            "merge": [1, 2, 0],
            "candidate": candidate,
            "subsample": [0, 1, 2, 3, 4],
            "parent_sums": [2.0, 1.0],
            "child_scores": child_scores,
            "outcome": "evaluated on the subsample",
        }
    )
    state["merge"]["due"] = 1
    path.write_text(json.dumps(saved))
    resumed = compile_routed(log_dir=tmp_path)
    details = resumed.detailed_results  # type: ignore[attr-defined]
    assert details["iterations"][:-1] == finished.detailed_results["iterations"]  # type: ignore[attr-defined]
    if kept:
        assert details["iterations"][-1]["outcome"] == f"accepted as candidate {pool}"
        assert details["candidates"][pool] == candidate and details["parents"][pool] == [1, 2]
        assert details["merge_invocations"] == state["merge"]["accepted"] + 1
    else:
        assert details["iterations"][-1]["outcome"] == "rejected"
        assert len(details["candidates"]) == pool
