"""CPU per Predict call with telemetry off, with the OpenTelemetry API but no provider, and
with the SDK installed (spans and metrics recorded in memory), side by side.

Each mode runs in its own subprocess (a provider cannot be uninstalled), against the same
0-latency local server in another subprocess; CPU is ``time.process_time`` of the whole
process (caller, Cache and Client actors, I/O loop). "not installed" hides the
``opentelemetry`` package from the import system.

    python benchmarks/telemetry_overhead.py [--calls 2000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

MODES = ("not installed", "API, no provider", "SDK installed")


def run_mode(mode: str, url: str, calls: int) -> dict[str, float]:
    """Measure one mode in a fresh interpreter; returns its figures."""
    out = subprocess.run(
        [sys.executable, __file__, "--child", mode, "--url", url, "--calls", str(calls)],
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    ).stdout
    figures: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return figures


def child(mode: str, url: str, calls: int) -> None:
    if mode == "not installed":
        sys.modules["opentelemetry"] = None  # type: ignore[assignment]
    elif mode == "SDK installed":
        from opentelemetry import metrics, trace
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
            InMemorySpanExporter,
        )

        provider = TracerProvider()
        exporter = InMemorySpanExporter()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        metrics.set_meter_provider(MeterProvider(metric_readers=[InMemoryMetricReader()]))

    from predict_overhead import measure

    from dspex_actors.lm import LM
    from dspex_actors.predict import Predict
    from dspex_actors.system import ActorSystem

    lm = LM("openai/local-model", api_base=url, api_key="bench", num_retries=0)
    with ActorSystem(lm=lm):
        predict = Predict("question -> answer")
        uncached = Predict("question -> answer", cache=False)
        for _ in range(20):
            predict(question="What is 2 + 3?")
            uncached(question="What is 2 + 3?")
        hit_cpu, _ = measure(lambda i: predict(question="What is 2 + 3?"), calls)
        miss_cpu, _ = measure(lambda i: uncached(question=f"What is {i} + 3?"), calls // 4)
    print(json.dumps({"hit": hit_cpu, "miss": miss_cpu}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--child", choices=MODES)
    parser.add_argument("--url")
    args = parser.parse_args()
    calls = max(40, args.calls)
    if args.child:
        child(args.child, args.url, calls)
        return

    from dspex_actors.testing import ServerProcess

    with ServerProcess("default") as server:
        rows = {mode: run_mode(mode, server.url, calls) for mode in MODES}
    base = rows["not installed"]
    print(f"Predict CPU per call ({calls} cache hits, {calls // 4} misses), µs:")
    for mode, figures in rows.items():
        print(
            f"  {mode:17s} hit {figures['hit']:7.1f} ({figures['hit'] / base['hit']:.2f}x)   "
            f"miss {figures['miss']:7.1f} ({figures['miss'] / base['miss']:.2f}x)"
        )


if __name__ == "__main__":
    main()
