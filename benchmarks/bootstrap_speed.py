"""BootstrapFewShot wall time: num_threads=16 against num_threads=1 (target speed-up >= 8).

A trainset of 200 arithmetic questions, the local LM server in a subprocess (its own
GIL) answering after 50 ms. ``max_bootstrapped_demos`` is the trainset size so both runs
bootstrap every example (with DSPy's default of 4 the sequential loop stops after a
handful). Each run has its own ActorSystem, so its cache starts empty. Prints both wall
times, the speed-up, the ideal speed-up ``ceil(N / 1) / ceil(N / 16)`` for this latency,
and whether both runs chose the same demos (they must).

    python benchmarks/bootstrap_speed.py [--n 200] [--latency 0.05] [--threads 16]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from typing import Any

from dspex_actors.evaluate import answer_exact_match
from dspex_actors.lm import LM
from dspex_actors.predict import Predict
from dspex_actors.primitives import Example, Module
from dspex_actors.system import ActorSystem
from dspex_actors.teleprompt import BootstrapFewShot
from dspex_actors.testing import ServerProcess, arithmetic_dataset


def bootstrap(url: str, trainset: list[Example], threads: int) -> tuple[float, Module]:
    """Wall seconds of one compile on ``threads`` threads, and the compiled program."""
    lm = LM("openai/local-model", api_base=url, api_key="bench", num_retries=0)
    optimizer = BootstrapFewShot(
        metric=answer_exact_match,
        max_bootstrapped_demos=len(trainset),
        max_labeled_demos=16,
        num_threads=threads,
    )
    with ActorSystem(lm=lm):
        start = time.perf_counter()
        compiled = optimizer.compile(Predict("question -> answer"), trainset=trainset)
        wall = time.perf_counter() - start
    return wall, compiled


def demos(program: Module) -> list[list[dict[str, Any]]]:
    """Every predictor's demos as plain dicts."""
    return [[d.toDict() for d in p.demos] for _, p in program.named_predictors()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="trainset size")
    parser.add_argument("--latency", type=float, default=0.05, help="server latency, seconds")
    parser.add_argument("--threads", type=int, default=16, help="threads of the parallel run")
    args = parser.parse_args()

    trainset = [Example(row).with_inputs("question") for row in arithmetic_dataset(args.n, seed=0)]
    with ServerProcess("weak", latency=args.latency) as server:
        bootstrap(server.url, trainset[:4], args.threads)  # warm-up: imports, connections
        sequential, seq_program = bootstrap(server.url, trainset, 1)
        parallel, par_program = bootstrap(server.url, trainset, args.threads)

    same = demos(seq_program) == demos(par_program)
    ideal = math.ceil(args.n / 1) / math.ceil(args.n / args.threads)
    speedup = sequential / parallel
    print(f"trainset {args.n}, latency {args.latency * 1000:.0f} ms")
    print(f"num_threads=1:  {sequential:.2f} s")
    print(f"num_threads={args.threads}: {parallel:.2f} s")
    print(f"speed-up: {speedup:.1f}x (ideal {ideal:.1f}x, target >= 8)")
    print(f"same demos: {same}")
    if not same:
        sys.exit("the parallel run chose different demos than the sequential one")


if __name__ == "__main__":
    main()
