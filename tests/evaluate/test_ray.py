"""Evaluate(backend="ray") on a real local Ray cluster, against the local LM server.

Few tests (a Ray cluster and its workers are slow to start on a shared 2-core machine):
the workers of the shared ``backend="ray"`` pool live for the whole session.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import dspex_actors as dx
from dspex_actors.evaluate import EvaluationResult, Progress
from dspex_actors.evaluate._backend import check_backend
from dspex_actors.evaluate._ray_ship import dumps, loads
from dspex_actors.testing import ChatRequest, DefaultResponder, LocalLMServer, secret_fingerprint
from tests.conftest import RAY_TEST_KEY
from tests.evaluate._ray_programs import PickyQA, PidQA, exact_match

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def devset_of(n: int, *, boom_every: int = 0, slow_every: int = 0) -> list[dx.Example]:
    rows = []
    for i in range(n):
        question = f"What is {i} + {i % 7}?"
        if boom_every and i % boom_every == 1:
            question += " boom"
        if slow_every and i % slow_every == 2:
            question += " slow"
        rows.append(dx.Example(question=question, answer=str(i + i % 7)).with_inputs("question"))
    return rows


@pytest.fixture
def worker_key(monkeypatch: pytest.MonkeyPatch) -> str:
    """The driver's OPENAI_API_KEY, the same as the Ray workers' (their LMs read it there)."""
    monkeypatch.setenv("OPENAI_API_KEY", RAY_TEST_KEY)
    return RAY_TEST_KEY


@pytest.fixture
def slow_server() -> Iterator[tuple[LocalLMServer, threading.Event]]:
    """A server that holds replies to questions marked ``slow`` until released."""
    release = threading.Event()
    model = DefaultResponder()

    def responder(request: ChatRequest) -> str | list[str]:
        if "slow" in request.last_user_text:
            release.wait(30.0)
        return model(request)

    with LocalLMServer(responder, latency=0.01) as server:
        yield server, release
        release.set()


def test_ray_run_equals_local_run_and_runs_in_the_workers(
    ray_cluster: Any, lm_server: LocalLMServer, worker_key: str
) -> None:
    devset = devset_of(200)
    lm = dx.LM("openai/local-model", api_base=lm_server.url)  # key from OPENAI_API_KEY
    evaluate = dx.Evaluate(devset=devset, metric=exact_match, num_threads=16)
    with dx.ActorSystem(lm=lm) as system:
        remote = evaluate(PidQA(), backend="ray")
        assert system.stats()["clients"] == {}, "the driver's system made LM calls"
        assert lm_server.stats().requests_total == 200
        local = evaluate(PidQA())
        driver_requests = sum(c["requests"] for c in system.stats()["clients"].values())

    assert driver_requests == 200  # the same counter that read zero above
    assert isinstance(remote, EvaluationResult)
    assert remote.complete and not remote.failures
    assert remote.score == local.score == 100.0
    assert [row[0] for row in remote.results] == devset
    assert all(r[0] is e for r, e in zip(remote.results, devset, strict=True))
    assert [(p.answer, s) for _, p, s in remote.results] == [
        (p.answer, s) for _, p, s in local.results
    ]
    pids = {prediction.pid for _, prediction, _ in remote.results}
    assert os.getpid() not in pids
    assert len(pids) == 2, f"expected both Ray workers to run examples, got pids {pids}"
    assert {p.pid for _, p, _ in local.results} == {os.getpid()}
    # The workers' LMs read the key from their own environment: it was never shipped.
    headers = lm_server.stats().headers
    sent = {h.get("authorization") or h.get("Authorization") for h in headers}
    assert sent == {secret_fingerprint(f"Bearer {worker_key}")}


def test_failures_and_timeouts_are_recorded_in_devset_order(
    ray_cluster: Any,
    slow_server: tuple[LocalLMServer, threading.Event],
    worker_key: str,
) -> None:
    server, release = slow_server
    devset = devset_of(30, boom_every=10, slow_every=10)
    lm = dx.LM("openai/local-model", api_base=server.url, num_retries=0)
    with dx.ActorSystem(lm=lm):
        result = dx.Evaluate(devset=devset, metric=exact_match, num_threads=8, timeout=2.0)(
            PickyQA(), backend="ray"
        )
    release.set()

    failures = {f.index: f for f in result.failures}
    assert sorted(failures) == [1, 2, 11, 12, 21, 22]
    for index in (1, 11, 21):
        assert failures[index].error_type == "ValueError"
        assert "boom" in failures[index].message
    for index in (2, 12, 22):
        assert failures[index].error_type == "ExampleTimeoutError"
        assert isinstance(failures[index].exception, dx.ExampleTimeoutError)
    assert result.indices == list(range(30)) and result.complete
    assert [row[0] for row in result.results] == devset
    for index, (_, prediction, score) in enumerate(result.results):
        assert (prediction is None) == (index in failures)
        assert score == (index not in failures)
    assert result.score == round(100 * 24 / 30, 2)


def test_a_program_that_cannot_be_pickled_is_a_clear_error(
    lm_server: LocalLMServer, worker_key: str
) -> None:
    class Locked(PidQA):
        def __init__(self) -> None:
            super().__init__()
            self.lock = threading.Lock()

    lm = dx.LM("openai/local-model", api_base=lm_server.url)
    with dx.ActorSystem(lm=lm), pytest.raises(dx.ConfigurationError) as info:
        dx.Evaluate(devset=devset_of(3), metric=exact_match, backend="ray")(Locked())
    message = str(info.value)
    assert "the program" in message and "cannot be pickled" in message
    assert "lock" in message
    assert lm_server.stats().requests_total == 0


def test_lms_travel_without_their_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    predict = dx.Predict("question -> answer")
    predict.lm = dx.LM("openai/x", api_base="http://127.0.0.1:1/v1")  # key from the env
    blob = dumps(predict)
    assert b"sk-from-env" not in blob
    assert loads(blob).lm.api_key == "sk-from-env"  # read again where it is loaded
    monkeypatch.setenv("OPENAI_API_KEY", "sk-another-key")
    with pytest.raises(dx.ConfigurationError, match="not the key") as info:
        loads(blob)
    assert "sk-" not in str(info.value)
    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(dx.ConfigurationError, match="has no OPENAI_API_KEY"):
        loads(blob)

    explicit = dx.LM("openai/x", api_base="http://127.0.0.1:1/v1", api_key="sk-explicit")
    with pytest.raises(dx.ConfigurationError, match="ship_api_keys=True") as refused:
        dumps(explicit)
    assert "sk-explicit" not in str(refused.value)
    shipped = loads(dumps(explicit, ship_api_keys=True))
    assert shipped.api_key == "sk-explicit" and shipped == explicit


def test_bad_backend_is_a_clear_error() -> None:
    with pytest.raises(dx.ConfigurationError, match="backend must be 'local', 'ray'"):
        dx.Evaluate(devset=[], metric=exact_match, backend="dask")  # type: ignore[arg-type]
    assert check_backend("local", "x") == "local"
    assert isinstance(check_backend("ray", "x"), dx.RayBackend)


def test_import_needs_no_ray_and_a_missing_ray_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['ray'] = None\n"
        "import dspex_actors as dx\n"
        "assert 'ray.cloudpickle' not in sys.modules\n"
        "try:\n"
        "    dx.Evaluate(devset=[dx.Example(q='x').with_inputs('q')], metric=max,\n"
        "                backend='ray')(dx.Predict('q -> a'))\n"
        "except dx.ConfigurationError as exc:\n"
        "    print(exc)\n"
    )
    env = {**os.environ, "PYTHONPATH": ROOT}
    done = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert "pip install 'dspex-actors[ray]'" in done.stdout
    plain = subprocess.run(
        [sys.executable, "-c", "import sys, dspex_actors; print('ray' in sys.modules)"],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert plain.stdout.strip() == "False", plain.stderr


def test_ctrl_c_and_max_errors_keep_the_finished_results(
    ray_cluster: Any, lm_server: LocalLMServer, worker_key: str
) -> None:
    from dspex_actors.evaluate._ray import RayExecutor

    devset = devset_of(60, boom_every=3)
    lm = dx.LM("openai/local-model", api_base=lm_server.url)
    with dx.ActorSystem(lm=lm):
        with pytest.raises(dx.EvaluationAborted) as info:
            dx.Evaluate(devset=devset, metric=exact_match, num_threads=4, max_errors=2)(
                PickyQA(), backend="ray"
            )
        partial = info.value.result
        assert partial is not None and not partial.complete
        assert len(partial.failures) >= 3
        assert len(partial.results) < 60
        assert "max_errors=2" in str(info.value)

        seen: list[int] = []

        def interrupt_after_five(progress: Progress) -> None:
            seen.append(progress.outcome.index)
            if len(seen) == 5:
                raise KeyboardInterrupt

        settings = dx.ParallelExecutor(4, progress=interrupt_after_five)
        executor = RayExecutor(settings, check_backend("ray", "test"))
        program = PidQA()
        with pytest.raises(dx.EvaluationInterrupted) as interrupted:
            executor.run(lambda example: program(**example.inputs()), devset)
    assert isinstance(interrupted.value.__cause__, KeyboardInterrupt)
    finished = interrupted.value.result
    assert finished is not None
    assert sorted(o.index for o in finished) == sorted(seen)
    assert all(o.value is not None for o in finished)


def test_a_worker_that_dies_fails_only_its_items_and_is_replaced(
    ray_cluster: Any, lm_server: LocalLMServer, worker_key: str
) -> None:
    from dspex_actors.evaluate._ray import RayExecutor

    backend = check_backend("ray", "test")
    assert isinstance(backend, dx.RayBackend)
    lm = dx.LM("openai/local-model", api_base=lm_server.url)
    victim: list[int] = []

    def kill_a_worker(progress: Progress) -> None:
        if progress.done == 5:
            actor, pid = backend.pool.members[0]
            victim.append(pid)
            ray_cluster.kill(actor)

    program = PidQA()
    with dx.ActorSystem(lm=lm):
        executor = RayExecutor(dx.ParallelExecutor(8, progress=kill_a_worker), backend)
        outcomes = executor.run(lambda example: program(**example.inputs()), devset_of(60))
        again = dx.Evaluate(devset=devset_of(20), metric=exact_match, num_threads=8)(
            PidQA(), backend="ray"
        )

    assert [o.index for o in outcomes] == list(range(60))
    failed = [o for o in outcomes if o.failure is not None]
    assert failed, "the killed worker held items"
    for outcome in failed:
        assert outcome.failure is not None
        assert outcome.failure.error_type == "EvaluationError"
        assert f"Ray worker (pid {victim[0]})" in outcome.failure.message
    assert again.complete and not again.failures
    pids = {p.pid for _, p, _ in again.results}
    assert len(pids) == 2 and victim[0] not in pids
