"""64 concurrent LM calls at 50 ms server latency: wall time / 50 ms (target <= 1.2).

The physical limit is one server latency: if the Client actor serialised calls the
ratio would be about 64. The local server runs in a subprocess so its threads do not
compete with the client for the GIL. Each kind of round is measured after a warm-up
round (connections and threads already exist, as in a long-lived service):

- sleep only:    64 threads that only sleep the latency (the harness's own floor:
                 waking 64 threads on 2 cores);
- raw socket:    64 threads each writing a request and reading the reply on its own
                 socket with no HTTP library (the floor of any thread-per-call client here);
- raw httpx:     the same-run baseline: 64 threads posting with one httpx.Client each
                 (kept across rounds),
                 no actors (the best httpx itself does here: its CPU cost per call,
                 about 0.4 ms alone and more under 64-way GIL contention, is the floor);
- shared pool:   the same with one shared httpx.Client (its pool lock serialises callers);
- http.client:   the stdlib client per thread (lighter than httpx: the machine's floor);
- client:        every call skips the cache (Client actor + breaker + HTTP);
- cache misses:  distinct prompts through the Cache actor (lookup, store, single flight);
- cache hits:    the same prompts again (no HTTP; ratio far below 1).

Run: ``python benchmarks/client_concurrency.py [--calls 64] [--latency 0.05] [--repeats 5]``
"""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import statistics
import threading
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import httpx

import dspex_actors as dx
from dspex_actors.lm import LMRequest
from dspex_actors.testing import ServerProcess


def timed(calls: int, call: Callable[[int], object]) -> float:
    """Wall time of ``calls`` concurrent ``call(i)``: first call's start to last call's end.

    The callers are released together by a barrier; thread start-up before the barrier
    and thread joins after the last call are not part of the calls, so they are not timed.
    """
    barrier = threading.Barrier(calls + 1)
    errors: list[BaseException] = []
    starts: list[float] = []
    ends: list[float] = []

    def caller(index: int) -> None:
        barrier.wait()
        starts.append(time.perf_counter())
        try:
            call(index)
        except BaseException as exc:
            errors.append(exc)
        ends.append(time.perf_counter())

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(calls)]
    for thread in threads:
        thread.start()
    barrier.wait()
    for thread in threads:
        thread.join()
    if errors:
        raise RuntimeError(f"{len(errors)} calls failed, first: {errors[0]!r}")
    return max(ends) - min(starts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=64)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    with ServerProcess(latency=args.latency) as server:
        lm = dx.LM("openai/local-model", api_base=server.url, num_retries=0)
        counter = iter(range(10**9))
        url = lm.endpoint
        ssl_context = httpx.create_ssl_context()

        def body(index: int) -> dict[str, object]:
            messages = [{"role": "user", "content": f"raw {next(counter)} {index}"}]
            return {"model": lm.model_name, **lm.kwargs, "messages": messages}

        # One client (and keep-alive connection) per caller index, reused across rounds
        # like the Client actor's kept-alive connections.
        own_clients = [httpx.Client(timeout=30.0, verify=ssl_context) for _ in range(args.calls)]

        def raw_call(index: int) -> object:
            client = own_clients[index]
            return client.post(url, json=body(index)).raise_for_status().json()

        limits = httpx.Limits(max_connections=args.calls, max_keepalive_connections=args.calls)
        with httpx.Client(timeout=30.0, limits=limits) as shared_client:

            def shared_call(index: int) -> object:
                return shared_client.post(url, json=body(index)).raise_for_status().json()

            timed(args.calls, shared_call)
            shared = [timed(args.calls, shared_call) for _ in range(args.repeats)]

        parts = urlsplit(url)

        connections = [
            http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port)
            for _ in range(args.calls)
        ]

        def stdlib_call(index: int) -> object:
            conn = connections[index]
            headers = {"Content-Type": "application/json"}
            conn.request("POST", parts.path, body=json.dumps(body(index)), headers=headers)
            return json.loads(conn.getresponse().read())

        timed(args.calls, lambda i: time.sleep(args.latency))
        sleep_only = [
            timed(args.calls, lambda i: time.sleep(args.latency)) for _ in range(args.repeats)
        ]

        sockets = [
            socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80))
            for _ in range(args.calls)
        ]
        readers = [sock.makefile("rb") for sock in sockets]
        for sock in sockets:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def socket_call(index: int) -> object:
            data = json.dumps(body(index)).encode()
            head = (
                f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
            )
            sockets[index].sendall(head.encode() + data)
            reader = readers[index]
            reader.readline()
            length = 0
            while (line := reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.partition(b":")
                if name.lower() == b"content-length":
                    length = int(value)
            return json.loads(reader.read(length))

        timed(args.calls, socket_call)
        raw_socket = [timed(args.calls, socket_call) for _ in range(args.repeats)]
        for reader, sock in zip(readers, sockets, strict=True):
            reader.close()
            sock.close()

        timed(args.calls, raw_call)
        raw = [timed(args.calls, raw_call) for _ in range(args.repeats)]
        timed(args.calls, stdlib_call)
        stdlib = [timed(args.calls, stdlib_call) for _ in range(args.repeats)]
        for client in own_clients:
            client.close()
        for conn in connections:
            conn.close()

        with dx.ActorSystem(lm=lm) as system:

            def uncached(index: int) -> object:
                request = lm.make_request(f"client {next(counter)} {index}", cache=False)
                return system.request(request)

            timed(args.calls, uncached)  # warm-up: connections, threads
            client = [timed(args.calls, uncached) for _ in range(args.repeats)]

            misses, hits = [], []
            for repeat in range(args.repeats + 1):
                requests = [lm.make_request(f"cache {repeat} {i}") for i in range(args.calls)]

                def cached(index: int, requests: list[LMRequest] = requests) -> object:
                    return system.request(requests[index])

                miss = timed(args.calls, cached)
                hit = timed(args.calls, cached)
                if repeat:  # the first pair is the warm-up
                    misses.append(miss)
                    hits.append(hit)
            stats = system.stats()

    limit = args.latency
    baseline = statistics.median(raw)
    print(f"{args.calls} concurrent calls, server latency {limit * 1000:.0f} ms, "
          f"median of {args.repeats} rounds; ratio = wall / latency (target <= 1.2), "
          "vs raw = wall / raw-httpx wall:")
    rows = (
        ("sleep only", sleep_only),
        ("raw socket", raw_socket),
        ("raw httpx", raw),
        ("shared pool", shared),
        ("http.client", stdlib),
        ("client", client),
        ("cache misses", misses),
        ("cache hits", hits),
    )
    for label, walls in rows:
        wall = statistics.median(walls)
        print(f"  {label:<13} wall {wall * 1000:7.1f} ms   ratio {wall / limit:5.2f}   "
              f"vs raw {wall / baseline:5.2f}")
    (client_stats,) = stats["clients"].values()
    print(f"  server max in flight seen by the client: {client_stats['max_in_flight']}, "
          f"breaker {client_stats['breaker']['state']}, cache hits {stats['cache']['hits']}")


if __name__ == "__main__":
    main()
