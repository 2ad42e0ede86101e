"""The asyncio API under load: 500 concurrent ``acall``s, and ``Evaluate.acall``.

Against the local server in a subprocess (cache off):

- 500 concurrent ``await predict.acall(...)`` on one loop at 200 ms latency: wall time
  (target <= 0.6 s), the worst lateness of a heartbeat coroutine sleeping 10 ms on the
  same loop (target <= 100 ms: formatting, HTTP and parsing never stall the caller's
  loop), and the threads the process gained (target <= 16); also the longest full
  (generation 2) garbage collection meanwhile: it stops every thread, the loop included,
  for as long as the process's heap takes to walk (70-130 ms for this process's ~70k
  objects here). The rows are printed twice: with the interpreter's default collector,
  and after ``gc.freeze()`` once warmed up (what a latency-sensitive service does after
  start-up: the objects of its imports and set-up are then never walked again);
- ``await Evaluate(200 rows, num_threads=64).acall(Predict)`` at 50 ms: wall over the
  limit ceil(200 / 64) x 50 ms (target <= 1.4), after a warm-up that opens the connections.

    python benchmarks/async_calls.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import math
import threading
import time
from collections.abc import Awaitable
from typing import Any, TypeVar

import dspex_actors as dx
from dspex_actors.testing import ServerProcess, arithmetic_dataset

T = TypeVar("T")


class FullCollections:
    """The longest generation-2 garbage collection while it is installed, in seconds."""

    def __init__(self) -> None:
        self.longest = 0.0
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        elif info["generation"] == 2:
            self.longest = max(self.longest, time.perf_counter() - self._started)

    def __enter__(self) -> FullCollections:
        gc.callbacks.append(self)
        return self

    def __exit__(self, *exc_info: object) -> None:
        gc.callbacks.remove(self)


async def with_heartbeat(work: Awaitable[T]) -> tuple[T, float]:
    """``await work`` while a 10 ms heartbeat measures how late the loop wakes it."""
    loop = asyncio.get_running_loop()
    late = 0.0
    done = asyncio.Event()

    async def beat() -> None:
        nonlocal late
        while not done.is_set():
            before = loop.time()
            await asyncio.sleep(0.01)
            late = max(late, loop.time() - before - 0.01)

    heart = asyncio.ensure_future(beat())
    try:
        return await work, late
    finally:
        done.set()
        await heart


def concurrent_acalls(
    url: str, calls: int, round_: int, *, freeze: bool
) -> tuple[float, float, int, float]:
    """(wall, worst heartbeat lateness, threads gained, longest full GC) of ``calls``
    concurrent acalls; with ``freeze``, ``gc.freeze()`` after the warm-up."""
    lm = dx.LM("openai/local-model", api_base=url, cache=False, max_concurrency=512)
    qa = dx.Predict("question -> answer")
    baseline = threading.active_count()
    peak = [0]

    async def run() -> list[Any]:
        async def one(i: int) -> Any:
            result = await qa.acall(question=f"What is {i} + {round_}?")
            peak[0] = max(peak[0], threading.active_count())
            return result

        return await asyncio.gather(*(one(i) for i in range(calls)))

    with dx.ActorSystem(lm=lm):
        asyncio.run(asyncio.wait_for(run(), 60))  # warm: connections open
        if freeze:
            gc.collect()
            gc.freeze()
        try:
            with FullCollections() as collections:
                start = time.perf_counter()
                results, late = asyncio.run(asyncio.wait_for(with_heartbeat(run()), 60))
                wall = time.perf_counter() - start
        finally:
            gc.unfreeze()
    assert len(results) == calls
    return wall, late, peak[0] - baseline, collections.longest


def evaluate_acall(url: str, rows: int, threads: int, round_: int) -> float:
    lm = dx.LM("openai/local-model", api_base=url, cache=False, max_concurrency=threads)
    data = [
        dx.Example(question=f"{r['question']} ({round_})", answer=r["answer"]).with_inputs(
            "question"
        )
        for r in arithmetic_dataset(rows, seed=round_)
    ]
    evaluate = dx.Evaluate(devset=data, metric=dx.answer_exact_match, num_threads=threads)
    warm = [dx.Example(question=f"warm {i}", answer="").with_inputs("question") for i in range(64)]
    with dx.ActorSystem(lm=lm):
        asyncio.run(evaluate.acall(dx.Predict("question -> answer"), devset=warm))  # connections
        start = time.perf_counter()
        result = asyncio.run(evaluate.acall(dx.Predict("question -> answer")))
        wall = time.perf_counter() - start
    assert not result.failures, result.failures[:1]
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with ServerProcess("default", latency=0.2) as server:
        for freeze in (False, True):
            for round_ in range(args.repeats):
                wall, late, threads, collection = concurrent_acalls(
                    server.url, args.calls, round_, freeze=freeze
                )
                print(
                    f"{args.calls} concurrent acalls, L=200 ms{', gc frozen' if freeze else ''}: "
                    f"wall {wall:.3f}s (target <= 0.6), "
                    f"heartbeat at most {late * 1e3:.0f} ms late (<= 100), "
                    f"+{threads} threads (<= 16); longest full GC {collection * 1e3:.0f} ms",
                    flush=True,
                )
        server.set_latency(0.05)
        limit = math.ceil(200 / 64) * 0.05
        for round_ in range(args.repeats):
            wall = evaluate_acall(server.url, 200, 64, 100 + round_)
            print(
                f"Evaluate(200 rows, num_threads=64).acall at 50 ms: wall/limit "
                f"{wall / limit:.3f} ({wall:.3f}s / {limit:.2f}s; target <= 1.4)",
                flush=True,
            )


if __name__ == "__main__":
    main()
