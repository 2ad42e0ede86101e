"""``dspex-actors evaluate`` / ``compile`` / ``serve-local-lm``: happy paths and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from cli_helpers import Run, read_jsonl, subprocess_env, write_jsonl

from dspex_actors.predict import load_program
from dspex_actors.testing import Fault, LocalLMServer, arithmetic_dataset, secret_fingerprint

SECRET = "sk-test-very-secret-4242"


def _lm_args(server: LocalLMServer) -> list[str]:
    return ["--model", "openai/local-model", "--api-base", server.url, "--no-progress"]


# -- evaluate ---------------------------------------------------------------------------


def test_evaluate_writes_one_result_per_example(
    cli: Callable[..., Run],
    lm_server: LocalLMServer,
    program_json: Path,
    dev_jsonl: Path,
    tmp_path: Path,
) -> None:
    out = tmp_path / "results.jsonl"
    run = cli(
        "evaluate",
        str(program_json),
        str(dev_jsonl),
        *_lm_args(lm_server),
        "--threads",
        "4",
        "--output",
        str(out),
    )
    assert run.code == 0, run.err
    assert "score: 100.0" in run.out
    rows = read_jsonl(out)
    assert [row["line"] for row in rows] == list(range(1, 13))
    assert all(row["exact_match"] is True and row["error"] is None for row in rows)


def test_evaluate_bad_line_names_the_line_number(
    cli: Callable[..., Run], lm_server: LocalLMServer, program_json: Path, tmp_path: Path
) -> None:
    rows: list[object] = list(arithmetic_dataset(5, seed=1))
    rows[2] = '{"question": "What is 1 + 1?",'  # line 3: broken JSON
    rows[4] = {"answer": "3"}  # line 5: no input field
    data = write_jsonl(tmp_path / "bad.jsonl", rows)
    run = cli("evaluate", str(program_json), str(data), *_lm_args(lm_server))
    assert run.code == 2
    assert "line 3: not valid JSON" in run.err
    assert "line 5: missing field(s) question" in run.err
    assert "--skip-bad" in run.err
    assert "Traceback" not in run.err
    assert lm_server.stats().requests_total == 0  # nothing was sent


def test_evaluate_skip_bad_records_and_skips_bad_lines(
    cli: Callable[..., Run], lm_server: LocalLMServer, program_json: Path, tmp_path: Path
) -> None:
    rows: list[object] = list(arithmetic_dataset(6, seed=2))
    rows[1] = "[1, 2]"
    rows.insert(3, "")  # blank lines are not data
    data = write_jsonl(tmp_path / "mixed.jsonl", rows)
    out = tmp_path / "results.jsonl"
    run = cli(
        "evaluate",
        str(program_json),
        str(data),
        *_lm_args(lm_server),
        "--skip-bad",
        "--output",
        str(out),
    )
    assert run.code == 0, run.err
    assert "skipped" in run.err and "line 2" in run.err
    assert "examples: 5" in run.out
    results = read_jsonl(out)
    assert [row["line"] for row in results] == [1, 2, 3, 5, 6, 7]
    skipped = [row for row in results if row.get("skipped")]
    assert len(skipped) == 1 and skipped[0]["line"] == 2
    assert "expected a JSON object" in skipped[0]["error"]


@pytest.mark.parametrize("which", ["program", "data"])
def test_evaluate_missing_file_is_a_usage_error(
    cli: Callable[..., Run], program_json: Path, dev_jsonl: Path, tmp_path: Path, which: str
) -> None:
    missing = tmp_path / "missing.json"
    program = missing if which == "program" else program_json
    data = missing if which == "data" else dev_jsonl
    run = cli(
        "evaluate",
        str(program),
        str(data),
        "--model",
        "openai/x",
        "--api-base",
        "http://127.0.0.1:9/v1",
    )
    assert run.code == 2
    assert f"{missing} does not exist" in run.err


def test_evaluate_unknown_metric_is_a_usage_error(
    cli: Callable[..., Run], program_json: Path, dev_jsonl: Path
) -> None:
    run = cli(
        "evaluate",
        str(program_json),
        str(dev_jsonl),
        "--model",
        "openai/x",
        "--api-base",
        "http://127.0.0.1:9/v1",
        "--metric",
        "accuracy",
    )
    assert run.code == 2
    assert "unknown metric 'accuracy'" in run.err and "exact_match" in run.err


def test_evaluate_without_api_key_says_what_to_set(
    cli: Callable[..., Run],
    program_json: Path,
    dev_jsonl: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    run = cli("evaluate", str(program_json), str(dev_jsonl), "--model", "openai/gpt-4o-mini")
    assert run.code == 2
    assert "OPENAI_API_KEY" in run.err and "--api-base" in run.err


def test_unreachable_lm_is_a_runtime_failure(
    cli: Callable[..., Run], program_json: Path, dev_jsonl: Path
) -> None:
    run = cli(
        "evaluate",
        str(program_json),
        str(dev_jsonl),
        "--model",
        "openai/x",
        "--api-base",
        "http://127.0.0.1:9/v1",
        "--num-retries",
        "0",
        "--max-errors",
        "1",
        "--no-progress",
    )
    assert run.code == 1
    assert "LMConnectionError" in run.out
    assert "Traceback" not in run.err


def test_api_key_is_never_printed(
    cli: Callable[..., Run],
    make_lm_server: Callable[..., LocalLMServer],
    program_json: Path,
    dev_jsonl: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MY_LM_KEY", SECRET)
    server = make_lm_server()
    server.push_faults(Fault.http(401), Fault.http(401))
    run = cli(
        "evaluate",
        str(program_json),
        str(dev_jsonl),
        *_lm_args(server),
        "--api-key-env",
        "MY_LM_KEY",
        "--num-retries",
        "0",
        "--threads",
        "1",
    )
    assert run.code == 0, run.err
    assert "failed: 2" in run.out  # the 401s are reported, per example
    assert SECRET not in run.out + run.err
    headers = server.stats().headers
    sent = secret_fingerprint(f"Bearer {SECRET}")
    assert headers and all(h.get("authorization") == sent for h in headers)


def test_fail_under_turns_a_low_score_into_exit_1(
    cli: Callable[..., Run],
    make_lm_server: Callable[..., LocalLMServer],
    program_json: Path,
    dev_jsonl: Path,
) -> None:
    server = make_lm_server("weak")
    run = cli(
        "evaluate", str(program_json), str(dev_jsonl), *_lm_args(server), "--fail-under", "99"
    )
    assert run.code == 1
    assert "below --fail-under" in run.err


# -- compile ----------------------------------------------------------------------------


def test_compile_then_evaluate(
    cli: Callable[..., Run],
    make_lm_server: Callable[..., LocalLMServer],
    dev_jsonl: Path,
    tmp_path: Path,
) -> None:
    server = make_lm_server("weak")
    train = write_jsonl(tmp_path / "train.jsonl", arithmetic_dataset(8, seed=9))
    program = tmp_path / "qa.json"
    run = cli(
        "compile",
        "--signature",
        "question -> answer",
        "--trainset",
        str(train),
        "--output",
        str(program),
        "--max-labeled-demos",
        "0",
        *_lm_args(server),
    )
    assert run.code == 0, run.err
    assert "(bootstrapped)" in run.out
    demos = load_program(program).named_predictors()[0][1].demos
    assert 1 <= len(demos) <= 4

    run = cli("evaluate", str(program), str(dev_jsonl), *_lm_args(server))
    assert run.code == 0, run.err
    assert "score: 100.0" in run.out  # the weak model is right once it has demos


def test_compile_typed_cot_program_round_trips(
    cli: Callable[..., Run], lm_server: LocalLMServer, tmp_path: Path
) -> None:
    train = write_jsonl(tmp_path / "train.jsonl", arithmetic_dataset(4, seed=9))
    program = tmp_path / "cot.json"
    run = cli(
        "compile",
        "--cot",
        "--signature",
        "question -> answer: int",
        "--trainset",
        str(train),
        "--output",
        str(program),
        *_lm_args(lm_server),
    )
    assert run.code == 0, run.err
    loaded = load_program(program)
    assert type(loaded).__name__ == "ChainOfThought"
    assert json.loads(program.read_text())["predict"]["signature"]["string"].endswith("answer: int")


@pytest.mark.parametrize("signature", ["question answer", "question -> ", "q -> a: nosuchtype"])
def test_compile_bad_signature_is_a_usage_error(
    cli: Callable[..., Run], dev_jsonl: Path, tmp_path: Path, signature: str
) -> None:
    run = cli(
        "compile",
        "--signature",
        signature,
        "--trainset",
        str(dev_jsonl),
        "--output",
        str(tmp_path / "p.json"),
        "--model",
        "openai/x",
        "--api-base",
        "http://127.0.0.1:9/v1",
    )
    assert run.code == 2
    assert "signature" in run.err.lower()
    assert "Traceback" not in run.err
    assert not (tmp_path / "p.json").exists()


def test_compile_requires_its_options(cli: Callable[..., Run]) -> None:
    run = cli("compile", "--signature", "question -> answer")
    assert run.code == 2
    assert "--trainset" in run.err


# -- top level --------------------------------------------------------------------------


def test_version_help_and_no_command(cli: Callable[..., Run]) -> None:
    version = cli("--version")
    assert version.code == 0 and "dspex-actors" in version.out
    bare = cli()
    assert bare.code == 2 and "demo" in bare.err
    unknown = cli("frobnicate")
    assert unknown.code == 2 and "invalid choice" in unknown.err


def test_serve_local_lm_serves_until_terminated(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dspex_actors.cli",
            "serve-local-lm",
            "--port",
            "0",
            "--responder",
            "weak",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=subprocess_env(),
        cwd=tmp_path,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # the server prints its URL first
        url = line.strip().rsplit(" ", 1)[-1]
        assert url.startswith("http://127.0.0.1:"), line
        with urllib.request.urlopen(f"{url}/models", timeout=30) as response:
            assert response.status == 200
    finally:
        process.terminate()
        process.communicate(timeout=30)
    assert process.returncode == 0


@pytest.mark.parametrize("command", ["demo", "evaluate", "compile", "serve-local-lm"])
def test_every_command_has_help(cli: Callable[..., Run], command: str) -> None:
    run = cli(command, "--help")
    assert run.code == 0
    assert f"dspex-actors {command}" in run.out
