"""Local LM server cost: its CPU per chat request, and the spread of simultaneous replies.

The server runs in a subprocess (``ServerProcess``), as in the other benchmarks; its CPU
is read from ``/proc/<pid>/stat`` (user + system, every thread) before and after N
sequential keep-alive requests sent with ``http.client``, for two prompts answered by the
default responder:

- plain:  one user message ("What is 3 + 4?");
- dspy:   a ChainOfThought-style DSPy chat-adapter prompt (system + user turn),

each over 70 questions that repeat (the default model caches its arithmetic, as in a
long run over a dev set). Figures are the median of ``--rounds`` rounds.

The same-run floor is a minimal asyncio server (a subprocess too) answering every request
with a fixed JSON body: what parsing HTTP and writing a reply cost at the least here. The
same fixed reply from an asyncio Protocol reading with httptools (and decoding the JSON
body) is what LocalLMServer's own transport costs before its responder runs; from
aiohttp's low-level web server, what a server on aiohttp.web would cost.

Spread: ``--concurrent`` DSPy requests (distinct questions) written back to back over
their own keep-alive connections by one selector-driven client thread (no client threads
competing for the GIL) while the server holds each reply ``--latency``; the figure is
the time from the first complete reply to the last, measured at the client. Writing 64
requests takes the client itself a while, so the script also prints that, and the
spread of the send-to-reply times (the part the server adds). It also prints how much
later than the configured latency a reply arrives on average, alone and 64 at once:
the benchmarks' physical limits count the latency only.

    python benchmarks/server_overhead.py [--requests 2000] [--rounds 5] [--concurrent 64]
                                         [--latency 0.05]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import selectors
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import NamedTuple

from dspex_actors.adapters import ChatAdapter
from dspex_actors.testing import ServerProcess

HEADERS = {"Content-Type": "application/json"}
PATH = "/v1/chat/completions"

_FIXED_REPLY = r"""
BODY = b'{"choices": [{"index": 0, "message": {"role": "assistant", "content": "42"}}]}'
REPLY = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
    + str(len(BODY)).encode() + b"\r\n\r\n" + BODY
)
"""


def _fixed_reply_server(imports: str, code: str, protocol: str) -> str:
    """A server script: ``imports``, BODY and REPLY, ``code``, then serving ``protocol``
    (an asyncio protocol factory) on a free port, which it prints."""
    return (
        imports
        + _FIXED_REPLY
        + code
        + f"""
async def main():
    server = await asyncio.get_running_loop().create_server({protocol}, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""
    )


FLOOR_SERVER = _fixed_reply_server(
    "import asyncio\n",
    r"""
class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport, self.buffer = transport, b""

    def data_received(self, data):
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            length = 0
            for line in self.buffer[:end].split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if len(self.buffer) < end + 4 + length:
                return
            self.buffer = self.buffer[end + 4 + length:]
            self.transport.write(REPLY)
""",
    "Echo",
)

HTTPTOOLS_SERVER = _fixed_reply_server(
    "import asyncio, json\nimport httptools\n",
    r"""
class Reader(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport, self.parser, self.body = transport, httptools.HttpRequestParser(self), []

    def data_received(self, data):
        self.parser.feed_data(data)

    def on_header(self, name, value):
        pass

    def on_body(self, body):
        self.body.append(body)

    def on_message_complete(self):
        json.loads(b"".join(self.body))
        self.body = []
        self.transport.write(REPLY)
""",
    "Reader",
)
"""The fixed reply from an asyncio Protocol parsing with httptools, the JSON body decoded:
LocalLMServer's transport and parser with nothing of its own."""

AIOHTTP_SERVER = _fixed_reply_server(
    "import asyncio\nfrom aiohttp import web\n",
    r"""
async def handler(request):
    await request.read()
    return web.Response(body=BODY, content_type="application/json")
""",
    "web.Server(handler, access_log=None)",
)
"""aiohttp's low-level web server (no router, no Application) with the same fixed reply:
what moving the local server onto it would cost per request at the least."""


def process_cpu(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of process ``pid``, all its threads, live and exited."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def question(i: int) -> str:
    """One of 70 questions: the warm-up round meets each (the default model caches its sums)."""
    return f"What is {i % 10} + {i % 7}?"


def plain_body(i: int) -> bytes:
    messages = [{"role": "user", "content": question(i)}]
    return json.dumps({"model": "local-model", "messages": messages}).encode()


def dspy_body(i: int) -> bytes:
    messages = ChatAdapter().format(
        "question -> reasoning, answer: int", [], {"question": question(i)}
    )
    payload = {"model": "local-model", "messages": messages, "temperature": 0.0, "max_tokens": 1000}
    return json.dumps(payload).encode()


def post_all(conn: http.client.HTTPConnection, bodies: Sequence[bytes]) -> None:
    for body in bodies:
        conn.request("POST", PATH, body, HEADERS)
        reply = conn.getresponse()
        reply.read()
        if reply.status != 200:
            raise RuntimeError(f"server replied {reply.status}")


class Cost(NamedTuple):
    """Per-request figures in µs: server CPU (user + system) and the client's wall time."""

    user: float
    system: float
    wall: float

    @property
    def cpu(self) -> float:
        return self.user + self.system


def cpu_per_request(pid: int, port: int, bodies: Sequence[bytes], rounds: int) -> Cost:
    """Median over ``rounds`` of the server's CPU per request on one keep-alive connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    costs = []
    try:
        post_all(conn, bodies[:100])  # warm-up: connection, imports, caches
        for _ in range(rounds):
            (user0, sys0), wall0 = process_cpu(pid), time.perf_counter()
            post_all(conn, bodies)
            (user1, sys1), wall1 = process_cpu(pid), time.perf_counter()
            scale = 1e6 / len(bodies)
            costs.append(
                Cost((user1 - user0) * scale, (sys1 - sys0) * scale, (wall1 - wall0) * scale)
            )
    finally:
        conn.close()
    return sorted(costs, key=lambda cost: cost.cpu)[len(costs) // 2]


def describe(label: str, cost: Cost, floor: Cost | None = None) -> str:
    ratio = f"  ({cost.cpu / floor.cpu:.1f}x floor)" if floor is not None else ""
    return (
        f"  {label:38} {cost.cpu:6.1f} us CPU (user {cost.user:5.1f} + sys {cost.system:5.1f})"
        f"  {cost.wall:6.1f} us wall{ratio}"
    )


def _reply_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    raise RuntimeError(f"reply without Content-Length: {head[:200]!r}")


class Spread(NamedTuple):
    """One round of simultaneous requests, in ms."""

    replies: float
    """First complete reply to last."""
    sends: float
    """First request written to last (the client's own share of ``replies``)."""
    held: float
    """Longest minus shortest send-to-reply time: what the server adds to the spread."""
    wait: float
    """Mean send-to-reply time (the held latency plus what the server adds to it)."""


def simultaneous_round(socks: Sequence[socket.socket], bodies: Sequence[bytes]) -> Spread:
    """Write one request on every socket back to back, then collect every reply."""
    requests = [
        (
            f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        + body
        for body in bodies
    ]
    buffers = dict.fromkeys(socks, b"")
    sent: dict[socket.socket, float] = {}
    done: dict[socket.socket, float] = {}
    with selectors.DefaultSelector() as selector:
        for sock, request in zip(socks, requests, strict=True):
            sock.sendall(request)
            sent[sock] = time.perf_counter()
            selector.register(sock, selectors.EVENT_READ)
        deadline = time.monotonic() + 30
        while len(done) < len(socks):
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {len(done)} of {len(socks)} replies within 30 s")
            for key, _ in selector.select(1.0):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                chunk = sock.recv(65536)
                if not chunk:
                    raise RuntimeError("server closed a connection")
                buffers[sock] += chunk
                head_end = buffers[sock].find(b"\r\n\r\n")
                if head_end < 0:
                    continue
                if len(buffers[sock]) >= head_end + 4 + _reply_length(buffers[sock][:head_end]):
                    done[sock] = time.perf_counter()
                    selector.unregister(sock)
    waits = [done[sock] - sent[sock] for sock in socks]
    return Spread(
        (max(done.values()) - min(done.values())) * 1e3,
        (max(sent.values()) - min(sent.values())) * 1e3,
        (max(waits) - min(waits)) * 1e3,
        statistics.mean(waits) * 1e3,
    )


def reply_spread(port: int, concurrent: int, rounds: int) -> Spread:
    """Medians over ``rounds`` of ``concurrent`` simultaneous DSPy requests (distinct prompts)."""
    socks = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(concurrent)]
    try:
        for sock in socks:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        bodies = [dspy_body(i) for i in range(concurrent)]
        simultaneous_round(socks, bodies)  # warm-up: every connection served once
        spreads = [simultaneous_round(socks, bodies) for _ in range(rounds)]
    finally:
        for sock in socks:
            sock.close()
    return Spread(*(statistics.median(values) for values in zip(*spreads, strict=True)))


@contextmanager
def floor_server(code: str = FLOOR_SERVER) -> Iterator[tuple[int, int]]:
    """(pid, port) of the minimal asyncio server (or another fixed-reply server's)."""
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        yield proc.pid, int(proc.stdout.readline())
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="sequential requests per round")
    parser.add_argument("--concurrent", type=int, default=64)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    kinds = {
        "plain": [plain_body(i) for i in range(args.requests)],
        "dspy": [dspy_body(i) for i in range(args.requests)],
    }
    tick_us = 1e6 / os.sysconf("SC_CLK_TCK") / args.requests
    print(
        f"server CPU per chat request: {args.requests} sequential keep-alive requests, "
        f"median of {args.rounds} (resolution {tick_us:.1f} us)"
    )
    with floor_server() as (pid, port):
        floor = cpu_per_request(pid, port, kinds["plain"], args.rounds)
    print(describe("floor (minimal asyncio, fixed reply)", floor))
    with floor_server(HTTPTOOLS_SERVER) as (pid, port):
        httptools_cost = cpu_per_request(pid, port, kinds["plain"], args.rounds)
    print(describe("asyncio + httptools + json, fixed reply", httptools_cost, floor))
    with floor_server(AIOHTTP_SERVER) as (pid, port):
        aiohttp_cost = cpu_per_request(pid, port, kinds["plain"], args.rounds)
    print(describe("aiohttp.web.Server, fixed reply", aiohttp_cost, floor))

    with ServerProcess(latency=0.0) as server:
        assert server.pid is not None
        for kind, bodies in kinds.items():
            cost = cpu_per_request(server.pid, server.port, bodies, args.rounds)
            print(describe(f"LocalLMServer, {kind} prompt", cost, floor))
        server.set_latency(args.latency, 0.0)
        alone = reply_spread(server.port, 1, args.rounds * 10)
        spread = reply_spread(server.port, args.concurrent, args.rounds)
    latency_ms = args.latency * 1e3
    print(
        f"reply time over the {latency_ms:g} ms latency (send to complete reply, at the "
        f"client; the benchmarks' physical limit assumes 0): one request at a time "
        f"{alone.wait - latency_ms:.2f} ms, {args.concurrent} at once "
        f"{spread.wait - latency_ms:.2f} ms"
    )
    print(
        f"{args.concurrent} simultaneous DSPy requests at {latency_ms:g} ms latency, "
        f"median of {args.rounds}:\n"
        f"  replies first to last {spread.replies:5.2f} ms  (the client's sends took "
        f"{spread.sends:.2f} ms; server-added spread of send-to-reply times "
        f"{spread.held:.2f} ms)"
    )


if __name__ == "__main__":
    main()
