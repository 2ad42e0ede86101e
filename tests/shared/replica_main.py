"""A replica: one process with an ActorSystem, driven by JSON lines on stdin (for tests).

``python tests/shared/replica_main.py CONFIG_JSON``; CONFIG: ``lm`` (LM keyword arguments),
``system`` (ActorSystem keyword arguments, ``redis_url`` among them). It prints
``{"ready": true}`` once its Client actor runs, then answers each command with one line.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any

from dspex_actors import LM, CircuitOpenError, LMError
from dspex_actors.lm import LMRequest
from dspex_actors.system import ActorSystem


def _request(question: str, *, cache: bool = True) -> LMRequest:
    return LMRequest(messages=({"role": "user", "content": question},), cache=cache)


def _ask(system: ActorSystem, command: dict[str, Any]) -> dict[str, Any]:
    """Each of ``threads`` threads asks every question, released together."""
    questions: list[str] = command["questions"]
    threads = int(command.get("threads", 1))
    barrier = threading.Barrier(threads)
    results: list[list[Any]] = [[] for _ in range(threads)]

    def run(index: int) -> None:
        barrier.wait(30)
        for question in questions:
            try:
                response = system.request(_request(question))
                results[index].append({"text": response.texts[0], "cached": response.cached})
            except LMError as exc:
                results[index].append({"error": type(exc).__name__, "message": str(exc)})

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    return {"results": [r for rs in results for r in rs]}


def _flood(system: ActorSystem, command: dict[str, Any]) -> dict[str, Any]:
    """Uncached calls from ``threads`` threads until wall-clock time ``until``."""
    until = float(command["until"])
    done = [0]
    lock = threading.Lock()

    def run(index: int) -> None:
        count = 0
        while time.time() < until:
            try:
                system.request(_request(f"flood {index} {count}", cache=False))
            except LMError:
                return
            count += 1
            with lock:
                done[0] += 1

    # Daemon threads: a call still queued at ``until`` ends when the system stops.
    workers = [
        threading.Thread(target=run, args=(i,), daemon=True) for i in range(int(command["threads"]))
    ]
    for worker in workers:
        worker.start()
    time.sleep(max(0.0, until - time.time()))
    with lock:
        return {"done": done[0]}


def _wait_breaker(system: ActorSystem, command: dict[str, Any]) -> dict[str, Any]:
    deadline = time.monotonic() + float(command.get("timeout", 10))
    while time.monotonic() < deadline:
        states = [b["state"] for b in system.stats()["breakers"].values()]
        if "open" in states:
            return {"state": "open"}
        time.sleep(0.01)
    return {"state": "not open"}


def main() -> None:
    config = json.loads(sys.argv[1])
    lm = LM(**config["lm"])
    system = ActorSystem(lm=lm, **config.get("system", {})).start()
    try:
        system.client_handle(lm)
        print(json.dumps({"ready": True}), flush=True)
        for line in sys.stdin:
            command = json.loads(line)
            op = command["op"]
            if op == "exit":
                break
            if op == "ask":
                reply = _ask(system, command)
            elif op == "flood":
                reply = _flood(system, command)
            elif op == "wait_breaker_open":
                reply = _wait_breaker(system, command)
            elif op == "call_once":
                try:
                    response = system.request(_request(command["question"]))
                    reply = {"text": response.texts[0]}
                except CircuitOpenError as exc:
                    reply = {"error": "CircuitOpenError", "message": str(exc)}
                except LMError as exc:
                    reply = {"error": type(exc).__name__, "message": str(exc)}
            elif op == "stats":
                stats = system.stats()
                reply = {"redis": stats["redis"], "cache": stats["cache"]}
            else:
                reply = {"error": f"unknown op {op!r}"}
            print(json.dumps(reply), flush=True)
    finally:
        system.stop()


if __name__ == "__main__":
    main()
