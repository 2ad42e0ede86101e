"""BootstrapFewShotWithRandomSearch: DSPy's candidates, concurrent scoring, best kept."""

from __future__ import annotations

import random

import pytest
from teleprompt_helpers import Garbage, SystemFactory, demo_dicts, exact, examples

from dspex_actors._errors import OptimizerError
from dspex_actors.evaluate import Evaluate, EvaluationResult
from dspex_actors.predict import Predict
from dspex_actors.teleprompt import BootstrapFewShotWithRandomSearch


def test_candidates_scored_like_evaluate_and_the_best_returned(system_for: SystemFactory) -> None:
    _, server = system_for("weak", latency=0.01)
    trainset, valset = examples(8, seed=20), examples(16, seed=21)
    search = BootstrapFewShotWithRandomSearch(
        metric=exact, num_candidate_programs=2, max_bootstrapped_demos=3, num_threads=8
    )
    best = search.compile(Predict("question -> answer"), trainset=trainset, valset=valset)

    candidates = best.candidate_programs
    assert sorted(c["seed"] for c in candidates) == [-3, -2, -1, 0, 1]
    scores = [c["score"] for c in candidates]
    assert scores == sorted(scores, reverse=True)
    by_seed = {c["seed"]: c for c in candidates}
    # Any demo fixes the weak model; zero-shot is worse.
    assert by_seed[-3]["score"] < 100.0
    assert all(by_seed[s]["score"] == 100.0 for s in (-2, -1, 0, 1))
    # Ties go to the earliest seed, as in DSPy.
    assert best is by_seed[-2]["program"]

    evaluate = Evaluate(devset=valset, metric=exact)
    for candidate in candidates:
        assert isinstance(candidate["result"], EvaluationResult)
        assert candidate["score"] == evaluate(candidate["program"]).score
        assert len(candidate["subscores"]) == len(valset)
    # Candidates were scored concurrently.
    assert server.stats(include_requests=False).max_in_flight > 1

    # Seeded candidates: DSPy's shuffle and demo count.
    for seed in (0, 1):
        size = random.Random(seed).randint(1, 3)
        shuffled = list(trainset)
        random.Random(seed).shuffle(shuffled)
        demos = demo_dicts(by_seed[seed]["program"])["self"]
        augmented = [d["question"] for d in demos if d.get("augmented")]
        assert augmented == [x.question for x in shuffled[:size]]
    labeled = by_seed[-2]["program"].demos
    assert labeled == random.Random(0).sample(trainset, 8)
    assert by_seed[-3]["program"].demos == []


def test_stop_at_score_and_restrict(system_for: SystemFactory) -> None:
    system_for("weak")
    trainset, valset = examples(6, seed=22), examples(10, seed=23)
    stopped = BootstrapFewShotWithRandomSearch(
        metric=exact, num_candidate_programs=4, stop_at_score=100.0
    ).compile(Predict("question -> answer"), trainset=trainset, valset=valset)
    assert [c["seed"] for c in stopped.candidate_programs] == [-2, -3]

    restricted = BootstrapFewShotWithRandomSearch(metric=exact, num_candidate_programs=4).compile(
        Predict("question -> answer"), trainset=trainset, valset=valset, restrict=[-3, 2]
    )
    assert sorted(c["seed"] for c in restricted.candidate_programs) == [-3, 2]

    with pytest.raises(OptimizerError, match="leaves no candidate seed"):
        BootstrapFewShotWithRandomSearch(metric=exact).compile(
            Predict("question -> answer"), trainset=trainset, restrict=[99]
        )


def test_valset_defaults_to_the_trainset(system_for: SystemFactory) -> None:
    system_for("weak")
    trainset = examples(6, seed=24)
    best = BootstrapFewShotWithRandomSearch(metric=exact, num_candidate_programs=0).compile(
        Predict("question -> answer"), trainset=trainset
    )
    assert all(len(c["subscores"]) == len(trainset) for c in best.candidate_programs)


def test_too_many_failed_valset_examples_raise_with_the_scored_candidates(
    system_for: SystemFactory,
) -> None:
    trainset, valset = examples(4, seed=25), examples(6, seed=26)
    system_for(Garbage({x.question for x in valset[:3]}))
    search = BootstrapFewShotWithRandomSearch(
        metric=exact, num_candidate_programs=0, max_errors=2, max_labeled_demos=2
    )
    with pytest.raises(OptimizerError, match=r"3 of 6 valset examples failed.*seed -3") as info:
        search.compile(Predict("question -> answer"), trainset=trainset, valset=valset)
    assert info.value.partial == []
