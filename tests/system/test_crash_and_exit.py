"""A crashed Client is restarted and callers never hang; scripts never hang at exit."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dspex_actors import LMUnavailableError
from dspex_actors.lm import LM, LMRequest, LMResponse
from dspex_actors.system import ActorSystem
from dspex_actors.testing import LocalLMServer

WAIT = 30.0
REPO = Path(__file__).resolve().parents[2]

MakeSystem = Callable[..., ActorSystem]
Req = Callable[..., LMRequest]


def start_callers(fn: Callable[[int], Any], count: int) -> tuple[list[threading.Thread], list[Any]]:
    results: list[Any] = [None] * count

    def target(index: int) -> None:
        try:
            results[index] = fn(index)
        except Exception as exc:
            results[index] = exc

    threads = [threading.Thread(target=target, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    return threads, results




def test_client_crash_mid_traffic_is_restarted(
    make_lm_server: Callable[..., LocalLMServer], make_system: MakeSystem, req: Req
) -> None:
    server = make_lm_server(latency=0.3)
    lm = LM("openai/local-model", api_base=server.url)
    system = make_system(lm)
    handle = system.client_handle(lm)
    old = handle.ref()
    threads, results = start_callers(lambda i: system.request(req(f"q{i}", cache=False)), 6)
    server.wait_for_stats(lambda s: s.in_flight >= 1, WAIT)
    old.tell(object())  # an unknown message crashes the Client actor
    for thread in threads:
        thread.join(WAIT)
        assert not thread.is_alive(), "a caller hung after the crash"
    # Every caller ended: retried on the new Client, or a clear LMUnavailableError.
    assert all(isinstance(r, (LMResponse, LMUnavailableError)) for r in results), results
    assert not old.is_alive()
    assert handle.ref(timeout=WAIT).actor_urn != old.actor_urn
    assert system.stats()["restarts"][handle.child_id] == 1
    assert system.request(req("after the crash", cache=False)).texts


def test_client_crash_during_a_cached_call_retries_once_for_leader_and_followers(
    make_lm_server: Callable[..., LocalLMServer], make_system: MakeSystem, req: Req
) -> None:
    """Every waiter of the cut-off call retries once, and the retries coalesce again."""
    server = make_lm_server(latency=0.3)
    lm = LM("openai/local-model", api_base=server.url)
    system = make_system(lm)
    old = system.client_handle(lm).ref()
    threads, results = start_callers(lambda i: system.request(req("the same question")), 4)
    server.wait_for_stats(lambda s: s.in_flight >= 1, WAIT)
    old.tell(object())  # an unknown message crashes the Client actor
    for thread in threads:
        thread.join(WAIT)
        assert not thread.is_alive(), "a caller hung after the crash"
    assert all(isinstance(r, LMResponse) for r in results), results
    assert len({r.texts for r in results}) == 1
    assert server.stats().requests_total == 2  # the one cut off, and one retry for all four
    cache = system.stats()["cache"]
    assert (cache["misses"], cache["stores"], cache["in_flight_keys"]) == (2, 1, 0)
    assert system.request(req("the same question")).cached


def test_crash_fails_pending_calls_with_a_clear_error(
    make_lm_server: Callable[..., LocalLMServer], req: Req
) -> None:
    """Without the system's retry, the Client itself fails its pending futures."""
    from dspex_actors.lm import call_client

    server = make_lm_server(latency=0.5)
    lm = LM("openai/local-model", api_base=server.url)
    system = ActorSystem(lm).start()
    try:
        ref = system.client_handle(lm).ref()
        threads, results = start_callers(
            lambda i: call_client(ref, req(f"q{i}"), model=lm.model, endpoint=lm.endpoint), 3
        )
        server.wait_for_stats(lambda s: s.in_flight == 3, WAIT)
        ref.tell(object())
        for thread in threads:
            thread.join(WAIT)
            assert not thread.is_alive()
        assert all(isinstance(r, LMUnavailableError) for r in results), results
        assert all("crashed before the call finished" in str(r) for r in results)
    finally:
        system.stop()


def test_too_many_crashes_stop_the_system_with_a_clear_error(
    lm_server: LocalLMServer, make_system: MakeSystem, req: Req
) -> None:
    lm = LM("openai/local-model", api_base=lm_server.url)
    system = make_system(lm, max_restarts=1, max_seconds=60.0)
    handle = system.client_handle(lm)
    for _ in range(2):
        ref = handle.ref(timeout=WAIT)
        ref.tell(object())
        assert ref.actor_stopped.wait(WAIT)
    supervisor = system.supervisor
    assert supervisor is not None
    assert supervisor.actor_stopped.wait(WAIT)
    with pytest.raises(LMUnavailableError, match="not running"):
        system.request(req("hi"))


SCRIPT = textwrap.dedent(
    """
    import sys
    import dspex_actors as dx

    api_base, mode = sys.argv[1], sys.argv[2]
    lm = dx.LM("openai/local-model", api_base=api_base)
    if mode == "configure":
        dx.configure(lm=lm)
        print(lm("What is 2 + 3?")[0][:20])
    else:  # an explicit system the script forgets to stop
        system = dx.ActorSystem(lm=lm).start()
        print(system.request(lm.make_request("hi")).texts[0][:20])
    print("done", flush=True)
    """
)


@pytest.mark.parametrize("mode", ["configure", "forgotten-system"])
def test_script_exits_without_hanging(lm_server: LocalLMServer, mode: str, tmp_path: Path) -> None:
    script = tmp_path / "script.py"
    script.write_text(SCRIPT)
    path = os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
    env = dict(os.environ, PYTHONPATH=path)
    completed = subprocess.run(
        [sys.executable, str(script), lm_server.url, mode],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip().endswith("done")
    assert lm_server.stats().requests_total == 1
