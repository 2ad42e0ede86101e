"""Evaluate(Predict) on a local Ray cluster against local threads, at a fixed server latency.

The LM server runs in a subprocess (its own GIL). Prints, for N examples at C in flight
and latency L, wall / physical limit (limit = ceil(N / C) * L) and the driver's CPU per
example, for ``backend="local"`` (worker-actor threads in this process, and asyncio tasks,
which a natively async Predict gets locally) and ``backend="ray"``
(the examples fanned out to Ray worker processes, each with its own ActorSystem); plus
the one-off start-up of the Ray workers, excluded from the Ray figure (a warm-up run).
On one small machine Ray cannot beat local threads: it adds processes competing for the
same cores; the figure shows what the fan-out costs, not a speed-up.

    python benchmarks/ray_evaluate.py [--n 2000] [--latency 0.05] [--threads 64]
        [--workers N] [--num-cpus 2] [--address ray://...]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import ray

import dspex_actors as dx
from dspex_actors.testing import ServerProcess

_runs = iter(range(1, 1_000_000))


def examples(n: int) -> Iterator[dx.Example]:
    """``n`` distinct arithmetic questions (distinct across calls: no cache hits)."""
    run = next(_runs) * 10_000_000
    for i in range(n):
        yield dx.Example(question=f"What is {i} + {run + i}?", answer=str(run + 2 * i)).with_inputs(
            "question"
        )


def timed(
    n: int, threads: int, backend: dx.RayBackend | str, *, tasks: bool = True
) -> tuple[float, float]:
    """(wall s, driver CPU s) of one Evaluate(Predict) over ``n`` fresh examples.

    ``tasks=False`` wraps the Predict in a plain function: the local run then uses its
    worker-actor threads instead of asyncio tasks (a Ray worker always uses threads).
    """
    devset = list(examples(n))
    evaluate = dx.Evaluate(
        devset=devset, metric=dx.answer_exact_match, num_threads=threads, backend=backend
    )
    predict = dx.Predict("question -> answer")

    def plain(**inputs: Any) -> Any:
        return predict(**inputs)

    program: Callable[..., Any] = predict if tasks else plain
    cpu, start = time.process_time(), time.perf_counter()
    result = evaluate(program)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    if result.failures or result.score != 100.0:
        sys.exit(f"benchmark run failed: {result.summary()}")
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--threads", type=int, default=64)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--num-cpus", type=int, default=2, help="of a local cluster")
    parser.add_argument("--address", default=None, help="an existing Ray cluster")
    args = parser.parse_args()
    n, latency, threads = args.n, args.latency, args.threads
    limit = math.ceil(n / threads) * latency
    # The workers read the key where the driver's LM read it (it is never shipped).
    os.environ.setdefault("OPENAI_API_KEY", "sk-bench")
    if args.address:
        ray.init(address=args.address)
    else:
        ray.init(num_cpus=args.num_cpus, include_dashboard=False, log_to_driver=False)
    backend = dx.RayBackend(num_workers=args.workers)
    with ServerProcess(latency=latency) as server:
        lm = dx.LM("openai/local-model", api_base=server.url, num_retries=0)
        with dx.ActorSystem(lm=lm), backend:
            print(f"N={n} C={threads} L={latency * 1000:.0f} ms, limit {limit:.2f} s")
            for label, tasks in (("local threads", False), ("local tasks  ", True)):
                wall, cpu = timed(n, threads, "local", tasks=tasks)
                print(
                    f"{label}: {wall:.2f} s = {wall / limit:.2f}x the limit, "
                    f"{cpu / n * 1e6:.0f} us driver CPU/example"
                )
            start = time.perf_counter()
            timed(threads, threads, backend)
            startup = time.perf_counter() - start
            workers = len(backend.pool.pids) if backend.pool is not None else 0
            print(f"ray: {workers} workers started (and a warm-up run) in {startup:.1f} s")
            wall, cpu = timed(n, threads, backend)
            print(
                f"ray workers  : {wall:.2f} s = {wall / limit:.2f}x the limit, "
                f"{cpu / n * 1e6:.0f} us driver CPU/example"
            )
    ray.shutdown()


if __name__ == "__main__":
    main()
