"""Helpers shared by the LM, cache and system tests."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any, BinaryIO

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


class LineReader:
    """The lines a child process writes to a pipe, read on a thread so waits are bounded.

    ``seen`` keeps every line read so far (for assertion messages).
    """

    def __init__(self, stream: IO[str]) -> None:
        self.seen: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def next(self, timeout: float = WAIT) -> str | None:
        """The next line, or None once the stream ended."""
        line = self._lines.get(timeout=timeout)
        if line is not None:
            self.seen.append(line)
        return line

    def wait_for(self, text: str, timeout: float = WAIT) -> str:
        """The first line from now on that contains ``text``."""
        while (line := self.next(timeout)) is not None:
            if text in line:
                return line
        joined = "\n".join(self.seen)
        raise AssertionError(f"the stream ended before {text!r}:\n{joined}")

    def rest(self, timeout: float = WAIT) -> list[str]:
        """Read to the end of the stream; every line seen."""
        while self.next(timeout) is not None:
            pass
        return self.seen


def server_usage(server: LocalLMServer) -> dict[str, int]:
    """The tokens the local server has counted, in the shape of an LM usage entry."""
    stats = server.stats()
    return {
        "prompt_tokens": stats.prompt_tokens,
        "completion_tokens": stats.completion_tokens,
        "total_tokens": stats.prompt_tokens + stats.completion_tokens,
    }
