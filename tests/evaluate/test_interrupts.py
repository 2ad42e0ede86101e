"""Ctrl-C (a real SIGINT to a child process) inside Evaluate and compile: a
KeyboardInterrupt subclass carrying the partial result, never swallowed by
``except Exception:``."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import dspex_actors as dx
from dspex_actors.testing import LocalLMServer, arithmetic_dataset

WAIT = 60.0
REPO_ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import sys
import dspex_actors as dx
from dspex_actors.testing import arithmetic_dataset

url, mode = sys.argv[1], sys.argv[2]
data = [dx.Example(**row).with_inputs("question") for row in arithmetic_dataset(300, seed=2)]
qa = dx.Predict("question -> answer")
lm = dx.LM("openai/local-model", api_base=url, api_key="k", cache=False)
with dx.ActorSystem(lm=lm):
    for attempt in range(3):  # a loop like a user's, with a broad except
        try:
            if mode == "compile":
                dx.BootstrapFewShot(metric=dx.answer_exact_match, max_bootstrapped_demos=300,
                                    num_threads=2).compile(qa, trainset=data)
            else:
                program = qa if mode == "tasks" else (lambda question: qa(question=question))
                dx.Evaluate(devset=data, metric=dx.answer_exact_match, num_threads=2)(program)
        except Exception as exc:
            print("SWALLOWED", type(exc).__name__, flush=True)
        except KeyboardInterrupt as exc:
            partial = exc.result
            size = len(partial.results) if mode != "compile" else len(partial)
            complete = getattr(partial, "complete", None)
            print("INTERRUPTED", type(exc).__name__, size, complete, flush=True)
            raise SystemExit(7)
print("FINISHED", flush=True)
"""


@pytest.mark.parametrize(
    ("mode", "error"),
    [
        ("tasks", "EvaluationInterrupted"),
        ("workers", "EvaluationInterrupted"),
        ("compile", "CompileInterrupted"),
    ],
)
def test_sigint_raises_a_keyboard_interrupt_with_the_partial_result(
    make_lm_server: Callable[..., LocalLMServer], tmp_path: Path, mode: str, error: str
) -> None:
    server = make_lm_server(latency=0.02)
    script = tmp_path / "interrupted.py"
    script.write_text(SCRIPT, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    child = subprocess.Popen(
        [sys.executable, str(script), server.url, mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        server.wait_for_stats(lambda s: s.requests_total >= 8, WAIT)
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=WAIT)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(WAIT)

    assert child.returncode == 7, err
    assert "SWALLOWED" not in out and "FINISHED" not in out
    kind, finished, complete = out.split("INTERRUPTED ")[1].split()
    assert kind == error
    assert 1 <= int(finished) < 300
    if mode != "compile":
        assert complete == "False"


def test_a_timed_out_acall_is_a_cancellation_and_the_loop_lives_on(
    make_lm_server: Callable[..., LocalLMServer],
) -> None:
    server = make_lm_server(latency=WAIT)  # nothing answers before the timeout
    data = [dx.Example(**r).with_inputs("question") for r in arithmetic_dataset(20, seed=1)]
    lm = dx.LM("openai/local-model", api_base=server.url, api_key="k", cache=False)
    evaluate = dx.Evaluate(devset=data, metric=dx.answer_exact_match, num_threads=4)

    async def main() -> str:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(evaluate.acall(dx.Predict("question -> answer")), 0.5)
        server.set_latency(0.0)
        return (await lm.acall("What is 2 + 2?"))[0]

    with dx.ActorSystem(lm=lm):
        assert asyncio.run(main()) == "4"
