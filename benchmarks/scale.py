"""Scale: N LM calls with C in flight at server latency L (cache off), against a raw floor.

For each row (C, L, N) -- by default (64, 0.2, 256), (256, 0.5, 1024), (1024, 1.0, 4096) --
the local LM server (a subprocess, ``ServerProcess``, so it does not share the client's
GIL) holds every reply L seconds, and the script prints, for each contender, the wall
time over the physical limit ceil(N / C) x L (1.00 = every wave of C calls took exactly
one latency) and the client's CPU per call (``time.process_time()`` of this whole
process, every thread, divided by N; the server's CPU per call, read from
``/proc/<pid>/stat``, is printed beside it):

- Evaluate:  ``dx.Evaluate(devset=..., metric=answer_exact_match, num_threads=C)`` over
             ``dx.Predict("question -> answer")`` with ``dx.LM(..., cache=False,
             max_concurrency=C, num_retries=0)`` inside ``with dx.ActorSystem(lm=lm):`` --
             the public API, N distinct arithmetic questions, after a warm-up Evaluate of
             ``--warmup`` examples in the same system; every example must score 1 (the
             default model is always right): the script says so when one does not. While
             it runs, a sampling thread reads ``threading.enumerate()`` (and the OS
             thread count, ``/proc/self/status``) every 20 ms and the script prints the
             largest total (the script's own sampler and watchdog threads left out) and
             the largest count of threads that are neither Evaluate's worker actors
             (pykka names them ``_Worker-<n>``) nor the caller (MainThread), with what
             those threads are at that peak (grouped by name); the sampler's own CPU is
             taken out of the CPU figure;
- Evaluate.acall: the same, as ``await evaluate.acall(program)`` on an event loop beside a
             heartbeat coroutine (10 ms sleeps); its worst lateness is printed (the
             caller's loop only hands calls off and receives their replies);
- raw aiohttp: the same-run baseline, no framework: one ``aiohttp.ClientSession`` with
             ``TCPConnector(limit=C)`` on one event loop in this process, C worker tasks
             posting N DSPy chat-adapter bodies (the very messages Predict sends: system
             + user turn, with model, temperature and max_tokens), each body
             ``json.dumps``-ed, each reply read and ``json.loads``-ed; after a warm-up
             of ``--warmup`` requests on the same session;
- DSPy (optional, ``--dspy-python PATH``): the same Evaluate through DSPy installed in
             another virtualenv (never a dependency of this project), in a subprocess:
             ``dspy.LM("openai/local-model", api_base=..., api_key="x", cache=False)``,
             ``dspy.Evaluate(devset=..., metric=answer_exact_match, num_threads=C)``; its
             CPU is that subprocess's, measured the same way, and its thread peak is
             the total only.

followed by Evaluate / raw ratios (wall and CPU per call). The server's max in-flight
count is checked for every run (it must reach C). Every wait is bounded: the LM and
aiohttp time out after ``--call-timeout`` s, and a watchdog ends the script (server
included) when one measured run exceeds ``--run-timeout`` s.

The script raises this process's RLIMIT_NOFILE soft limit to the hard limit first (the
server subprocess inherits it; ``python -m dspex_actors.testing`` does not raise its own):
at C = 1024 the client holds ~1024 sockets and the server as many.

    python benchmarks/scale.py [--quick] [--rows C:L:N ...] [--warmup 8] [--repeats 1]
                               [--dspy-python /tmp/dspy-venv/bin/python] [--no-raw]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import resource
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from async_calls import with_heartbeat  # the same heartbeat: benchmarks/ is on sys.path

import dspex_actors as dx
from dspex_actors.testing import ServerProcess, arithmetic_dataset

DEFAULT_ROWS = ((64, 0.2, 256), (256, 0.5, 1024), (1024, 1.0, 4096))
QUICK_ROWS = ((16, 0.1, 64), (64, 0.2, 256))
SIGNATURE = "question -> answer"
WORKER_PREFIX = "_Worker-"  # pykka names an actor's thread after its class: evaluate._worker
HARNESS_PREFIX = "scale-"  # this script's own threads (sampler, watchdog): not counted
SAMPLE_INTERVAL = 0.02
_CLK_TCK = os.sysconf("SC_CLK_TCK")


# -- set-up -------------------------------------------------------------------------------


def raise_nofile_limit() -> tuple[int, int]:
    """Raise RLIMIT_NOFILE's soft limit to the hard limit; returns (soft, hard) now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:
            print(f"warning: could not raise RLIMIT_NOFILE to {target}: {exc}")
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def parse_row(text: str) -> tuple[int, float, int]:
    """``C:L:N`` (N defaults to 4 x C) -> (C, L, N)."""
    parts = text.split(":")
    try:
        if len(parts) == 2:
            c, latency = int(parts[0]), float(parts[1])
            return c, latency, 4 * c
        if len(parts) == 3:
            return int(parts[0]), float(parts[1]), int(parts[2])
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f"expected C:L:N (such as 256:0.5:1024), got {text!r}")


def questions(n: int, seed: int) -> list[dict[str, str]]:
    """``n`` distinct arithmetic questions with their answers."""
    max_operand = max(20, math.isqrt(n // 3 + 1) + 2)  # 3 ops x max_operand^2 distinct
    return arithmetic_dataset(n, seed=seed, max_operand=max_operand)


def server_cpu(pid: int | None) -> float:
    """CPU seconds (user + system, every thread) of process ``pid`` so far."""
    if pid is None:
        return 0.0
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def os_thread_count() -> int:
    """Threads of this process as the OS sees them (Python's and any native ones)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    return 0


class Watchdog:
    """Ends the whole script (server first) if a measured run outlives ``seconds``."""

    def __init__(self, seconds: float, what: str, server: ServerProcess) -> None:
        self._timer = threading.Timer(seconds, self._fire, args=(seconds, what, server))
        self._timer.name = f"{HARNESS_PREFIX}watchdog"
        self._timer.daemon = True

    @staticmethod
    def _fire(seconds: float, what: str, server: ServerProcess) -> None:
        print(f"ABORT: {what} did not finish within {seconds:.0f}s", flush=True)
        # Kill the server child and exit at once: a graceful stop would fail the calls
        # in flight and let the main thread run on against a stopped server.
        if server.pid is not None:
            os.kill(server.pid, signal.SIGKILL)
        os._exit(3)

    def __enter__(self) -> Watchdog:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()


# -- measurements ---------------------------------------------------------------------------


@dataclass
class Run:
    """One measured run: wall and client CPU seconds, how it went."""

    wall: float
    cpu: float
    server_cpu: float
    calls: int
    failures: int = 0
    note: str = ""
    max_in_flight: int = 0
    threads: dict[str, Any] = field(default_factory=dict)

    def ratio(self, limit: float) -> float:
        return self.wall / limit

    def cpu_us(self) -> float:
        return self.cpu / self.calls * 1e6

    def server_us(self) -> float:
        return self.server_cpu / self.calls * 1e6


class ThreadSampler:
    """Samples the thread population every SAMPLE_INTERVAL s on its own thread."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"{HARNESS_PREFIX}sampler", daemon=True
        )
        self.max_total = 0
        self.max_os = 0
        self.max_others = 0
        self.max_workers = 0
        self.others_at_peak: Counter[str] = Counter()
        self.cpu = 0.0  # the sampler's own CPU seconds, to take out of the figures

    def _run(self) -> None:
        start = time.thread_time()
        main = threading.main_thread()
        while not self._stop.wait(SAMPLE_INTERVAL):
            threads = threading.enumerate()
            mine = [t for t in threads if not t.name.startswith(HARNESS_PREFIX)]
            harness = len(threads) - len(mine)
            workers = sum(1 for t in mine if t.name.startswith(WORKER_PREFIX))
            others = len(mine) - workers - (main in mine)
            self.max_total = max(self.max_total, len(mine))
            self.max_workers = max(self.max_workers, workers)
            self.max_os = max(self.max_os, os_thread_count() - harness)
            if others > self.max_others:
                self.max_others = others
                self.others_at_peak = Counter(
                    _family(t.name)
                    for t in mine
                    if t is not main and not t.name.startswith(WORKER_PREFIX)
                )
        self.cpu = time.thread_time() - start

    def __enter__(self) -> ThreadSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5.0)

    def summary(self) -> dict[str, Any]:
        return {
            "max_total": self.max_total,
            "max_os": self.max_os,
            "max_workers": self.max_workers,
            "max_others": self.max_others,
            "others_at_peak": dict(self.others_at_peak.most_common()),
        }


def _family(name: str) -> str:
    """``"dspex-client-local-model-17"`` -> ``"dspex-client-local-model"``."""
    name = name.split(" (", 1)[0]
    head, sep, tail = name.rpartition("-")
    return head if sep and tail.isdigit() else name


def make_devset(rows: Sequence[dict[str, str]]) -> list[dx.Example]:
    return [
        dx.Example(question=row["question"], answer=row["answer"]).with_inputs("question")
        for row in rows
    ]


def run_evaluate(
    server: ServerProcess,
    c: int,
    n: int,
    *,
    warmup: int,
    seed: int,
    call_timeout: float,
    run_timeout: float,
    acall: bool = False,
) -> Run:
    """Evaluate(Predict) over n fresh questions, C at once, in its own ActorSystem.

    With ``acall`` the run is ``await evaluate.acall(program)`` on an event loop beside a
    heartbeat coroutine (10 ms sleeps) whose worst lateness goes in the run's note.
    """
    rows = questions(n + warmup, seed)
    warm, devset = make_devset(rows[:warmup]), make_devset(rows[warmup:])
    lm = dx.LM(
        "openai/local-model",
        api_base=server.url,
        api_key="bench",
        cache=False,
        max_concurrency=c,
        num_retries=0,
        timeout=call_timeout,
    )
    program = dx.Predict(SIGNATURE)
    with dx.ActorSystem(lm=lm):
        if warmup:
            dx.Evaluate(devset=warm, metric=dx.answer_exact_match, num_threads=c)(program)
        evaluate = dx.Evaluate(devset=devset, metric=dx.answer_exact_match, num_threads=c)
        server.reset_stats()
        s_cpu = server_cpu(server.pid)
        with Watchdog(run_timeout, f"Evaluate C={c} N={n}", server), ThreadSampler() as sampler:
            cpu, start = time.process_time(), time.perf_counter()
            if acall:
                result, late = asyncio.run(with_heartbeat(evaluate.acall(program)))
            else:
                result, late = evaluate(program), None
            wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        s_cpu = server_cpu(server.pid) - s_cpu
        max_in_flight = server.stats(include_requests=False).max_in_flight
    cpu -= sampler.cpu
    wrong = sum(1 for _, _, score in result.results if not score)
    note = ""
    if result.failures or wrong or len(result.results) != n:
        first = result.failures[0] if result.failures else None
        note = (
            f"NOT ALL SCORED: {len(result.failures)} failed, {wrong} scored 0, "
            f"{len(result.results)}/{n} rows, score {result.score}"
            + (f"; first failure: {first.error_type}: {first.message}" if first else "")
        )
    if late is not None:
        note = (note + "; " if note else "") + f"heartbeat at most {late * 1e3:.0f} ms late"
    return Run(
        wall,
        cpu,
        s_cpu,
        n,
        failures=len(result.failures) + wrong,
        note=note,
        max_in_flight=max_in_flight,
        threads=sampler.summary(),
    )


def chat_bodies(rows: Sequence[dict[str, str]], lm: dx.LM) -> list[dict[str, Any]]:
    """The chat-completion bodies Predict sends for these questions (no demos)."""
    adapter = dx.ChatAdapter()
    return [
        {
            "model": lm.model_name,
            **lm.kwargs,
            "messages": adapter.format(SIGNATURE, [], {"question": row["question"]}),
        }
        for row in rows
    ]


async def _aiohttp_calls(
    url: str,
    c: int,
    bodies: Sequence[dict[str, Any]],
    warm: Sequence[dict[str, Any]],
    call_timeout: float,
) -> tuple[float, float, int, str]:
    headers = {"Content-Type": "application/json", "Authorization": "Bearer bench"}
    connector = aiohttp.TCPConnector(limit=c)
    timeout = aiohttp.ClientTimeout(total=call_timeout)
    failures: list[str] = []
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def call(body: dict[str, Any]) -> None:
            try:
                async with session.post(url, data=json.dumps(body), headers=headers) as resp:
                    data = await resp.read()
                    if resp.status != 200:
                        failures.append(f"HTTP {resp.status}")
                        return
                    json.loads(data)
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                failures.append(repr(exc))

        async def worker(items: Iterator[dict[str, Any]]) -> None:
            for body in items:
                await call(body)

        async def drive(items: Sequence[dict[str, Any]]) -> None:
            shared = iter(items)  # one loop thread: the workers share it safely
            await asyncio.gather(*(worker(shared) for _ in range(min(c, len(items)))))

        await drive(warm)
        failures.clear()
        cpu, start = time.process_time(), time.perf_counter()
        await drive(bodies)
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    return wall, cpu, len(failures), failures[0] if failures else ""


def run_raw(
    server: ServerProcess,
    c: int,
    n: int,
    *,
    warmup: int,
    seed: int,
    call_timeout: float,
    run_timeout: float,
) -> Run:
    """N POSTs with aiohttp on one event loop, at most C in flight."""
    lm = dx.LM("openai/local-model", api_base=server.url, api_key="bench", cache=False)
    bodies = chat_bodies(questions(n + warmup, seed), lm)
    server.reset_stats()
    s_cpu = server_cpu(server.pid)
    with Watchdog(run_timeout, f"raw aiohttp C={c} N={n}", server):
        wall, cpu, failures, first = asyncio.run(
            _aiohttp_calls(lm.endpoint, c, bodies[warmup:], bodies[:warmup], call_timeout)
        )
    s_cpu = server_cpu(server.pid) - s_cpu
    note = f"{failures} FAILED, first: {first}" if failures else ""
    max_in_flight = server.stats(include_requests=False).max_in_flight
    return Run(wall, cpu, s_cpu, n, failures=failures, note=note, max_in_flight=max_in_flight)


DSPY_SCRIPT = r"""
import json, os, sys, threading, time
spec = json.loads(sys.stdin.readline())
import dspy
lm = dspy.LM("openai/local-model", api_base=spec["url"], api_key="x", cache=False)
dspy.configure(lm=lm)
def devset(rows):
    return [dspy.Example(**r).with_inputs("question") for r in rows]
warm, dev = devset(spec["warm"]), devset(spec["dev"])
program = dspy.Predict("question -> answer")
metric = dspy.evaluate.answer_exact_match
c = spec["c"]
if warm:
    dspy.Evaluate(devset=warm, metric=metric, num_threads=c, display_progress=False)(program)
peak = [0, 0]
stop = threading.Event()
def sample():
    while not stop.wait(0.02):
        peak[0] = max(peak[0], len(threading.enumerate()))
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Threads:"):
                    peak[1] = max(peak[1], int(line.split()[1]))
sampler = threading.Thread(target=sample, daemon=True)
evaluate = dspy.Evaluate(devset=dev, metric=metric, num_threads=c, display_progress=False)
print("READY", flush=True)
sys.stdin.readline()
sampler.start()
cpu, start = time.process_time(), time.perf_counter()
result = evaluate(program)
wall, cpu = time.perf_counter() - start, time.process_time() - cpu
stop.set(); sampler.join(5)
rows = getattr(result, "results", None) or []
wrong = sum(1 for row in rows if not row[2])
score = getattr(result, "score", result)
print(json.dumps({"wall": wall, "cpu": cpu, "score": float(score), "rows": len(rows),
                  "wrong": wrong, "threads": peak[0], "os_threads": peak[1],
                  "version": dspy.__version__}), flush=True)
"""


def run_dspy(
    server: ServerProcess,
    python: str,
    c: int,
    n: int,
    *,
    warmup: int,
    seed: int,
    run_timeout: float,
) -> Run:
    """The same Evaluate through DSPy in a subprocess running ``python``."""
    rows = questions(n + warmup, seed)
    spec = {"url": server.url, "c": c, "warm": rows[:warmup], "dev": rows[warmup:]}
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no fetch of the cost map
    env.setdefault("DSPY_CACHEDIR", f"/tmp/dspy-cache-{os.getpid()}")
    with subprocess.Popen(
        [python, "-c", DSPY_SCRIPT],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    ) as proc:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(json.dumps(spec) + "\n")  # too long for argv at N = 4096
        proc.stdin.flush()
        try:
            # Start-up and warm-up first; then the server counters and CPU for the run.
            ready = _readline(proc, run_timeout)
            if ready.strip() != "READY":
                _, err = proc.communicate(timeout=10)
                return Run(0.0, 0.0, 0.0, n, failures=n, note=f"DSPy failed: {err[-800:]}")
            server.reset_stats()
            s_cpu = server_cpu(server.pid)
            proc.stdin.write("go\n")
            proc.stdin.flush()
            out, err = proc.communicate(timeout=run_timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate(timeout=10)
            return Run(0.0, 0.0, 0.0, n, failures=n, note=f"DSPy timed out ({run_timeout}s)")
        s_cpu = server_cpu(server.pid) - s_cpu
    if proc.returncode != 0 or not out.strip():
        return Run(0.0, 0.0, 0.0, n, failures=n, note=f"DSPy failed: {err[-800:]}")
    data = json.loads(out.strip().splitlines()[-1])
    wrong = int(data["wrong"]) + max(0, n - int(data["rows"]))
    note = f"dspy {data['version']}"
    if wrong or data["score"] != 100.0:
        note += f"; NOT ALL SCORED: {wrong} of {n} scored 0, score {data['score']}"
    threads = {"max_total": data["threads"], "max_os": data["os_threads"]}
    max_in_flight = server.stats(include_requests=False).max_in_flight
    return Run(
        data["wall"], data["cpu"], s_cpu, n, failures=wrong, note=note,
        max_in_flight=max_in_flight, threads=threads,
    )  # fmt: skip


def _readline(proc: subprocess.Popen[str], timeout: float) -> str:
    """One stdout line of ``proc`` within ``timeout`` s (TimeoutExpired otherwise)."""
    stdout = proc.stdout
    assert stdout is not None
    box: list[str] = []
    reader = threading.Thread(target=lambda: box.append(stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    if not box:
        raise subprocess.TimeoutExpired(proc.args, timeout)
    return box[0]


# -- report ---------------------------------------------------------------------------------


def line(label: str, run: Run, limit: float, c: int) -> str:
    if not run.wall:
        return f"  {label:<14} -- {run.note}"
    text = (
        f"  {label:<14} wall/limit {run.ratio(limit):6.3f}  ({run.wall:7.3f}s)   "
        f"CPU/call {run.cpu_us():6.0f} us   server CPU/call {run.server_us():4.0f} us   "
        f"server max in flight {run.max_in_flight}"
    )
    if run.max_in_flight < c:
        text += f" (< C={c}!)"
    if run.note:
        text += f"\n  {'':<14} {run.note}"
    return text


def thread_line(run: Run) -> str:
    t = run.threads
    if "max_others" not in t:
        return f"  {'':<14} threads: max {t['max_total']} Python, {t['max_os']} OS"
    others = ", ".join(f"{name} x{count}" for name, count in t["others_at_peak"].items())
    return (
        f"  {'':<14} threads in flight: max {t['max_total']} Python ({t['max_os']} OS); "
        f"{t['max_workers']} Evaluate workers ({WORKER_PREFIX}*); "
        f"max {t['max_others']} others besides the caller: {others}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rows", type=parse_row, nargs="+", metavar="C:L:N",
        help="rows to run, e.g. 64:0.2:256 256:0.5:1024 (N defaults to 4 x C)",
    )  # fmt: skip
    parser.add_argument("--quick", action="store_true", help=f"small rows {QUICK_ROWS}")
    parser.add_argument("--warmup", type=int, default=8, help="warm-up calls before each run")
    parser.add_argument("--repeats", type=int, default=1, help="runs per contender; best shown")
    parser.add_argument("--no-raw", action="store_true", help="skip the raw aiohttp baseline")
    parser.add_argument("--no-evaluate", action="store_true", help="skip dspex Evaluate")
    parser.add_argument("--dspy-python", help="python of a virtualenv with dspy installed")
    parser.add_argument("--call-timeout", type=float, default=60.0, help="per-call timeout, s")
    parser.add_argument(
        "--run-timeout", type=float, default=300.0, help="abort if one measured run exceeds this"
    )
    args = parser.parse_args()
    rows: list[tuple[int, float, int]] = list(
        args.rows or (QUICK_ROWS if args.quick else DEFAULT_ROWS)
    )

    print("reproduce: " + shlex.join([sys.executable, *sys.argv]))
    soft, hard = raise_nofile_limit()
    print(
        f"RLIMIT_NOFILE soft {soft} (hard {hard}); {os.cpu_count()} CPUs; "
        f"warm-up {args.warmup} calls; best of {args.repeats}; "
        "ratio = wall / (ceil(N/C) x L), CPU = this process's CPU time / N"
    )
    need = max(c for c, _, _ in rows) + 64
    if soft < need:
        print(f"warning: RLIMIT_NOFILE {soft} < {need}: the largest row may fail to connect")

    with ServerProcess("default", latency=rows[0][1]) as server:
        for index, (c, latency, n) in enumerate(rows):
            server.set_latency(latency)
            limit = math.ceil(n / c) * latency
            print(f"C={c} L={latency}s N={n}: limit {limit:.2f}s")
            seed = 1000 * index
            timing = {
                "call_timeout": args.call_timeout,
                "run_timeout": args.run_timeout,
            }
            raw = ev = None
            if not args.no_raw:
                raw = _best(
                    run_raw(server, c, n, warmup=args.warmup, seed=seed + r, **timing)
                    for r in range(args.repeats)
                )
                print(line("raw aiohttp", raw, limit, c), flush=True)
            if not args.no_evaluate:
                ev = _best(
                    run_evaluate(server, c, n, warmup=args.warmup, seed=seed + 100 + r, **timing)
                    for r in range(args.repeats)
                )
                print(line("Evaluate", ev, limit, c))
                print(thread_line(ev), flush=True)
                aev = _best(
                    run_evaluate(
                        server, c, n, warmup=args.warmup, seed=seed + 300 + r, acall=True,
                        **timing,
                    )
                    for r in range(args.repeats)
                )  # fmt: skip
                print(line("Evaluate.acall", aev, limit, c))
                print(thread_line(aev), flush=True)
            if args.dspy_python:
                ds = _best(
                    run_dspy(
                        server, args.dspy_python, c, n, warmup=args.warmup, seed=seed + 200 + r,
                        run_timeout=args.run_timeout,
                    )
                    for r in range(args.repeats)
                )  # fmt: skip
                print(line("DSPy", ds, limit, c))
                if ds.wall:
                    print(thread_line(ds))
                if ev is not None and ds.wall:
                    print(
                        f"  {'':<14} DSPy / Evaluate: wall {ds.wall / ev.wall:.2f}x, "
                        f"CPU/call {ds.cpu / ev.cpu:.2f}x"
                    )
            if raw is not None and ev is not None and raw.wall:
                print(
                    f"  {'':<14} Evaluate / raw aiohttp: wall {ev.wall / raw.wall:.2f}x, "
                    f"CPU/call {ev.cpu / raw.cpu:.2f}x "
                    f"(+{ev.cpu_us() - raw.cpu_us():.0f} us/call)",
                    flush=True,
                )


def _best(runs: Iterator[Run]) -> Run:
    """The run with the least wall time among those without failures (else the last)."""
    done = list(runs)
    clean = [r for r in done if not r.failures and r.wall]
    return min(clean, key=lambda r: r.wall) if clean else done[-1]


if __name__ == "__main__":
    main()
