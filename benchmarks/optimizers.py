"""Instruction optimizers: wall time and LM calls, this library beside DSPy 3.4.1 in the same run.

The local server runs in a subprocess (``ServerProcess("instructed")``: right only when
the instructions hold the phrase, proposals and reflections from a fixed pool) with a
fixed latency (default 20 ms). On the same arithmetic trainset and valset, each
optimizer compiles ``Predict("question -> answer")``:

- MIPROv2: ``auto="light"``, ``num_threads=T``;
- GEPA: ``auto="light"``, the LM as ``reflection_lm``, a feedback metric, ``num_threads=T``;
- SIMBA: DSPy's defaults (``bsize=32``, ``max_steps=8``, ``num_candidates=6``), ``num_threads=T``.

Ours runs in this process with ``dx.LM(..., cache=True)`` in a fresh ``ActorSystem`` per
run (memory cache only); DSPy runs in a subprocess of ``--dspy-python`` (never a
dependency of this project) with its disk cache off and a fresh memory cache. LM calls
are the server's request count over the run; the score is the compiled program's on a
held-out test set (ours scored by our Evaluate for both, so the numbers compare). The
last column is DSPy's wall over ours (the target is >= 2 at 20 ms and 16 threads).

    python benchmarks/optimizers.py [--latency 0.02] [--threads 16] [--optimizers mipro,gepa,simba]
                                    [--dspy-python /tmp/dspy-venv/bin/python] [--no-dspy]
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import dspex_actors as dx
from dspex_actors.testing import INSTRUCTED_PHRASE, ServerProcess, arithmetic_dataset

TRAIN, VAL, TEST = 40, 40, 100

DSPY_SCRIPT = textwrap.dedent(
    """
    import json, logging, sys, time
    import dspy
    logging.disable(logging.WARNING)
    job = json.loads(sys.stdin.read())
    dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=True)
    lm = dspy.LM("openai/local-model", api_base=job["url"], api_key="x", num_retries=0)
    dspy.configure(lm=lm)
    def rows(key):
        return [dspy.Example(**r).with_inputs("question") for r in job[key]]
    train, val = rows("train"), rows("val")
    def exact(example, prediction, trace=None):
        return float(str(prediction.answer).strip() == example.answer)
    def feedback(gold, pred, trace=None, pred_name=None, pred_trace=None):
        right = str(pred.answer).strip() == gold.answer
        text = "Correct." if right else f"Expected {gold.answer}, got {pred.answer}."
        return dspy.Prediction(score=float(right), feedback=text)
    name, threads = job["optimizer"], job["threads"]
    student = dspy.Predict("question -> answer")
    started = time.perf_counter()
    if name == "mipro":
        compiled = dspy.MIPROv2(metric=exact, auto="light", num_threads=threads).compile(
            student, trainset=train, valset=val)
    elif name == "gepa":
        compiled = dspy.GEPA(metric=feedback, auto="light", reflection_lm=lm,
                             num_threads=threads).compile(student, trainset=train, valset=val)
    else:
        compiled = dspy.SIMBA(metric=exact, num_threads=threads).compile(student, trainset=train)
    wall = time.perf_counter() - started
    demos = [{k: v for k, v in dict(d).items()} for d in compiled.predictors()[0].demos]
    print(json.dumps({"wall": wall, "instructions": compiled.predictors()[0].signature.instructions,
                      "demos": demos}, default=str))
    """
)


def examples(n: int, seed: int) -> list[dx.Example]:
    return [dx.Example(**row).with_inputs("question") for row in arithmetic_dataset(n, seed=seed)]


def exact(example: dx.Example, prediction: Any, trace: Any = None) -> float:
    return float(str(prediction.answer).strip() == example.answer)


def feedback(
    gold: Any, pred: Any, trace: Any = None, pred_name: Any = None, pred_trace: Any = None
) -> Any:
    right = str(pred.answer).strip() == gold.answer
    text = "Correct." if right else f"Expected {gold.answer}, got {pred.answer}."
    return dx.Prediction(score=float(right), feedback=text)


def ours(name: str, url: str, threads: int) -> tuple[float, dx.Module]:
    lm = dx.LM("openai/local-model", api_base=url, api_key="x", num_retries=0, timeout=60)
    train, val = examples(TRAIN, 1), examples(VAL, 2)
    student = dx.Predict("question -> answer")
    with dx.ActorSystem(lm=lm):
        started = time.perf_counter()
        if name == "mipro":
            optimizer: Any = dx.MIPROv2(metric=exact, auto="light", num_threads=threads)
            compiled = optimizer.compile(student, trainset=train, valset=val)
        elif name == "gepa":
            optimizer = dx.GEPA(
                metric=feedback, auto="light", reflection_lm=lm, num_threads=threads
            )
            compiled = optimizer.compile(student, trainset=train, valset=val)
        else:
            compiled = dx.SIMBA(metric=exact, num_threads=threads).compile(student, trainset=train)
        return time.perf_counter() - started, compiled


def dspy(name: str, url: str, threads: int, python: str, timeout: float) -> dict[str, Any]:
    job = {
        "url": url,
        "optimizer": name,
        "threads": threads,
        "train": arithmetic_dataset(TRAIN, seed=1),
        "val": arithmetic_dataset(VAL, seed=2),
    }
    done = subprocess.run(
        [python, "-c", DSPY_SCRIPT],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"DSPy {name} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_score(url: str, instructions: str, demos: list[dict[str, Any]]) -> float:
    lm = dx.LM("openai/local-model", api_base=url, api_key="x", num_retries=0)
    program = dx.Predict(dx.Signature("question -> answer", instructions))
    program.demos = [dx.Example(d) for d in demos]
    with dx.ActorSystem(lm=lm):
        return dx.Evaluate(devset=examples(TEST, 3), metric=exact, num_threads=16)(program).score


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.02)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--optimizers", default="mipro,gepa,simba")
    parser.add_argument("--dspy-python", default="/tmp/dspy-venv/bin/python")
    parser.add_argument("--no-dspy", action="store_true")
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    names = [n.strip() for n in args.optimizers.split(",") if n.strip()]
    with_dspy = not args.no_dspy and Path(args.dspy_python).exists()

    print(
        f"server latency {args.latency * 1000:.0f} ms, {args.threads} threads, "
        f"train {TRAIN}, val {VAL}, test {TEST}; phrase {INSTRUCTED_PHRASE!r}"
    )
    header = f"{'optimizer':<9} {'who':<6} {'wall s':>8} {'LM calls':>9} {'test %':>7} phrase"
    print(header)
    with ServerProcess("instructed", latency=args.latency) as server:
        for name in names:
            before = server.stats(include_requests=False).requests_total
            wall, compiled = ours(name, server.url, args.threads)
            calls = server.stats(include_requests=False).requests_total - before
            instructions = compiled.predictors()[0].signature.instructions
            demos = [d.toDict() for d in compiled.predictors()[0].demos]
            score = test_score(server.url, instructions, demos)
            has = INSTRUCTED_PHRASE in instructions.lower()
            print(f"{name:<9} {'ours':<6} {wall:>8.2f} {calls:>9} {score:>7.1f} {has}")
            phases = compiled.budget["phases"]  # type: ignore[attr-defined]
            print(
                " " * 10
                + "ours per phase: "
                + ", ".join(
                    f"{phase} {cost['wall_seconds']:.2f} s / {cost['lm_calls']} calls"
                    for phase, cost in phases.items()
                )
            )
            if not with_dspy:
                continue
            before = server.stats(include_requests=False).requests_total
            theirs = dspy(name, server.url, args.threads, args.dspy_python, args.timeout)
            their_calls = server.stats(include_requests=False).requests_total - before
            their_score = test_score(server.url, theirs["instructions"], theirs["demos"])
            their_has = INSTRUCTED_PHRASE in theirs["instructions"].lower()
            print(
                f"{name:<9} {'DSPy':<6} {theirs['wall']:>8.2f} {their_calls:>9} "
                f"{their_score:>7.1f} {their_has}"
            )
            print(
                f"{name:<9} DSPy wall / ours: {theirs['wall'] / wall:.2f}x, "
                f"LM calls {their_calls / max(calls, 1):.2f}x"
            )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
