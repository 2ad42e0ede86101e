"""What sharing state through Redis costs a call, against the local server in a subprocess.

N distinct questions asked by C threads (each a miss: a Redis lookup, the leader lock, the
HTTP call, the write-back), then the same N asked again by a fresh system (each a hit from
Redis, no request), with and without ``redis_url``; a real ``redis-server`` is started on a
free loopback port (Debian package ``redis-server``).

    python benchmarks/redis_shared.py [--calls 400] [--threads 16]
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import dspex_actors as dx
from dspex_actors.lm import LMRequest
from dspex_actors.testing import ServerProcess


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_redis(directory: str) -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--dir", directory],
        stdout=subprocess.DEVNULL,
    )
    import redis

    client = redis.Redis(port=port)
    deadline = time.monotonic() + 15
    while True:
        try:
            client.ping()
            break
        except redis.exceptions.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)
    client.close()
    return proc, f"redis://127.0.0.1:{port}/0"


def run(lm: dx.LM, questions: list[str], threads: int, **options: Any) -> float:
    with dx.ActorSystem(lm=lm, **options) as system:
        system.client_handle(lm)
        started = time.perf_counter()
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(lambda q: system.request(
                LMRequest(messages=({"role": "user", "content": q},))
            ), questions))
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--threads", type=int, default=16)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory, ServerProcess() as server:
        proc, url = start_redis(directory)
        try:
            lm = dx.LM("openai/local-model", api_base=server.url, api_key="sk-bench")
            for label, options in (("memory only", {}), ("redis_url", {"redis_url": url})):
                prefix = {"redis_prefix": f"bench{time.time_ns()}:"} if options else {}
                questions = [f"What is {n} + {n}? ({label})" for n in range(args.calls)]
                miss = run(lm, questions, args.threads, **options, **prefix)
                hit = run(lm, questions, args.threads, **options, **prefix)
                print(
                    f"{label:12} {args.calls} misses at C={args.threads}: "
                    f"{miss / args.calls * 1e6:7.0f} us/call; a fresh system asking them again: "
                    f"{hit / args.calls * 1e6:7.0f} us/call "
                    f"({'Redis hits' if options else 'misses again'})"
                )
        finally:
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    main()
