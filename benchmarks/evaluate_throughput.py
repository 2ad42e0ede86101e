"""Evaluate throughput against the local LM server (run in a subprocess, own GIL).

Prints, one figure per line:

- wall / physical limit for N examples on T threads at server latency L, where the
  limit is ceil(N / T) * L (targets <= 1.05, must not exceed 1.10), for Evaluate(Predict),
  with the client CPU per example (when N x CPU exceeds the limit, the run is CPU-bound
  in the LM stack, not waiting on the server), next to the same-run floors: a raw
  ``http.client`` loop on T threads (what the server and the network allow) and the
  executor alone running ``time.sleep(L)``, and Evaluate(Predict) with the LM's
  ``cache=False`` (the Cache actor out of the path: two thread hand-offs per example
  fewer, which shows what each hand-off costs at this load);
- the per-example overhead at L = 0: the executor alone, Evaluate around a trivial
  program, and Evaluate(Predict) per example against a plain sequential Predict loop
  (target <= 300 us; DSPy: about 1.2-1.4 ms per example), and Evaluate(Predict) over
  answers already in the cache (the whole framework without HTTP);
- peak RSS of a 100k-example Evaluate(Predict) run against a 0 ms server, in a fresh
  child process (target < 500 MB).

    python benchmarks/evaluate_throughput.py [--quick]
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

from dspex_actors.evaluate import Evaluate, ParallelExecutor, answer_exact_match
from dspex_actors.lm import LM
from dspex_actors.predict import Predict
from dspex_actors.primitives import Example, Prediction
from dspex_actors.system import ActorSystem
from dspex_actors.testing import ServerProcess

_run_counter = iter(range(1, 1_000_000))


def examples(n: int) -> Iterator[Example]:
    """``n`` distinct arithmetic questions (distinct across calls: no cache hits)."""
    run = next(_run_counter) * 10_000_000
    for i in range(n):
        a, b = i, run + i
        yield Example(question=f"What is {a} + {b}?", answer=str(a + b)).with_inputs("question")


def make_lm(server: ServerProcess) -> LM:
    return LM("openai/local-model", api_base=server.url, api_key="bench", num_retries=0)


def evaluate_wall(n: int, threads: int) -> tuple[float, float]:
    """(wall s, CPU s) of Evaluate(Predict) over n fresh examples (in a running system)."""
    devset = list(examples(n))
    evaluate = Evaluate(devset=devset, metric=answer_exact_match, num_threads=threads)
    program = Predict("question -> answer")
    cpu, start = time.process_time(), time.perf_counter()
    result = evaluate(program)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    if result.failures or result.score != 100.0:
        sys.exit(f"benchmark run failed: {result.summary()}")
    return wall, cpu


def raw_http_wall(url: str, n: int, threads: int) -> float:
    """Wall seconds of n chat-completion POSTs with http.client on ``threads`` threads."""
    parts = urlsplit(url)
    body = json.dumps(
        {"model": "local-model", "messages": [{"role": "user", "content": "What is 2 + 3?"}]}
    )
    counter = iter(range(n))
    lock = threading.Lock()

    def worker() -> None:
        conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port)
        try:
            while True:
                with lock:
                    if next(counter, None) is None:
                        return
                headers = {"Content-Type": "application/json"}
                conn.request("POST", f"{parts.path}/chat/completions", body=body, headers=headers)
                conn.getresponse().read()
        finally:
            conn.close()

    workers = [threading.Thread(target=worker) for _ in range(threads)]
    start = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return time.perf_counter() - start


def executor_wall(fn: Callable[[int], Any], n: int, threads: int) -> tuple[float, float]:
    """(wall s, CPU s) of ParallelExecutor.run(fn, range(n))."""
    cpu, start = time.process_time(), time.perf_counter()
    ParallelExecutor(threads).run(fn, range(n))
    return time.perf_counter() - start, time.process_time() - cpu


def limit_ratios(quick: bool) -> None:
    latency = 0.05
    configs = [(200, 16), (400, 64)] if quick else [(200, 16), (2000, 64)]
    with ServerProcess("default", latency=latency) as server:
        uncached = ActorSystem(lm=make_lm(server).copy(cache=False)).start()
        try:
            with ActorSystem(lm=make_lm(server)):
                for n, threads in configs:
                    limit = math.ceil(n / threads) * latency
                    evaluate_wall(threads * 2, threads)  # warm up: Client actor, connections
                    wall, cpu = min(evaluate_wall(n, threads) for _ in range(2))
                    raw = min(raw_http_wall(server.url, n, threads) for _ in range(2))
                    sleep, _ = executor_wall(lambda _: time.sleep(latency), n, threads)
                    with uncached:  # the same without the Cache actor: two hand-offs fewer
                        evaluate_wall(threads * 2, threads)
                        no_cache = min(evaluate_wall(n, threads)[0] for _ in range(2))
                    print(
                        f"N={n} threads={threads} L={latency * 1000:.0f}ms: Evaluate(Predict) "
                        f"wall/limit = {wall / limit:.3f} ({wall:.3f}s / {limit:.3f}s; "
                        f"client CPU {cpu / n * 1e6:.0f} us/example)   "
                        f"[same-run floors: raw http.client {raw / limit:.3f}, "
                        f"executor+sleep(L) {sleep / limit:.3f}; "
                        f"Evaluate(Predict) with cache=False {no_cache / limit:.3f}]"
                    )
        finally:
            uncached.stop()


def overheads(quick: bool) -> None:
    n = 5000 if quick else 20000
    threads = 16
    wall, cpu = executor_wall(lambda i: i, n, threads)
    print(
        f"L=0 executor alone ({threads} threads, no-op fn): "
        f"{wall / n * 1e6:.0f} us/example wall, {cpu / n * 1e6:.0f} us CPU"
    )
    devset = list(examples(n))
    trivial = Prediction(answer="0")
    evaluate = Evaluate(devset=devset, metric=answer_exact_match, num_threads=threads)
    cpu0, start = time.process_time(), time.perf_counter()
    evaluate(lambda question: trivial)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu0
    print(
        f"L=0 Evaluate around a trivial program (+ metric): "
        f"{wall / n * 1e6:.0f} us/example wall, {cpu / n * 1e6:.0f} us CPU"
    )

    m = 1000 if quick else 4000
    with ServerProcess("default", latency=0.0) as server, ActorSystem(lm=make_lm(server)):
        evaluate_wall(64, threads)  # warm up
        program = Predict("question -> answer")
        loop_devset = list(examples(m))
        cpu0, start = time.process_time(), time.perf_counter()
        for example in loop_devset:
            answer_exact_match(example, program(**example.inputs()))
        loop_wall, loop_cpu = time.perf_counter() - start, time.process_time() - cpu0
        eval_wall, eval_cpu = evaluate_wall(m, threads)
        cached = Evaluate(devset=loop_devset, metric=answer_exact_match, num_threads=threads)
        cpu0 = time.process_time()
        cached(program)  # every answer is already in the Cache actor: no HTTP at all
        hit_cpu = time.process_time() - cpu0
    print(
        f"L=0 Evaluate(Predict), {threads} threads: {eval_wall / m * 1e6:.0f} us/example wall, "
        f"{eval_cpu / m * 1e6:.0f} us CPU; sequential Predict loop: {loop_wall / m * 1e6:.0f} us "
        f"wall, {loop_cpu / m * 1e6:.0f} us CPU"
    )
    print(
        f"L=0 per-example overhead of Evaluate over calling Predict directly: "
        f"{(eval_cpu - loop_cpu) / m * 1e6:.0f} us CPU (target <= 300 us)"
    )
    print(
        f"L=0 Evaluate(Predict) on cached answers (the framework alone: executor, Predict, "
        f"adapter, Cache actor, metric): {hit_cpu / m * 1e6:.0f} us CPU/example "
        "(DSPy: about 1200-1400 us)"
    )


def memory_child(n: int) -> None:
    """Run in a fresh process: Evaluate(Predict) over a generator of n examples."""
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with ServerProcess("default", latency=0.0) as server, ActorSystem(lm=make_lm(server)):
        start = time.perf_counter()
        result = Evaluate(devset=examples(n), metric=answer_exact_match, num_threads=32)(
            Predict("question -> answer")
        )
        wall = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    figures = {"n": n, "peak_mb": peak, "base_mb": base, "wall": wall}
    figures.update(score=result.score, failures=len(result.failures))
    print(json.dumps(figures))


def memory(quick: bool) -> None:
    n = 10_000 if quick else 100_000
    out = subprocess.run(
        [sys.executable, __file__, "--memory-child", str(n)],
        capture_output=True,
        text=True,
        check=True,
    )
    data = json.loads(out.stdout.strip().splitlines()[-1])
    print(
        f"peak RSS, {data['n']} examples (generator devset, 0 ms server, 32 threads): "
        f"{data['peak_mb']:.0f} MB (target < 500 MB; {data['base_mb']:.0f} MB at start; "
        f"{data['wall']:.1f}s, score {data['score']}, {data['failures']} failed)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (a quick check)")
    parser.add_argument("--memory-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(args.memory_child)
        return
    limit_ratios(args.quick)
    overheads(args.quick)
    memory(args.quick)


if __name__ == "__main__":
    main()
