"""Start/stop order, children added and removed at run time, thread hygiene."""

from __future__ import annotations

import queue
import threading

import pykka
import pytest
from supervision_helpers import WAIT, Recorder, Worker, new_threads, worker_spec

from supervision import (
    ChildHandle,
    ChildNotFoundError,
    ChildNotRunningError,
    ChildSpec,
    Supervisor,
)


def test_children_start_in_order_and_stop_in_reverse_order(recorder: Recorder):
    exits: queue.Queue[BaseException | None] = queue.Queue()
    sup = Supervisor.start([worker_spec(n, recorder) for n in "abc"], on_exit=exits.put)
    assert [e[:2] for e in recorder.take(3)] == [("start", "a"), ("start", "b"), ("start", "c")]
    refs = [ChildHandle(sup, n).ref() for n in "abc"]

    assert sup.stop(timeout=WAIT) is True

    assert [e[:2] for e in recorder.take(3)] == [("stop", "c"), ("stop", "b"), ("stop", "a")]
    assert not any(ref.is_alive() for ref in refs)
    assert exits.get(timeout=WAIT) is None  # a requested stop: normal exit


def test_children_added_terminated_restarted_and_removed_at_run_time(
    recorder: Recorder, supervisors
):
    sup = supervisors([worker_spec("a", recorder)])
    proxy = sup.proxy()
    handle = proxy.start_child(worker_spec("client:x", recorder)).get(timeout=WAIT)
    assert isinstance(handle, ChildHandle)
    assert handle.ask("bump", timeout=WAIT) == 1
    assert [i.id for i in proxy.which_children().get(timeout=WAIT)] == ["a", "client:x"]

    proxy.terminate_child("client:x").get(timeout=WAIT)
    with pytest.raises(ChildNotRunningError):
        handle.ref(timeout=WAIT)
    proxy.restart_child("client:x").get(timeout=WAIT)
    assert handle.ask("count", timeout=WAIT) == 0
    assert proxy.restart_count("client:x").get(timeout=WAIT) == 0  # not an exit restart

    proxy.remove_child("client:x").get(timeout=WAIT)
    with pytest.raises(ChildNotFoundError):
        handle.ref(timeout=WAIT)
    with pytest.raises(ChildNotFoundError):
        proxy.restart_count("client:x").get(timeout=WAIT)
    assert [i.id for i in proxy.which_children().get(timeout=WAIT)] == ["a"]
    stops = [e[1] for e in recorder.drain() if e[0] == "stop"]  # on_stop ran before replies
    assert stops == ["client:x", "client:x"]


def test_no_thread_is_left_after_stopping_the_root_supervisor(recorder: Recorder):
    baseline = set(threading.enumerate())

    class Plain(pykka.ThreadingActor):
        pass

    def inner() -> pykka.ActorRef[Supervisor]:
        return Supervisor.start(
            [worker_spec("w1", recorder), ChildSpec("plain", Plain.start)],
            strategy="one_for_all",
        )

    root = Supervisor.start([ChildSpec("inner", inner), worker_spec("w2", recorder)])
    inner_ref = ChildHandle(root, "inner").ref()
    ChildHandle(inner_ref, "w1").tell("boom")  # one_for_all restart inside
    recorder.next("failure", "w1")
    recorder.next("start", "w1")
    assert ChildHandle(inner_ref, "plain").ref(timeout=WAIT).is_alive()  # restart finished
    assert len(new_threads(baseline)) >= 6  # 2 supervisors, 3 actors, 1 watcher

    root.stop(timeout=WAIT)

    leftover = new_threads(baseline)
    # Children are joined by their supervisor; only the root's own thread may still be ending.
    assert all(t.name.startswith("Supervisor-") for t in leftover), leftover
    for thread in leftover:
        thread.join(WAIT)
    assert new_threads(baseline) == []
    assert pykka.ActorRegistry.get_all() == []


def test_stop_all_in_the_registry_leaves_nothing_behind(recorder: Recorder):
    Supervisor.start([worker_spec("a", recorder), worker_spec("b", recorder)])
    pykka.ActorRegistry.stop_all(timeout=WAIT)
    assert pykka.ActorRegistry.get_by_class(Worker) == []
