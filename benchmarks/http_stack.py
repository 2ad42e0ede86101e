"""HTTP stack for the Client on an event loop: aiohttp vs httpx (two transports) at C in flight.

On one asyncio loop in this process, against the local LM server in a subprocess
(``ServerProcess``: it does not share this process's GIL) that holds every reply L
seconds, N = 4 x C chat-completion POSTs with at most C in flight (C worker tasks
sharing one iterator), for C in 64, 256, 1024 at L = 0.2, 0.5, 1.0 s by default:

- aiohttp:       ``aiohttp.ClientSession(connector=TCPConnector(limit=C))``, each reply
                 read (``await resp.read()``) and ``json.loads``-ed;
- httpx+aiohttp: ``httpx.AsyncClient(transport=httpx_aiohttp.AiohttpTransport(
                 limits=httpx.Limits(max_connections=C)))`` -- httpx's API over an
                 aiohttp session (the transport builds ``TCPConnector(limit=C)`` from the
                 limits), ``response.json()``;
- httpx:         ``httpx.AsyncClient(limits=httpx.Limits(max_connections=C))`` with its
                 own transport (httpcore), ``response.json()``; known to be slow at high C
                 (its pool scans every connection on each request: encode/httpcore#1035),
                 so it is skipped above ``--httpcore-max-c`` (256 by default) and every
                 run is capped by ``--run-timeout``: a capped run prints how many calls
                 it finished.

Each body is a DSPy chat-adapter prompt (the system + user turn Predict sends for
``question -> answer``, with model, temperature and max_tokens), ``json.dumps``-ed per
call. Each client gets a fresh session and ``--warmup`` calls first (default C: every
connection opened, as in a long-lived Client), then the measured N. Printed per row and
client: wall / (ceil(N/C) x L) (1.00 = each wave of C calls took exactly one latency),
this process's CPU time per call (``time.process_time()``) and the same over aiohttp's,
and the server's max in-flight count (it must reach C).

This process's RLIMIT_NOFILE soft limit is raised to the hard limit first (the server
subprocess inherits it): at C = 1024 the client and the server each hold ~1024 sockets.

Needs ``httpx-aiohttp`` besides the ``[dev]`` extra (``pip install httpx-aiohttp``): it is
measured here, not used by the library.

    python benchmarks/http_stack.py [--quick] [--rows C:L[:N] ...] [--warmup C]
                                    [--httpcore-max-c 256] [--run-timeout 120]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import shlex
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import httpx
import httpx_aiohttp
from scale import parse_row, raise_nofile_limit  # benchmarks/ is on sys.path

import dspex_actors as dx
from dspex_actors.testing import ServerProcess, arithmetic_dataset

DEFAULT_ROWS = ((64, 0.2, 256), (256, 0.5, 1024), (1024, 1.0, 4096))
QUICK_ROWS = ((16, 0.1, 64), (64, 0.2, 256))
SIGNATURE = "question -> answer"
HEADERS = {"Content-Type": "application/json", "Authorization": "Bearer bench"}

Call = Callable[[dict[str, Any]], Awaitable[None]]


def chat_bodies(n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` distinct chat-completion bodies, as Predict(question -> answer) sends them."""
    lm = dx.LM("openai/local-model", api_base="http://127.0.0.1:1/v1", api_key="bench")
    adapter = dx.ChatAdapter()
    max_operand = max(20, math.isqrt(n // 3 + 1) + 2)
    return [
        {
            "model": lm.model_name,
            **lm.kwargs,
            "messages": adapter.format(SIGNATURE, [], {"question": row["question"]}),
        }
        for row in arithmetic_dataset(n, seed=seed, max_operand=max_operand)
    ]


@dataclass
class Run:
    """One measured run."""

    wall: float
    cpu: float
    done: int
    failures: int
    first_failure: str
    timed_out: bool
    max_in_flight: int
    warm_timed_out: bool


async def drive(
    call: Call,
    c: int,
    bodies: Sequence[dict[str, Any]],
    timeout: float,
) -> tuple[float, float, int, list[str], bool]:
    """(wall, CPU, calls done, failures, timed out) of ``bodies`` through C worker tasks."""
    shared: Iterator[dict[str, Any]] = iter(bodies)  # one loop thread: shared safely
    done = 0
    failures: list[str] = []

    async def worker() -> None:
        nonlocal done
        for body in shared:
            try:
                await call(body)
            except (aiohttp.ClientError, httpx.HTTPError, TimeoutError, ValueError) as exc:
                failures.append(f"{type(exc).__name__}: {exc}")
            done += 1

    timed_out = False
    cpu, start = time.process_time(), time.perf_counter()
    tasks = [asyncio.ensure_future(worker()) for _ in range(min(c, len(bodies)))]
    try:
        await asyncio.wait_for(asyncio.gather(*tasks), timeout)
    except TimeoutError:
        timed_out = True
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    return wall, cpu, done, failures, timed_out


async def measure(
    name: str,
    url: str,
    c: int,
    bodies: Sequence[dict[str, Any]],
    warm: Sequence[dict[str, Any]],
    *,
    call_timeout: float,
    run_timeout: float,
    server: ServerProcess,
) -> Run:
    """Open the client ``name``, warm it up, then time ``bodies`` through it."""
    if name == "aiohttp":
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=c),
            timeout=aiohttp.ClientTimeout(total=call_timeout),
        )

        async def aiohttp_call(body: dict[str, Any]) -> None:
            async with session.post(url, data=json.dumps(body), headers=HEADERS) as resp:
                data = await resp.read()
                if resp.status != 200:
                    raise ValueError(f"HTTP {resp.status}")
                json.loads(data)

        call: Call = aiohttp_call
        close: Callable[[], Awaitable[None]] = session.close
    else:
        limits = httpx.Limits(max_connections=c, max_keepalive_connections=c)
        if name == "httpx+aiohttp":
            client = httpx.AsyncClient(
                transport=httpx_aiohttp.AiohttpTransport(limits=limits), timeout=call_timeout
            )
        else:
            client = httpx.AsyncClient(limits=limits, timeout=call_timeout)

        async def httpx_call(body: dict[str, Any]) -> None:
            response = await client.post(url, content=json.dumps(body), headers=HEADERS)
            response.raise_for_status()
            response.json()

        call = httpx_call
        close = client.aclose
    try:
        *_, warm_timed_out = await drive(call, c, warm, run_timeout)
        server.reset_stats()
        wall, cpu, done, failures, timed_out = await drive(call, c, bodies, run_timeout)
    finally:
        try:
            await asyncio.wait_for(close(), 30.0)
        except TimeoutError:
            print(f"  ({name}: closing the client took more than 30s)")
    max_in_flight = server.stats(include_requests=False).max_in_flight
    first = failures[0] if failures else ""
    return Run(wall, cpu, done, len(failures), first, timed_out, max_in_flight, warm_timed_out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rows", type=parse_row, nargs="+", metavar="C:L:N",
        help="rows to run, e.g. 64:0.2 256:0.5:1024 (N defaults to 4 x C)",
    )  # fmt: skip
    parser.add_argument("--quick", action="store_true", help=f"small rows {QUICK_ROWS}")
    parser.add_argument(
        "--warmup", type=int, help="warm-up calls per client before the run (default: C)"
    )
    parser.add_argument(
        "--httpcore-max-c", type=int, default=256,
        help="skip httpx's own transport above this C (0: never skip)",
    )  # fmt: skip
    parser.add_argument(
        "--clients", nargs="+", default=["aiohttp", "httpx+aiohttp", "httpx"],
        choices=["aiohttp", "httpx+aiohttp", "httpx"],
    )  # fmt: skip
    parser.add_argument("--call-timeout", type=float, default=60.0, help="per-call timeout, s")
    parser.add_argument(
        "--run-timeout", type=float, default=120.0, help="cap on one measured run (and warm-up)"
    )
    args = parser.parse_args()
    rows: list[tuple[int, float, int]] = list(
        args.rows or (QUICK_ROWS if args.quick else DEFAULT_ROWS)
    )

    print("reproduce: " + shlex.join([sys.executable, *sys.argv]))
    soft, hard = raise_nofile_limit()
    print(
        f"RLIMIT_NOFILE soft {soft} (hard {hard}); {os.cpu_count()} CPUs; one asyncio loop; "
        "ratio = wall / (ceil(N/C) x L); CPU = this process's CPU time / N; "
        "vs aiohttp = CPU/call over aiohttp's in the same row"
    )
    print(
        f"{'C':>5} {'L':>5} {'N':>5}  {'client':<14} {'wall/limit':>10} {'wall s':>8} "
        f"{'CPU/call':>10} {'vs aiohttp':>10}  {'srv max':>7}  notes"
    )
    with ServerProcess("default", latency=rows[0][1]) as server:
        for index, (c, latency, n) in enumerate(rows):
            server.set_latency(latency)
            limit = math.ceil(n / c) * latency
            warmup = c if args.warmup is None else args.warmup
            base_cpu: float | None = None
            for client_index, name in enumerate(args.clients):
                head = f"{c:>5} {latency:>5} {n:>5}  {name:<14}"
                if name == "httpx" and args.httpcore_max_c and c > args.httpcore_max_c:
                    print(f"{head} {'skipped':>10}  (C > --httpcore-max-c {args.httpcore_max_c})")
                    continue
                bodies = chat_bodies(n + warmup, seed=10_000 * index + 100 * client_index)
                run = asyncio.run(
                    measure(
                        name, f"{server.url}/chat/completions", c, bodies[warmup:],
                        bodies[:warmup], call_timeout=args.call_timeout,
                        run_timeout=args.run_timeout, server=server,
                    )
                )  # fmt: skip
                cpu_us = run.cpu / max(run.done, 1) * 1e6
                if name == "aiohttp":
                    base_cpu = cpu_us
                versus = f"{cpu_us / base_cpu:9.2f}x" if base_cpu else f"{'':>10}"
                notes = []
                if run.warm_timed_out:
                    notes.append(f"warm-up TIMED OUT at {args.run_timeout:.0f}s")
                if run.timed_out:
                    notes.append(
                        f"TIMED OUT at {args.run_timeout:.0f}s: {run.done}/{n} done "
                        "(wall is the cap; CPU/call over the calls done)"
                    )
                if run.failures:
                    notes.append(f"{run.failures} FAILED, first: {run.first_failure[:120]}")
                if run.max_in_flight < c:
                    notes.append(f"server in flight < C={c}")
                print(
                    f"{head} {run.wall / limit:>10.3f} {run.wall:>8.3f} "
                    f"{cpu_us:>7.0f} us {versus}  {run.max_in_flight:>7}  {'; '.join(notes)}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
