"""Helpers shared by the LM, cache and system tests."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, BinaryIO

from dspex_actors.lm import LMRequest

if TYPE_CHECKING:
    from dspex_actors.testing import LocalLMServer

WAIT = 30.0


def user(text: str, **params: Any) -> LMRequest:
    """A one-message request; ``cache`` and ``rollout_id`` go to the request, the rest to params."""
    cache = params.pop("cache", True)
    rollout_id = params.pop("rollout_id", None)
    return LMRequest(
        messages=({"role": "user", "content": text},),
        params=params,
        cache=cache,
        rollout_id=rollout_id,
    )


def run_concurrently(fn: Callable[[int], Any], count: int) -> list[Any]:
    """Run ``fn(i)`` on ``count`` threads released together; results or exceptions, in order."""
    results: list[Any] = [None] * count
    barrier = threading.Barrier(count)

    def target(index: int) -> None:
        barrier.wait(WAIT)
        try:
            results[index] = fn(index)
        except BaseException as exc:
            results[index] = exc

    threads = [threading.Thread(target=target, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
        assert not thread.is_alive(), "a caller hung"
    return results


def read_request(reader: BinaryIO) -> bytes:
    """Read one HTTP request from a server-side socket file; return its Content-Length body."""
    length = 0
    while (line := reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length":
            length = int(value)
    return reader.read(length)


def server_usage(server: LocalLMServer) -> dict[str, int]:
    """The tokens the local server has counted, in the shape of an LM usage entry."""
    stats = server.stats()
    return {
        "prompt_tokens": stats.prompt_tokens,
        "completion_tokens": stats.completion_tokens,
        "total_tokens": stats.prompt_tokens + stats.completion_tokens,
    }
