"""Bad input gives a clear typed error naming the problem (and the child)."""

from __future__ import annotations

import pykka
import pytest
from supervision_helpers import WAIT, Recorder, Worker, worker_spec

from supervision import (
    ChildSpec,
    ChildSpecError,
    ChildStartError,
    SpecError,
    Supervisor,
)


def test_unknown_strategy(recorder: Recorder):
    with pytest.raises(SpecError, match="unknown strategy 'one_for_some'"):
        Supervisor.start([worker_spec("a", recorder)], strategy="one_for_some")  # type: ignore[arg-type]
    assert pykka.ActorRegistry.get_all() == []


def test_unknown_restart_type_names_the_child():
    with pytest.raises(
        ChildSpecError, match="child 'cache': unknown restart type 'sometimes'"
    ) as err:
        ChildSpec("cache", Worker.start, restart="sometimes")  # type: ignore[arg-type]
    assert err.value.child_id == "cache"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"id": "", "start": Worker.start}, "non-empty"),
        ({"id": "x", "start": "Worker.start"}, "child 'x': start must be a callable"),
        ({"id": "x", "start": Worker.start, "shutdown_timeout": 0}, "child 'x': shutdown_timeout"),
    ],
)
def test_bad_child_spec_fields(kwargs, match):
    with pytest.raises(ChildSpecError, match=match):
        ChildSpec(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_restarts": -1}, "max_restarts"),
        ({"max_seconds": 0}, "max_seconds"),
        ({"children": ["not a spec"]}, "expected a ChildSpec"),
    ],
)
def test_bad_supervisor_arguments(kwargs, match):
    with pytest.raises(SpecError, match=match):
        Supervisor.start(**kwargs)


def test_duplicate_child_ids_name_the_child(recorder: Recorder, supervisors):
    with pytest.raises(ChildSpecError, match="child 'a': duplicate child id"):
        Supervisor.start([worker_spec("a", recorder), worker_spec("a", recorder)])
    sup = supervisors([worker_spec("a", recorder)])
    with pytest.raises(ChildSpecError, match="child 'a': duplicate child id"):
        sup.proxy().start_child(worker_spec("a", recorder)).get(timeout=WAIT)


def test_start_not_returning_an_actor_ref_is_detected_at_start_and_names_the_child(
    recorder: Recorder,
):
    specs = [
        worker_spec("ok", recorder),
        ChildSpec("proxy", lambda: Worker.start("p", recorder).proxy()),  # type: ignore[arg-type,return-value]
    ]
    with pytest.raises(
        ChildSpecError, match=r"child 'proxy': start\(\) must return a pykka\.ActorRef"
    ):
        Supervisor.start(specs)
    stopped = {e[1] for e in recorder.take(4) if e[0] == "stop"}
    assert stopped == {"ok", "p"}  # the started child and the stray actor were stopped


def test_start_raising_is_a_child_start_error(recorder: Recorder, supervisors):
    def broken() -> pykka.ActorRef[Worker]:
        raise OSError("no such device")

    with pytest.raises(ChildStartError, match=r"child 'dev': start\(\) raised OSError") as err:
        Supervisor.start([ChildSpec("dev", broken)])
    assert isinstance(err.value.__cause__, OSError)

    sup = supervisors([worker_spec("a", recorder)])
    with pytest.raises(ChildStartError, match="'dev'"):
        sup.proxy().start_child(ChildSpec("dev", broken)).get(timeout=WAIT)
    assert [i.id for i in sup.proxy().which_children().get(timeout=WAIT)] == ["a"]
