"""Helpers for the supervision tests: a recording worker actor and its child specs."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pykka

from supervision import ChildSpec, Supervised

WAIT = 10.0  # generous: the machine is shared


@dataclass
class Recorder:
    """Thread-safe log of actor life events: ("start" | "stop" | "failure", name, urn)."""

    events: queue.Queue[tuple[str, str, str]] = field(default_factory=queue.Queue)
    seen: list[tuple[str, str, str]] = field(default_factory=list)

    def put(self, kind: str, name: str, urn: str) -> None:
        self.events.put((kind, name, urn))

    def next(self, kind: str | None = None, name: str | None = None) -> tuple[str, str, str]:
        """The next event matching kind/name (others are kept in ``seen``); bounded wait."""
        while True:
            event = self.events.get(timeout=WAIT)
            self.seen.append(event)
            if (kind is None or event[0] == kind) and (name is None or event[1] == name):
                return event

    def drain(self) -> list[tuple[str, str, str]]:
        """Move every event already queued into ``seen`` (no waiting); return ``seen``."""
        while True:
            try:
                self.seen.append(self.events.get_nowait())
            except queue.Empty:
                return self.seen

    def take(self, count: int) -> list[tuple[str, str, str]]:
        """The next ``count`` events in order."""
        return [self.next() for _ in range(count)]


class Worker(Supervised, pykka.ThreadingActor):
    """A counter actor; ``"boom"`` told to it raises. Its hooks do not call super()."""

    def __init__(
        self, name: str, recorder: Recorder, fail_on_start: Callable[[], bool] | None = None
    ):
        super().__init__()
        self.name = name
        self.recorder = recorder
        self.fail_on_start = fail_on_start
        self.count = 0

    def on_start(self) -> None:
        if self.fail_on_start is not None and self.fail_on_start():
            self.recorder.put("start-failed", self.name, self.actor_urn)
            raise RuntimeError(f"{self.name} cannot start")
        self.recorder.put("start", self.name, self.actor_urn)

    def on_stop(self) -> None:
        self.recorder.put("stop", self.name, self.actor_urn)

    def on_failure(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
        self.recorder.put("failure", self.name, self.actor_urn)

    def on_receive(self, message: Any) -> Any:
        if message == "boom":
            raise RuntimeError(f"{self.name} crashed")
        if message == "bump":
            self.count += 1
            return self.count
        if message == "count":
            return self.count
        return None


def worker_spec(name: str, recorder: Recorder, **kwargs: Any) -> ChildSpec:
    fail_on_start = kwargs.pop("fail_on_start", None)
    return ChildSpec(id=name, start=lambda: Worker.start(name, recorder, fail_on_start), **kwargs)


def new_threads(baseline: set[threading.Thread]) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t not in baseline and t.is_alive()]
