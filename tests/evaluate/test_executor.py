"""ParallelExecutor with plain Python callables: order, failures, timeouts, aborts, Ctrl-C."""

from __future__ import annotations

import _thread
import contextvars
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator

import pykka
import pytest

from dspex_actors import EvaluationAborted, EvaluationInterrupted, ExampleTimeoutError
from dspex_actors.evaluate import ExampleFailure, Outcome, ParallelExecutor, Progress
from dspex_actors.evaluate._worker import _Worker

WAIT = 20.0


def test_results_come_back_in_input_order_whatever_the_completion_order() -> None:
    n = 8
    finished = [threading.Event() for _ in range(n + 1)]
    finished[n].set()
    completion: list[int] = []

    def fn(i: int) -> int:
        # Item i finishes only after item i+1: completion order is the reverse of input order.
        assert finished[i + 1].wait(WAIT)
        completion.append(i)
        finished[i].set()
        return i * i

    outcomes = ParallelExecutor(num_threads=n).run(fn, list(range(n)))

    assert completion == list(reversed(range(n)))
    assert [o.index for o in outcomes] == list(range(n))
    assert [o.value for o in outcomes] == [i * i for i in range(n)]
    assert all(o.ok and o.failure is None for o in outcomes)
    assert [o.item for o in outcomes] == list(range(n))
    assert pykka.ActorRegistry.get_by_class(_Worker) == []


def test_failures_are_recorded_per_item_with_type_and_message() -> None:
    def fn(i: int) -> float:
        if i % 3 == 0:
            raise ValueError(f"bad item {i}")
        return 1 / (i - 4)

    outcomes = ParallelExecutor(num_threads=3, provide_traceback=True).run(fn, range(9))

    failed = {o.index: o.failure for o in outcomes if o.failure is not None}
    assert sorted(failed) == [0, 3, 4, 6]
    assert failed[3] is not None and failed[3].error_type == "ValueError"
    assert failed[3].message == "bad item 3"
    assert failed[3].index == 3
    assert isinstance(failed[3].exception, ValueError)
    assert failed[4] is not None and failed[4].error_type == "ZeroDivisionError"
    assert failed[4].traceback is not None and "ZeroDivisionError" in failed[4].traceback
    assert outcomes[5].value == 1.0 and outcomes[5].failure is None
    assert all(o.value is None for o in outcomes if o.failure is not None)


def test_traceback_is_omitted_unless_asked() -> None:
    def fn(_: int) -> None:
        raise KeyError("missing")

    (outcome,) = ParallelExecutor(num_threads=1).run(fn, [0])
    assert outcome.failure == ExampleFailure(
        0, "KeyError", "'missing'", None, outcome.failure.exception if outcome.failure else None
    )


def test_generator_is_consumed_lazily_with_bounded_in_flight_items() -> None:
    lock = threading.Lock()
    state = {"pulled": 0, "finished": 0, "max_ahead": 0}
    threads = 4
    n = 200

    def items() -> Iterator[int]:
        for i in range(n):
            with lock:
                state["pulled"] += 1
                state["max_ahead"] = max(state["max_ahead"], state["pulled"] - state["finished"])
            yield i

    def fn(i: int) -> int:
        with lock:
            state["finished"] += 1
        return i + 1

    outcomes = ParallelExecutor(num_threads=threads).run(fn, items())

    assert [o.value for o in outcomes] == [i + 1 for i in range(n)]
    assert state["pulled"] == n
    assert state["max_ahead"] <= threads


def test_progress_reports_each_item_from_the_calling_thread() -> None:
    updates: list[Progress] = []
    caller = threading.current_thread()
    threads_seen: set[threading.Thread] = set()

    def progress(p: Progress) -> None:
        threads_seen.add(threading.current_thread())
        updates.append(p)

    def fn(i: int) -> int:
        if i == 2:
            raise RuntimeError("boom")
        return i

    ParallelExecutor(num_threads=3, progress=progress).run(fn, [0, 1, 2, 3, 4])
    ParallelExecutor(num_threads=3, progress=progress).run(fn, iter([0, 1]))

    assert threads_seen == {caller}
    assert [p.done for p in updates] == [1, 2, 3, 4, 5, 1, 2]
    assert {p.total for p in updates[:5]} == {5}
    assert {p.total for p in updates[5:]} == {None}
    assert updates[4].failures == 1
    assert sorted(p.outcome.index for p in updates[:5]) == [0, 1, 2, 3, 4]


def test_iter_outcomes_streams_in_completion_order() -> None:
    release = threading.Event()

    def fn(i: int) -> int:
        if i == 0:
            assert release.wait(WAIT)
        return i

    stream = ParallelExecutor(num_threads=2).iter_outcomes(fn, range(4))
    first = [next(stream), next(stream), next(stream)]
    release.set()
    rest = list(stream)

    assert sorted(o.index for o in first) == [1, 2, 3]
    assert [o.index for o in rest] == [0]


def test_workers_run_in_a_copy_of_the_callers_context() -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    leak: contextvars.ContextVar[int] = contextvars.ContextVar("leak", default=0)
    var.set("from caller")

    def fn(_: int) -> tuple[str, int]:
        seen = leak.get()
        leak.set(seen + 1)
        return var.get(), seen

    outcomes = ParallelExecutor(num_threads=2).run(fn, range(10))

    assert {o.value for o in outcomes} == {("from caller", 0)}
    assert leak.get() == 0


def test_timeout_records_the_item_replaces_the_worker_and_never_resends(
    wait_actors_stopped: Callable[[], None],
) -> None:
    release = threading.Event()
    calls: Counter[int] = Counter()
    lock = threading.Lock()

    def fn(i: int) -> int:
        with lock:
            calls[i] += 1
        if i == 1:
            release.wait(WAIT)
            return -1
        return i

    try:
        outcomes = ParallelExecutor(num_threads=2, timeout=0.5).run(fn, range(6))
    finally:
        release.set()

    failure = outcomes[1].failure
    assert failure is not None
    assert failure.error_type == "ExampleTimeoutError"
    assert isinstance(failure.exception, ExampleTimeoutError)
    assert outcomes[1].value is None
    assert [o.value for o in outcomes if o.index != 1] == [0, 2, 3, 4, 5]
    assert calls == Counter(range(6))
    wait_actors_stopped()


def test_max_errors_stops_new_items_and_keeps_partial_outcomes() -> None:
    started: list[int] = []
    lock = threading.Lock()

    def fn(i: int) -> int:
        with lock:
            started.append(i)
        if i < 6:
            raise ValueError(f"bad {i}")
        return i

    with pytest.raises(EvaluationAborted) as info:
        ParallelExecutor(num_threads=2, max_errors=2).run(fn, range(100))

    partial = info.value.result
    assert isinstance(partial, list)
    assert all(isinstance(o, Outcome) for o in partial)
    assert sum(o.failure is not None for o in partial) >= 3
    assert [o.index for o in partial] == sorted(o.index for o in partial)
    assert len(started) <= 3 + 2
    assert len(partial) == len(started)
    assert "max_errors=2" in str(info.value)


def test_abort_waits_for_in_flight_items_only_within_the_grace(
    wait_actors_stopped: Callable[[], None],
) -> None:
    release = threading.Event()

    def fn(i: int) -> int:
        if i == 0:
            release.wait(WAIT)
            return 0
        raise ValueError("bad")

    start = time.monotonic()
    try:
        with pytest.raises(EvaluationAborted) as info:
            ParallelExecutor(num_threads=2, max_errors=0, abort_grace=0.2).run(fn, range(10))
    finally:
        release.set()
    assert time.monotonic() - start < WAIT / 2
    partial = info.value.result
    assert [o.index for o in partial] == [1]
    wait_actors_stopped()


def test_keyboard_interrupt_stops_promptly_with_partial_outcomes(
    wait_actors_stopped: Callable[[], None],
) -> None:
    release = threading.Event()
    sixth_started = threading.Event()

    def fn(i: int) -> int:
        if i == 5:
            # 4 workers, items >= 2 block: item 5 is sent only once results 0 and 1 are in.
            sixth_started.set()
        if i >= 2:
            release.wait(WAIT)
        return i

    def interrupter() -> None:
        if sixth_started.wait(WAIT):
            _thread.interrupt_main()

    timer = threading.Thread(target=interrupter)
    timer.start()
    try:
        start = time.monotonic()
        with pytest.raises(EvaluationInterrupted) as info:
            ParallelExecutor(num_threads=4).run(fn, range(50))
        elapsed = time.monotonic() - start
    finally:
        release.set()
        timer.join(WAIT)

    assert isinstance(info.value.__cause__, KeyboardInterrupt)
    assert elapsed < WAIT / 2
    assert [o.value for o in info.value.result] == [0, 1]
    wait_actors_stopped()


def test_a_stopped_worker_is_replaced_and_no_item_is_lost() -> None:
    calls: Counter[int] = Counter()
    lock = threading.Lock()

    def fn(i: int) -> int:
        with lock:
            calls[i] += 1
        if i == 5:
            # Stop every worker: each finishes its current item, then exits.
            for ref in pykka.ActorRegistry.get_by_class(_Worker):
                ref.stop(block=False)
        return i

    outcomes = ParallelExecutor(num_threads=3).run(fn, range(30))

    assert [o.value for o in outcomes] == list(range(30))
    assert calls == Counter(range(30))


class _Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("cannot format this error")


def test_a_crashed_worker_records_its_item_as_failed_and_is_replaced() -> None:
    def fn(i: int) -> int:
        if i == 3:
            raise _Unprintable  # recording the failure itself fails: the worker crashes
        return i

    outcomes = ParallelExecutor(num_threads=2).run(fn, range(10))

    assert [o.index for o in outcomes] == list(range(10))
    failure = outcomes[3].failure
    assert failure is not None
    assert failure.error_type == "RuntimeError"
    assert "cannot format" in failure.message
    assert [o.value for o in outcomes if o.index != 3] == [0, 1, 2, 4, 5, 6, 7, 8, 9]


def test_an_iterable_that_raises_aborts_with_what_finished() -> None:
    def items() -> Iterator[int]:
        yield 0
        yield 1
        raise OSError("disk gone")

    with pytest.raises(EvaluationAborted) as info:
        ParallelExecutor(num_threads=2).run(lambda i: i, items())

    assert isinstance(info.value.__cause__, OSError)
    assert [o.value for o in info.value.result] == [0, 1]


def test_empty_input_starts_nothing() -> None:
    assert ParallelExecutor(num_threads=4).run(lambda i: i, []) == []
    assert ParallelExecutor(num_threads=4).run(lambda i: i, iter([])) == []


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"num_threads": 0}, ValueError),
        ({"num_threads": 2.5}, ValueError),
        ({"timeout": 0}, ValueError),
        ({"max_errors": -1}, ValueError),
        ({"progress": "yes"}, TypeError),
    ],
)
def test_bad_configuration_is_rejected(kwargs: dict[str, object], error: type[Exception]) -> None:
    with pytest.raises(error):
        ParallelExecutor(**kwargs)  # type: ignore[arg-type]


def test_bad_arguments_to_run_are_rejected() -> None:
    executor = ParallelExecutor(num_threads=1)
    with pytest.raises(TypeError, match="callable"):
        executor.run("not callable", [1])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="iterable"):
        executor.run(lambda x: x, 5)  # type: ignore[arg-type]
