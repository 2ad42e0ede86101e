"""``dspex-actors evaluate`` when things go wrong: exit codes, one line per LM problem,
tracebacks with ``-v``, and Ctrl-C / SIGTERM (real signals) keeping the finished results."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from cli_helpers import Run, read_jsonl, subprocess_env, write_jsonl

from dspex_actors.testing import Fault, LocalLMServer, arithmetic_dataset

WAIT = 60.0
DEAD_URL = "http://127.0.0.1:9/v1"


def _evaluate(program: Path, data: Path, api_base: str, *extra: str) -> list[str]:
    return [
        "evaluate",
        str(program),
        str(data),
        "--model",
        "openai/local-model",
        "--api-base",
        api_base,
        "--no-progress",
        "--num-retries",
        "0",
        *extra,
    ]


def test_every_example_failing_is_exit_1_and_cannot_connect_is_said_once(
    cli: Callable[..., Run], program_json: Path, dev_jsonl: Path
) -> None:
    run = cli(*_evaluate(program_json, dev_jsonl, DEAD_URL))
    assert run.code == 1
    text = run.out + run.err
    assert text.count("cannot connect to http://127.0.0.1:9/v1/chat/completions") == 1
    assert "every example failed (12)" in run.err
    assert "Traceback" not in text


def test_authentication_failure_is_said_once(
    cli: Callable[..., Run],
    make_lm_server: Callable[..., LocalLMServer],
    program_json: Path,
    dev_jsonl: Path,
) -> None:
    server = make_lm_server()
    server.push_faults(*[Fault.http(401)] * 12)
    run = cli(*_evaluate(program_json, dev_jsonl, server.url, "--threads", "2"))
    assert run.code == 1
    assert (run.out + run.err).count("authentication failed (401)") == 1
    assert "(12 examples failed); at http://" in run.err


def test_failures_above_max_errors_is_exit_1(
    cli: Callable[..., Run],
    make_lm_server: Callable[..., LocalLMServer],
    program_json: Path,
    dev_jsonl: Path,
) -> None:
    server = make_lm_server()
    server.push_faults(None, Fault.http(500), Fault.http(500), Fault.http(500))
    run = cli(
        *_evaluate(program_json, dev_jsonl, server.url, "--threads", "1", "--max-errors", "2")
    )
    assert run.code == 1
    assert "more than max_errors=2" in run.err
    # A few failures within --max-errors are a finished run: exit 0.
    server.push_faults(Fault.http(500), Fault.http(500))
    run = cli(
        *_evaluate(program_json, dev_jsonl, server.url, "--threads", "1", "--max-errors", "2"),
        "--no-cache",
    )
    assert run.code == 0, run.err
    assert "failed: 2" in run.out


def test_verbose_shows_tracebacks_of_failed_examples(
    cli: Callable[..., Run], program_json: Path, dev_jsonl: Path
) -> None:
    quiet = cli(*_evaluate(program_json, dev_jsonl, DEAD_URL))
    loud = cli(*_evaluate(program_json, dev_jsonl, DEAD_URL), "-v")
    assert "Traceback (most recent call last)" not in quiet.err
    assert "Traceback (most recent call last)" in loud.err
    assert "example #0:" in loud.err and "LMConnectionError" in loud.err


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_keeps_the_finished_results(
    make_lm_server: Callable[..., LocalLMServer],
    program_json: Path,
    tmp_path: Path,
    signum: signal.Signals,
    code: int,
) -> None:
    server = make_lm_server(latency=0.05)
    data = write_jsonl(tmp_path / "dev.jsonl", arithmetic_dataset(200, seed=3))
    out = tmp_path / "results.jsonl"
    argv = _evaluate(program_json, data, server.url, "--threads", "2", "--output", str(out))
    child = subprocess.Popen(
        [sys.executable, "-m", "dspex_actors.cli", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=subprocess_env(),
    )
    try:
        server.wait_for_stats(lambda s: s.requests_total >= 6, WAIT)
        child.send_signal(signum)
        stdout, stderr = child.communicate(timeout=WAIT)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(WAIT)

    assert child.returncode == code, stderr
    assert "(partial: " in stdout and "of 200)" in stdout
    rows = read_jsonl(out)
    assert 4 <= len(rows) < 200
    assert all(row["exact_match"] is True for row in rows)
    assert ("terminated (SIGTERM)" if signum == signal.SIGTERM else "interrupted") in stderr
