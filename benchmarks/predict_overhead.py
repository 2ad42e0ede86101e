"""Per-call CPU overhead of Predict, in µs: on a cache hit and against a 0-latency server.

The server runs in a subprocess, so the CPU time measured here (``time.process_time``,
every thread of this process: caller, Cache and Client actors, HTTP workers) is the
library's own. The same-run baselines are bare POSTs of the same request to the same
server with the stdlib ``http.client`` (the cheapest stock client: Predict's overhead on
a miss is its CPU per call minus that) and with a default ``httpx.Client``. The misses are
measured again for each other provider (Anthropic, Gemini, Azure protocols). DSPy spends
about 1.2 ms of CPU per predictor call.

    python benchmarks/predict_overhead.py [--calls 2000]
"""

from __future__ import annotations

import argparse
import http.client
import json
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import httpx

from dspex_actors.lm import LM
from dspex_actors.predict import Predict
from dspex_actors.system import ActorSystem
from dspex_actors.testing import ServerProcess

DSPY_CPU_US = 1200.0
PROVIDERS = ("anthropic/claude-sonnet-4-5", "gemini/gemini-2.5-flash", "azure/local-deployment")
"""The other providers, each speaking its own protocol to the same local server."""


def measure(fn: Callable[[int], object], calls: int) -> tuple[float, float]:
    """(CPU µs per call, wall µs per call) of ``fn(i)`` for i in range(calls)."""
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for i in range(calls):
        fn(i)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return cpu / calls * 1e6, wall / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000, help="calls per measurement")
    args = parser.parse_args()
    calls = max(10, args.calls)

    with ServerProcess("default") as server:
        lm = LM("openai/local-model", api_base=server.url, api_key="bench", num_retries=0)
        with ActorSystem(lm=lm):
            predict = Predict("question -> answer")
            uncached = Predict("question -> answer", cache=False)
            # warm up: start the Client actor, the HTTP pool, and fill the cache entry
            for _ in range(20):
                predict(question="What is 2 + 3?")
                uncached(question="What is 2 + 3?")

            hit_cpu, hit_wall = measure(lambda i: predict(question="What is 2 + 3?"), calls)
            miss_calls = max(10, calls // 4)
            miss_cpu, miss_wall = measure(
                lambda i: uncached(question=f"What is {i} + 3?"), miss_calls
            )

            body = {
                "model": "local-model",
                "messages": [{"role": "user", "content": "What is 2 + 3?"}],
                "temperature": 0.0,
                "max_tokens": 1000,
            }
            with httpx.Client(timeout=30.0) as client:
                url = server.url + "/chat/completions"
                for _ in range(20):
                    client.post(url, json=body).raise_for_status()
                httpx_cpu, httpx_wall = measure(
                    lambda i: client.post(url, json=body).raise_for_status(), miss_calls
                )
            parts = urlsplit(url)
            connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port)
            headers = {"Content-Type": "application/json"}

            def stdlib_post(_: int) -> object:
                connection.request("POST", parts.path, body=json.dumps(body), headers=headers)
                return json.loads(connection.getresponse().read())

            for _ in range(20):
                stdlib_post(0)
            raw_cpu, raw_wall = measure(stdlib_post, miss_calls)
            connection.close()
        root = server.url.removesuffix("/v1")
        provider_rows = []
        for model in PROVIDERS:
            other = LM(model, api_base=root, api_key="bench", num_retries=0, cache=False)
            with ActorSystem(lm=other):
                program = Predict("question -> answer")
                for _ in range(20):
                    program(question="What is 2 + 3?")
                cpu, wall = measure(
                    lambda i, p=program: p(question=f"What is {i} + 3?"), miss_calls
                )
            provider_rows.append((model.partition("/")[0], cpu, wall))

    print(
        f"Predict per-call CPU, {calls} cache hits: {hit_cpu:7.1f} µs  (wall {hit_wall:7.1f} µs)"
    )
    print(
        f"Predict per-call CPU, {miss_calls} misses, 0-latency server in a subprocess: "
        f"{miss_cpu:7.1f} µs  (wall {miss_wall:7.1f} µs)"
    )
    for name, cpu, wall in provider_rows:
        print(
            f"  the same misses with {name + '/':11} (its own protocol): "
            f"{cpu:7.1f} µs  (wall {wall:7.1f} µs)"
        )
    print(
        f"bare http.client POST to the same server (same-run baseline): "
        f"{raw_cpu:7.1f} µs  (wall {raw_wall:7.1f} µs)"
    )
    print(
        f"bare httpx.Client POST to the same server (for reference): "
        f"{httpx_cpu:7.1f} µs  (wall {httpx_wall:7.1f} µs)"
    )
    print(
        f"Predict overhead above the bare http.client call on a miss: {miss_cpu - raw_cpu:7.1f} µs"
    )
    print(
        f"ratio to DSPy's ~{DSPY_CPU_US:.0f} µs per call: cache hit {hit_cpu / DSPY_CPU_US:.2f}x, "
        f"miss overhead {(miss_cpu - raw_cpu) / DSPY_CPU_US:.2f}x"
    )


if __name__ == "__main__":
    main()
