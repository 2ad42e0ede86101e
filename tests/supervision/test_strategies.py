"""Each restart strategy, and a crash in a ``tell`` restarting the child with fresh state."""

from __future__ import annotations

from supervision_helpers import WAIT, Recorder, worker_spec

from supervision import ChildHandle


def test_one_for_one_restarts_only_the_crashed_child_with_fresh_state(
    recorder: Recorder, supervisors
):
    sup = supervisors([worker_spec("a", recorder), worker_spec("b", recorder)])
    a, b = ChildHandle(sup, "a"), ChildHandle(sup, "b")
    assert [a.ask("bump", timeout=WAIT) for _ in range(3)] == [1, 2, 3]
    assert b.ask("bump", timeout=WAIT) == 1
    old_a, old_b = a.ref(), b.ref()

    a.tell("boom")

    assert recorder.next("failure", "a")[2] == old_a.actor_urn
    new_urn = recorder.next("start", "a")[2]
    assert a.ref(timeout=WAIT).actor_urn == new_urn != old_a.actor_urn
    assert a.ask("count", timeout=WAIT) == 0  # fresh state
    assert b.ref() is old_b and b.ask("count", timeout=WAIT) == 1
    proxy = sup.proxy()
    assert proxy.restart_count("a").get(timeout=WAIT) == 1
    assert proxy.restart_count("b").get(timeout=WAIT) == 0
    assert proxy.total_restarts().get(timeout=WAIT) == 1


def test_one_for_all_stops_the_others_in_reverse_and_restarts_all_in_order(
    recorder: Recorder, supervisors
):
    sup = supervisors(
        [worker_spec(n, recorder) for n in "abc"], strategy="one_for_all", max_restarts=5
    )
    assert [e[:2] for e in recorder.take(3)] == [("start", "a"), ("start", "b"), ("start", "c")]
    before = {n: ChildHandle(sup, n).ref().actor_urn for n in "abc"}

    ChildHandle(sup, "b").tell("boom")

    events = [e[:2] for e in recorder.take(6)]
    assert events == [
        ("failure", "b"),
        ("stop", "c"),
        ("stop", "a"),
        ("start", "a"),
        ("start", "b"),
        ("start", "c"),
    ]
    after = {n: ChildHandle(sup, n).ref(timeout=WAIT).actor_urn for n in "abc"}
    assert all(after[n] != before[n] for n in "abc")
    infos = sup.proxy().which_children().get(timeout=WAIT)
    assert [(i.id, i.restart_count, i.alive) for i in infos] == [
        ("a", 1, True),
        ("b", 1, True),
        ("c", 1, True),
    ]


def test_rest_for_one_restarts_the_crashed_child_and_those_started_after_it(
    recorder: Recorder, supervisors
):
    sup = supervisors([worker_spec(n, recorder) for n in "abcd"], strategy="rest_for_one")
    recorder.take(4)
    a_before = ChildHandle(sup, "a").ref()

    ChildHandle(sup, "b").tell("boom")

    events = [e[:2] for e in recorder.take(6)]
    assert events == [
        ("failure", "b"),
        ("stop", "d"),
        ("stop", "c"),
        ("start", "b"),
        ("start", "c"),
        ("start", "d"),
    ]
    assert ChildHandle(sup, "a").ref() is a_before and a_before.is_alive()
    counts = {i.id: i.restart_count for i in sup.proxy().which_children().get(timeout=WAIT)}
    assert counts == {"a": 0, "b": 1, "c": 1, "d": 1}
