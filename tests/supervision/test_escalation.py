"""on_start failures, restart intensity, escalation to a parent, nested supervisors."""

from __future__ import annotations

import itertools
import queue

import pykka
import pytest
from supervision_helpers import WAIT, Recorder, Worker, worker_spec

from supervision import (
    ChildHandle,
    ChildSpec,
    RestartIntensityError,
    Supervisor,
    SupervisorStoppedError,
)


def test_on_start_failure_is_noticed_and_the_child_restarted(recorder: Recorder, supervisors):
    attempts = itertools.count()
    sup = supervisors([worker_spec("w", recorder, fail_on_start=lambda: next(attempts) < 2)])
    assert [e[0] for e in recorder.take(3)] == ["start-failed", "start-failed", "start"]
    assert ChildHandle(sup, "w").ask("bump", timeout=WAIT) == 1
    assert sup.proxy().restart_count("w").get(timeout=WAIT) == 2


def test_intensity_exceeded_stops_all_children_and_reports_the_reason(
    recorder: Recorder, supervisors
):
    exits: queue.Queue[BaseException | None] = queue.Queue()
    sup = supervisors(
        [worker_spec("ok", recorder), worker_spec("bad", recorder, fail_on_start=lambda: True)],
        max_restarts=2,
        max_seconds=60.0,
        name="fragile",
        on_exit=exits.put,
    )
    reason = exits.get(timeout=WAIT)
    assert isinstance(reason, RestartIntensityError)
    assert "'fragile'" in str(reason) and "'bad'" in str(reason)
    assert isinstance(reason.__cause__, RuntimeError)
    assert sup.actor_stopped.wait(WAIT)
    recorder.next("stop", "ok")
    kinds = [e[:2] for e in recorder.seen]
    assert kinds.count(("start-failed", "bad")) == 3  # first start + 2 restarts
    assert ("stop", "ok") in kinds
    with pytest.raises(SupervisorStoppedError):
        ChildHandle(sup, "ok").ref(timeout=WAIT)


def test_a_restart_whose_start_raises_is_retried_until_the_supervisor_gives_up(
    recorder: Recorder, supervisors
):
    calls = itertools.count()

    def start() -> pykka.ActorRef[Worker]:
        if next(calls) > 0:
            raise OSError("resource gone")
        return Worker.start("w", recorder)

    exits: queue.Queue[BaseException | None] = queue.Queue()
    sup = supervisors([ChildSpec("w", start)], max_restarts=3, on_exit=exits.put)
    ChildHandle(sup, "w").tell("boom")
    reason = exits.get(timeout=WAIT)
    assert isinstance(reason, RestartIntensityError)
    assert "resource gone" in str(reason)
    assert next(calls) == 4  # initial start + 3 failed restarts, then it gave up


def test_nested_supervisor_escalates_and_its_parent_restarts_it(recorder: Recorder, supervisors):
    def inner() -> pykka.ActorRef[Supervisor]:
        return Supervisor.start([worker_spec("w", recorder)], max_restarts=0, name="inner")

    parent = supervisors([ChildSpec("inner", inner), worker_spec("sibling", recorder)])
    recorder.take(2)
    inner_handle = ChildHandle(parent, "inner")
    first_inner = inner_handle.ref()
    sibling = ChildHandle(parent, "sibling").ref()

    ChildHandle(first_inner, "w").tell("boom")  # inner gives up at once (max_restarts=0)

    assert first_inner.actor_stopped.wait(WAIT)
    new_w = recorder.next("start", "w")[2]
    second_inner = inner_handle.ref(timeout=WAIT)
    assert second_inner.actor_urn != first_inner.actor_urn
    assert ChildHandle(second_inner, "w").ref(timeout=WAIT).actor_urn == new_w
    assert parent.proxy().restart_count("inner").get(timeout=WAIT) == 1
    assert ChildHandle(parent, "sibling").ref() is sibling  # one_for_one: untouched


def test_escalation_reaches_the_root_which_gives_up_and_reports(recorder: Recorder, supervisors):
    exits: queue.Queue[BaseException | None] = queue.Queue()
    inner_exits: queue.Queue[BaseException | None] = queue.Queue()

    def inner() -> pykka.ActorRef[Supervisor]:
        return Supervisor.start(
            [worker_spec("w", recorder)], max_restarts=0, name="inner", on_exit=inner_exits.put
        )

    root = supervisors([ChildSpec("inner", inner)], max_restarts=0, name="root", on_exit=exits.put)
    recorder.next("start", "w")
    ChildHandle(ChildHandle(root, "inner").ref(), "w").tell("boom")

    inner_reason = inner_exits.get(timeout=WAIT)
    root_reason = exits.get(timeout=WAIT)
    assert isinstance(inner_reason, RestartIntensityError)
    assert isinstance(root_reason, RestartIntensityError)
    assert root_reason.__cause__ is inner_reason
    assert root.actor_stopped.wait(WAIT)
    assert pykka.ActorRegistry.get_by_class(Supervisor) == []
    assert pykka.ActorRegistry.get_by_class(Worker) == []
