"""Shared fixtures: every test ends with no actor and no extra thread left running."""

from __future__ import annotations

import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pykka
import pytest

from dspex_actors.lm import LMRequest
from dspex_actors.system import ActorSystem
from tests._support import user

if TYPE_CHECKING:
    from dspex_actors.testing import LocalLMServer
    from tests._proxy import TinyProxy

LEAK_WAIT_SECONDS = 10.0


def _wait_for_threads_to_end(
    baseline: set[threading.Thread], timeout: float
) -> list[threading.Thread]:
    """Join every thread not in ``baseline`` within ``timeout``; return those still alive."""
    deadline = time.monotonic() + timeout
    for thread in threading.enumerate():
        if thread in baseline or thread is threading.current_thread():
            continue
        if isinstance(thread, threading._DummyThread):
            continue  # started outside Python (Ray's core worker): never ours, cannot be joined
        thread.join(max(0.0, deadline - time.monotonic()))
    return [
        t
        for t in threading.enumerate()
        if t not in baseline and t.is_alive() and not isinstance(t, threading._DummyThread)
    ]


def _stacks(threads: list[threading.Thread]) -> str:
    """Each thread's name and current stack, to show where a leaked thread is stuck."""
    frames = sys._current_frames()
    parts = []
    for thread in threads:
        frame = frames.get(thread.ident) if thread.ident is not None else None
        stack = "".join(traceback.format_stack(frame)) if frame is not None else "  (no frame)\n"
        parts.append(f"{thread.name}:\n{stack}")
    return "".join(parts)


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    """Fail the test if it leaves an actor or a thread behind after its fixtures stop."""
    baseline = set(threading.enumerate())
    yield
    from dspex_actors.system import shutdown_default

    shutdown_default(reset=True)  # the lazily started default system of dx.configure()
    leftover_actors = pykka.ActorRegistry.get_all()
    pykka.ActorRegistry.stop_all(timeout=LEAK_WAIT_SECONDS)
    leaked = _wait_for_threads_to_end(baseline, LEAK_WAIT_SECONDS)
    assert not leftover_actors, f"actors left running after the test: {leftover_actors}"
    assert not leaked, f"threads left running after the test:\n{_stacks(leaked)}"


@pytest.fixture
def lm_server() -> Iterator[LocalLMServer]:
    """A running LocalLMServer with the default responder; ``.url`` is the api_base."""
    from dspex_actors.testing import LocalLMServer

    with LocalLMServer() as server:
        yield server


@pytest.fixture
def make_lm_server() -> Iterator[Callable[..., LocalLMServer]]:
    """Factory: ``make_lm_server(responder=None, latency=..., ...)`` → a started server.

    Takes LocalLMServer's arguments; every server it made is stopped after the test.
    """
    from dspex_actors.testing import LocalLMServer

    servers: list[LocalLMServer] = []

    def factory(responder: Any = None, **kwargs: Any) -> LocalLMServer:
        server = LocalLMServer(responder, **kwargs).start()
        servers.append(server)
        return server

    yield factory
    for server in reversed(servers):
        server.stop()


@pytest.fixture
def tinyproxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TinyProxy]:
    """A running tinyproxy forward proxy (``.url``, ``forwarded()``), stopped at teardown.

    Its config and log stay in pytest's temp dir for post-mortems. A missing
    ``tinyproxy`` binary is an error, never a skip.
    """
    from tests._proxy import TinyProxy

    with TinyProxy(directory=tmp_path_factory.mktemp("tinyproxy")) as proxy:
        yield proxy


RAY_TEST_KEY = "sk-ray-workers-test-key"
"""The OPENAI_API_KEY of the Ray test cluster's workers (tests set the driver's to it)."""


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[Any]:
    """A real local Ray cluster (2 CPUs) for the whole session; its workers import this
    checkout and have ``OPENAI_API_KEY=RAY_TEST_KEY``. A missing ``ray`` is an error."""
    import os
    from pathlib import Path

    import ray

    root = str(Path(__file__).resolve().parent.parent)
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": path, "OPENAI_API_KEY": RAY_TEST_KEY}},
    )
    try:
        yield ray
    finally:
        ray.shutdown()


@pytest.fixture
def make_system() -> Iterator[Callable[..., ActorSystem]]:
    """``make_system(lm=..., **options)`` → a started ActorSystem, stopped at teardown.

    Retries wait 10 ms by default so retry tests stay fast.
    """
    systems: list[ActorSystem] = []

    def factory(*args: Any, **options: Any) -> ActorSystem:
        options.setdefault("retry_base_delay", 0.01)
        options.setdefault("retry_max_delay", 0.05)
        system = ActorSystem(*args, **options).start()
        systems.append(system)
        return system

    yield factory
    for system in reversed(systems):
        system.stop()


@pytest.fixture
def req() -> Callable[..., LMRequest]:
    """``req("text", **params)`` → a one-message LMRequest."""
    return user
