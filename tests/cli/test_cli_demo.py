"""``dspex-actors demo``: offline, honest about the simulation, better after compiling."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from cli_helpers import Run

from dspex_actors.predict import load_program
from dspex_actors.testing import LocalLMServer


def _score(label: str, text: str) -> float:
    match = re.search(rf"score {label}:\s+([\d.]+)%", text)
    assert match, f"no 'score {label}' line in:\n{text}"
    return float(match.group(1))


def test_demo_runs_offline_and_improves_the_score(cli: Callable[..., Run]) -> None:
    run = cli("demo", "--train", "8", "--dev", "20", "--latency", "0.01")
    assert run.code == 0, run.err
    assert "SIMULATED" in run.out
    before, after = _score("before", run.out), _score("after", run.out)
    assert after > before
    assert after == 100.0
    assert "(bootstrapped)" in run.out  # the chosen demos are listed
    assert re.search(r"cache: hits [1-9]\d*", run.out)  # the re-run is served by the cache
    assert "circuit breaker" in run.out and "closed" in run.out
    assert "requests" in run.out and "actor restarts: none" in run.out
    assert "Average Metric" in run.err  # the progress bar
    assert "Traceback" not in run.err


def test_demo_saves_a_program_that_loads(cli: Callable[..., Run], tmp_path: Path) -> None:
    target = tmp_path / "compiled.json"
    run = cli(
        "demo",
        "--train",
        "6",
        "--dev",
        "6",
        "--latency",
        "0",
        "--no-progress",
        "--save",
        str(target),
    )
    assert run.code == 0, run.err
    assert "Average Metric" not in run.err
    program = load_program(target)
    demos = [d for _, p in program.named_predictors() for d in p.demos]
    assert 1 <= len(demos) <= 4


def test_demo_rejects_a_bad_option_with_usage_exit_code(cli: Callable[..., Run]) -> None:
    run = cli("demo", "--dev", "0")
    assert run.code == 2
    assert "--dev" in run.err


def test_demo_save_to_missing_directory_fails_before_any_call(
    cli: Callable[..., Run], tmp_path: Path
) -> None:
    run = cli("demo", "--save", str(tmp_path / "no" / "such" / "dir" / "p.json"))
    assert run.code == 2
    assert "does not exist" in run.err
    assert "SIMULATED" not in run.out


def test_demo_with_model_talks_to_the_given_server(
    cli: Callable[..., Run], make_lm_server: Callable[..., LocalLMServer]
) -> None:
    server = make_lm_server("weak")
    run = cli(
        "demo",
        "--train",
        "6",
        "--dev",
        "10",
        "--no-progress",
        "--model",
        "openai/some-model",
        "--api-base",
        server.url,
    )
    assert run.code == 0, run.err
    assert "SIMULATED" not in run.out
    assert "openai/some-model" in run.out
    assert server.stats().requests_total > 10
    assert all(r.get("model") == "some-model" for r in server.stats().requests)
