"""The optimizers with backend="ray": the same demos and scores as a local compile."""

from __future__ import annotations

from typing import Any

import pytest

import dspex_actors as dx
from dspex_actors.testing import LocalLMServer
from tests.conftest import RAY_TEST_KEY
from tests.teleprompt.teleprompt_helpers import exact, examples, stubborn


def _demos(program: dx.Module) -> list[list[dict[str, Any]]]:
    return [[dict(d.items()) for d in p.demos] for _, p in program.named_predictors()]


def test_bootstrap_and_random_search_on_ray_match_local(
    ray_cluster: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", RAY_TEST_KEY)
    trainset = examples(16, seed=3)
    with LocalLMServer(stubborn()) as server:
        lm = dx.LM("openai/local-model", api_base=server.url)
        with dx.ActorSystem(lm=lm) as system:
            compiled = {}
            for backend in ("ray", "local"):
                optimizer = dx.BootstrapFewShot(
                    metric=exact,
                    max_bootstrapped_demos=3,
                    max_labeled_demos=4,
                    num_threads=4,
                    backend=backend,
                )
                compiled[backend] = optimizer.compile(
                    dx.Predict("question -> answer"), trainset=trainset
                )
                if backend == "ray":
                    assert system.stats()["clients"] == {}, "the driver made LM calls"
            search = {}
            for backend in ("ray", "local"):
                optimizer = dx.BootstrapFewShotWithRandomSearch(
                    metric=exact,
                    max_bootstrapped_demos=2,
                    max_labeled_demos=2,
                    num_candidate_programs=1,
                    num_threads=4,
                    backend=backend,
                )
                search[backend] = optimizer.compile(
                    dx.Predict("question -> answer"), trainset=trainset[:8], valset=trainset[8:]
                )

    augmented = [d for d in compiled["local"].named_predictors()[0][1].demos if d.get("augmented")]
    assert len(augmented) == 3
    assert _demos(compiled["ray"]) == _demos(compiled["local"])
    scores = {b: [(c["seed"], c["score"]) for c in p.candidate_programs] for b, p in search.items()}
    assert scores["ray"] == scores["local"]
    assert _demos(search["ray"]) == _demos(search["local"])
