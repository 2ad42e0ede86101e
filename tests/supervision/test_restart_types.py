"""Restart types: permanent, transient (abnormal exits only), temporary (never)."""

from __future__ import annotations

import pykka
import pytest
from supervision_helpers import WAIT, Recorder, Worker, worker_spec

from supervision import (
    ChildHandle,
    ChildNotFoundError,
    ChildNotRunningError,
    ChildSpec,
    Supervised,
)


def test_permanent_child_is_restarted_even_after_a_normal_stop(recorder: Recorder, supervisors):
    sup = supervisors([worker_spec("p", recorder, restart="permanent")])
    handle = ChildHandle(sup, "p")
    old = handle.ref()

    old.stop()  # a stop the supervisor did not ask for

    recorder.next("stop", "p")
    new_urn = recorder.next("start", "p")[2]
    assert handle.ref(timeout=WAIT).actor_urn == new_urn != old.actor_urn
    assert sup.proxy().restart_count("p").get(timeout=WAIT) == 1


def test_transient_child_is_restarted_after_a_crash_only(recorder: Recorder, supervisors):
    sup = supervisors([worker_spec("t", recorder, restart="transient")])
    handle = ChildHandle(sup, "t")

    handle.tell("boom")
    recorder.next("failure", "t")
    crashed_restart = recorder.next("start", "t")[2]
    assert handle.ref(timeout=WAIT).actor_urn == crashed_restart

    handle.ref().stop()  # normal exit: not restarted
    with pytest.raises(ChildNotRunningError, match="'t'"):
        handle.ref(timeout=WAIT)  # waits for the supervisor to process the exit
    [info] = sup.proxy().which_children().get(timeout=WAIT)
    assert (info.state, info.alive, info.ref, info.restart_count) == ("stopped", False, None, 1)


def test_transient_child_exiting_abnormally_on_its_own_is_restarted(supervisors):
    class Quitter(Supervised, pykka.ThreadingActor):
        def on_receive(self, message: object) -> None:
            self.exit_abnormally(RuntimeError("giving up on purpose"))

    sup = supervisors([ChildSpec("q", Quitter.start, restart="transient")])
    handle = ChildHandle(sup, "q")
    old = handle.ref()
    handle.tell("quit")
    assert old.actor_stopped.wait(WAIT)
    new = handle.ref(timeout=WAIT)
    assert new.actor_urn != old.actor_urn
    assert sup.proxy().restart_count("q").get(timeout=WAIT) == 1


def test_temporary_child_is_never_restarted_and_is_forgotten(recorder: Recorder, supervisors):
    sup = supervisors(
        [worker_spec("tmp", recorder, restart="temporary"), worker_spec("x", recorder)]
    )
    handle = ChildHandle(sup, "tmp")

    handle.tell("boom")

    recorder.next("failure", "tmp")
    with pytest.raises(ChildNotFoundError, match="'tmp'"):
        handle.ref(timeout=WAIT)
    ids = [i.id for i in sup.proxy().which_children().get(timeout=WAIT)]
    assert ids == ["x"]
    assert sup.proxy().total_restarts().get(timeout=WAIT) == 0


def test_plain_pykka_actor_child_is_watched_and_restarted(supervisors):
    class Plain(pykka.ThreadingActor):
        def on_receive(self, message: object) -> None:
            raise RuntimeError("plain crash")

    sup = supervisors([ChildSpec("plain", Plain.start)])
    handle = ChildHandle(sup, "plain")
    old = handle.ref()
    handle.tell("boom")
    assert old.actor_stopped.wait(WAIT)
    assert handle.ref(timeout=WAIT).actor_urn != old.actor_urn
    assert sup.proxy().restart_count("plain").get(timeout=WAIT) == 1


def test_supervised_actor_outside_a_supervisor_behaves_like_a_pykka_actor(recorder: Recorder):
    ref = Worker.start("solo", recorder, None)
    try:
        assert ref.ask("bump", timeout=WAIT) == 1
    finally:
        ref.stop(timeout=WAIT)
    assert recorder.take(2)[1][:2] == ("stop", "solo")
