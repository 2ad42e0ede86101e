"""Stable names: a ChildHandle always reaches the current incarnation."""

from __future__ import annotations

import threading
import time

import pykka
import pytest
from supervision_helpers import WAIT, Recorder, Worker

from supervision import (
    ChildHandle,
    ChildRestartTimeoutError,
    ChildSpec,
    Supervisor,
    SupervisorStoppedError,
)


def test_handle_reaches_the_new_incarnation_and_the_old_ref_is_dead(
    recorder: Recorder, supervisors
):
    sup = supervisors([ChildSpec("w", lambda: Worker.start("w", recorder))])
    handle = sup.proxy().handle("w").get(timeout=WAIT)
    assert handle == ChildHandle(sup, "w")
    old_ref = handle.ref()
    old_proxy = handle.proxy()
    assert handle.proxy() is old_proxy  # cached for the incarnation
    assert handle.ask("bump", timeout=WAIT) == 1

    handle.tell("boom")
    recorder.next("failure", "w")

    with pytest.raises(pykka.ActorDeadError):
        old_ref.ask("count", timeout=WAIT)  # a call to the dead incarnation
    new_proxy = handle.proxy(timeout=WAIT)
    assert new_proxy is not old_proxy
    assert new_proxy.actor_ref.actor_urn != old_ref.actor_urn
    assert handle.ask("count", timeout=WAIT) == 0
    future = handle.ask("bump", block=False)
    assert future.get(timeout=WAIT) == 1


def test_handle_waits_a_bounded_time_while_the_child_restarts(recorder: Recorder, supervisors):
    gate = threading.Event()
    calls: list[int] = []

    def start() -> pykka.ActorRef[Worker]:
        calls.append(1)
        if len(calls) > 1:  # the restart is slow until the test opens the gate
            assert gate.wait(WAIT)
        return Worker.start("slow", recorder)

    sup = supervisors([ChildSpec("slow", start)])
    handle = ChildHandle(sup, "slow")
    handle.tell("boom")
    recorder.next("failure", "slow")

    began = time.monotonic()
    with pytest.raises(ChildRestartTimeoutError, match="'slow'"):
        handle.ref(timeout=0.2)
    assert time.monotonic() - began >= 0.2

    waiter_result: list[pykka.ActorRef[Worker]] = []
    waiter = threading.Thread(target=lambda: waiter_result.append(handle.ref(timeout=WAIT)))
    waiter.start()
    gate.set()
    waiter.join(WAIT)
    new_urn = recorder.next("start", "slow")[2]
    assert [r.actor_urn for r in waiter_result] == [new_urn]


def test_handle_after_the_supervisor_stopped_raises(recorder: Recorder):
    sup = Supervisor.start([ChildSpec("w", lambda: Worker.start("w", recorder))])
    handle = ChildHandle(sup, "w")
    assert handle.ref().is_alive()
    sup.stop(timeout=WAIT)
    with pytest.raises(SupervisorStoppedError):
        handle.ref(timeout=WAIT)
    with pytest.raises(SupervisorStoppedError):
        ChildHandle(sup, "w").tell("bump")


def test_child_handle_rejects_a_ref_that_is_not_a_supervisor(recorder: Recorder):
    ref = Worker.start("w", recorder)
    try:
        with pytest.raises(TypeError, match="Supervisor"):
            ChildHandle(ref, "w")
    finally:
        ref.stop(timeout=WAIT)
