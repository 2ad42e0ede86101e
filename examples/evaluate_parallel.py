"""Parallel evaluation on a bounded pool of worker actors, with a flaky server.

The local test server answers after 50 ms and fails 10% of requests with HTTP 503.
Evaluate runs the examples on N worker actors; the Client actor retries the 503s
(with backoff) and caps requests in flight, so the score is unaffected and the run is
about N times faster than one example at a time.

    python examples/evaluate_parallel.py [--threads 16] [--examples 96]
"""

from __future__ import annotations

import argparse
import time

import dspex_actors as dx
from dspex_actors.testing import Fault, LocalLMServer, arithmetic_dataset

LATENCY = 0.05


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--examples", type=int, default=96)
    parser.add_argument("--serial", type=int, default=8, help="examples timed one at a time")
    args = parser.parse_args()

    rows = arithmetic_dataset(args.serial + args.examples, seed=1)
    data = [
        dx.Example(question=row["question"], answer=row["answer"]).with_inputs("question")
        for row in rows
    ]
    serial_set, devset = data[: args.serial], data[args.serial :]

    with LocalLMServer("weak", latency=LATENCY) as server:
        server.set_fault_rates({Fault.http(503): 0.10}, seed=7)
        print(f"local server {server.url}: {LATENCY * 1000:.0f} ms per reply, 10% HTTP 503")
        lm = dx.LM("openai/local-model", api_base=server.url, api_key="local", num_retries=5)
        # Short retry backoff for the demo; the defaults (0.5 s .. 20 s) suit real providers.
        with dx.ActorSystem(lm=lm, retry_base_delay=0.02, retry_max_delay=0.2) as system:
            program = dx.Predict("question -> answer")
            program(question="What is 1 + 1?")  # starts the Client actor and its connection

            t0 = time.perf_counter()
            serial = dx.Evaluate(devset=serial_set, metric=dx.answer_exact_match, num_threads=1)(
                program
            )
            per_example = (time.perf_counter() - t0) / len(serial_set)
            print(f"1 worker:  {per_example * 1000:.0f} ms per example (score {serial.score})")

            evaluate = dx.Evaluate(
                devset=devset,
                metric=dx.answer_exact_match,
                num_threads=args.threads,
                display_progress=True,
            )
            t0 = time.perf_counter()
            result = evaluate(program)
            elapsed = time.perf_counter() - t0
            speedup = per_example * len(devset) / elapsed
            ideal = -(-len(devset) // args.threads) * LATENCY
            print(
                f"{args.threads} workers: {len(devset)} examples in {elapsed:.2f}s "
                f"= {speedup:.1f}x the one-worker rate (no-overhead, no-fault limit: {ideal:.2f}s)"
            )
            print(result.summary())

            # Results come back in devset order, failures (if any) with their index.
            for example, prediction, score in result.results[:3]:
                answer = prediction.answer if prediction is not None else None
                print(f"  {example.question:<20} -> {answer!s:<6} gold {example.answer:<5} {score}")

            client = next(iter(system.stats()["clients"].values()))
            print(
                f"client: {client['requests']} calls, {client['retries']} retried after 503, "
                f"{client['failures']} failed, most in flight {client['max_in_flight']}"
            )
    # The weak model gets some answers wrong, but no example may fail outright.
    ok = not result.failures and len(result.results) == len(devset) and client["retries"] > 0
    print("OK" if ok else "UNEXPECTED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
