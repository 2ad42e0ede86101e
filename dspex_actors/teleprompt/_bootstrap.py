"""BootstrapFewShot: demos from the teacher's own successful traces, bootstrapped in parallel.

DSPy walks the trainset one example at a time and stops once ``max_bootstrapped_demos``
examples succeeded. Here the examples run concurrently on the :class:`ParallelExecutor`
(each in its own copied context, with its own teacher copy and ``record_trace()``), and
an in-order scan replays their outcomes exactly as the sequential loop would: example
``i`` counts only after examples ``0..i-1`` are decided, successes and errors are counted
in trainset order, and everything past the sequential stopping point is ignored. So the
chosen demos are identical to a sequential (``num_threads=1``) run given the same LM
answers. The price: examples past the stopping point may already have run when it is
found, so a parallel run can spend extra LM calls -- at most ``2 * num_threads - 1``
examples, because an example starts only when it is fewer than ``2 * num_threads``
places ahead of the first undecided one.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import random
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dspex_actors._errors import (
    CompileInterrupted,
    EvaluationAborted,
    EvaluationInterrupted,
    OptimizerError,
)
from dspex_actors.evaluate import ParallelExecutor, Progress, TqdmProgress
from dspex_actors.evaluate._backend import Backend, check_backend, run_batch
from dspex_actors.predict import record_trace
from dspex_actors.primitives import Example, Module, Prediction
from dspex_actors.teleprompt._teleprompter import Teleprompter, check_program, check_trainset
from dspex_actors.teleprompt._vanilla import LabeledFewShot

__all__ = [
    "DEFAULT_MAX_ERRORS",
    "DEFAULT_NUM_THREADS",
    "LOOKAHEAD_PER_THREAD",
    "BootstrapFewShot",
    "Metric",
]

logger = logging.getLogger(__name__)

Metric = Callable[..., Any]
"""``metric(example, prediction, trace=None)`` → bool or number (DSPy's metric shape)."""

DEFAULT_MAX_ERRORS = 10
"""Errors tolerated while bootstrapping when ``max_errors`` is None (DSPy's default)."""

DEFAULT_NUM_THREADS = 8
"""Concurrent teacher runs when ``num_threads`` is None (DSPy's default thread count)."""

LOOKAHEAD_PER_THREAD = 2
"""An example starts only within ``LOOKAHEAD_PER_THREAD * num_threads`` of the scan."""

_WAIT_SLICE = 0.1
"""Longest single wait of the feeding loop, so Ctrl-C on the caller is noticed promptly."""


@dataclass(frozen=True)
class _Attempt:
    """One teacher run on one example in one round."""

    round_idx: int
    success: bool
    error: Exception | None = None
    demos: Mapping[str, list[Example]] = field(default_factory=dict)


@dataclass(frozen=True)
class _ExampleRun:
    """Every round tried on one example (until the first success)."""

    index: int
    attempts: tuple[_Attempt, ...]


class _InOrderScan:
    """Replays finished examples in trainset order, as DSPy's sequential loop would.

    Thread-safe: workers report finished examples in any order; the scan consumes the
    contiguous prefix and decides where the sequential loop stops (enough bootstraps,
    or ``max_errors`` reached). ``done`` is set once that point is known.
    """

    def __init__(
        self, size: int, max_bootstraps: int, max_errors: int, names: Sequence[str]
    ) -> None:
        self._lock = threading.Lock()
        self._advanced = threading.Condition(self._lock)
        self._pending: dict[int, _ExampleRun] = {}
        self._size = size
        self._max_bootstraps = max_bootstraps
        self._max_errors = max_errors
        self.next_index = 0
        self.attempts = 0
        self.error_count = 0
        self.bootstrapped: list[int] = []
        self.name2traces: dict[str, list[Example]] = {name: [] for name in names}
        self.fatal: tuple[int, Exception] | None = None
        self.done = threading.Event()
        if size == 0 or max_bootstraps <= 0:
            self.done.set()

    def decided(self) -> bool:
        """True once the sequential loop's stopping point is known: later work is moot."""
        return self.done.is_set()

    def wait_for_room(self, index: int, window: int) -> bool:
        """Block until example ``index`` is within ``window`` of the scan; False once decided."""
        with self._advanced:
            while not self.done.is_set() and index >= self.next_index + window:
                self._advanced.wait(_WAIT_SLICE)
            return not self.done.is_set()

    def record(self, run: _ExampleRun) -> None:
        """Add a finished example and advance the in-order scan as far as it can go."""
        with self._advanced:
            if self.done.is_set():
                return
            self._pending[run.index] = run
            while self.next_index in self._pending:
                self._replay(self._pending.pop(self.next_index))
                self.next_index += 1
                if self.fatal is not None or len(self.bootstrapped) >= self._max_bootstraps:
                    self.done.set()
                    break
                if self.next_index >= self._size:
                    self.done.set()
                    break
            self._advanced.notify_all()

    def crash(self, index: int, error: BaseException) -> None:
        """An example's run itself broke: stop feeding (the executor reports the failure)."""
        with self._advanced:
            logger.error("bootstrap: running trainset[%d] crashed: %r", index, error)
            self.done.set()
            self._advanced.notify_all()

    def _replay(self, run: _ExampleRun) -> None:
        for attempt in run.attempts:
            self.attempts += 1
            if attempt.error is not None:
                self.error_count += 1
                if self.error_count >= self._max_errors:
                    self.fatal = (run.index, attempt.error)
                    return
                logger.error(
                    "bootstrap: example %d round %d failed: %s: %s",
                    run.index,
                    attempt.round_idx,
                    type(attempt.error).__name__,
                    attempt.error,
                )
            if attempt.success:
                self.bootstrapped.append(run.index)
                for name, demos in attempt.demos.items():
                    self.name2traces[name].extend(demos)
                return


class BootstrapFewShot(Teleprompter):
    """Pick few-shot demos from traces of a teacher program that the metric accepts.

    ``compile(student, teacher=None, trainset=...)``: the teacher (a copy of ``teacher``,
    else of the student, given ``max_labeled_demos`` labeled demos when it is uncompiled)
    runs on each training example without that example among its demos; when
    ``metric(example, prediction, trace)`` is truthy (or ``>= metric_threshold``), each
    predictor's step becomes an augmented demo. Each student predictor gets up to
    ``max_bootstrapped_demos`` of those, then labeled examples that were not bootstrapped
    up to ``max_labeled_demos`` (seeded sample, as in DSPy). Rounds after the first run at
    temperature 1.0 with a fresh ``rollout_id`` so the cache gives a new answer.

    Extra over DSPy: ``num_threads`` teacher runs at a time with the same result as a
    sequential run (see the module docstring), in this process or, with
    ``backend="ray"``, in Ray worker processes; ``display_progress`` shows a tqdm bar;
    when the ``max_errors``-th error is reached (counted in trainset order) an
    :class:`OptimizerError` is raised whose ``partial`` is the dict of predictor name →
    demos bootstrapped before it.
    """

    def __init__(
        self,
        metric: Metric | None = None,
        *,
        metric_threshold: float | None = None,
        teacher_settings: Mapping[str, Any] | None = None,
        max_bootstrapped_demos: int = 4,
        max_labeled_demos: int = 16,
        max_rounds: int = 1,
        max_errors: int | None = None,
        num_threads: int | None = None,
        display_progress: bool = False,
        backend: Backend = "local",
    ) -> None:
        if metric is not None and not callable(metric):
            raise OptimizerError(
                f"BootstrapFewShot: metric must be callable, got {type(metric).__name__}"
            )
        for label, value, minimum in (
            ("max_bootstrapped_demos", max_bootstrapped_demos, 0),
            ("max_labeled_demos", max_labeled_demos, 0),
            ("max_rounds", max_rounds, 1),
            ("max_errors", max_errors, 1),
            ("num_threads", num_threads, 1),
        ):
            if value is None and label in {"max_errors", "num_threads"}:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise OptimizerError(
                    f"BootstrapFewShot: {label} must be an int >= {minimum}, got {value!r}"
                )
        if teacher_settings is not None and not isinstance(teacher_settings, Mapping):
            raise OptimizerError(
                "BootstrapFewShot: teacher_settings must be a dict such as {'lm': LM(...)}, "
                f"got {type(teacher_settings).__name__}"
            )
        self.metric = metric
        self.metric_threshold = metric_threshold
        self.teacher_settings: dict[str, Any] = dict(teacher_settings or {})
        self.max_bootstrapped_demos = max_bootstrapped_demos
        self.max_labeled_demos = max_labeled_demos
        self.max_rounds = max_rounds
        self.max_errors = max_errors
        self.num_threads = num_threads
        self.display_progress = display_progress
        self.backend = backend
        self._where = check_backend(backend, "BootstrapFewShot")

    # -- compile -----------------------------------------------------------------------

    def compile(
        self,
        student: Module,
        *,
        teacher: Module | None = None,
        trainset: Sequence[Example],
        **kwargs: Any,
    ) -> Module:
        """Return a compiled copy of ``student`` with bootstrapped and labeled demos."""
        if kwargs:
            raise TypeError(f"BootstrapFewShot.compile got unexpected arguments: {sorted(kwargs)}")
        examples = check_trainset(trainset, "BootstrapFewShot")
        compiled, prepared_teacher = self._prepare_student_and_teacher(student, teacher, examples)
        names = self._check_predictor_pairs(compiled, prepared_teacher)
        scan = self._bootstrap(prepared_teacher, examples, names)
        bootstrapped = set(scan.bootstrapped)
        validation = [x for i, x in enumerate(examples) if i not in bootstrapped]
        random.Random(0).shuffle(validation)
        self._train(compiled, scan.name2traces, validation)
        compiled._compiled = True
        return compiled

    def _prepare_student_and_teacher(
        self, student: Module, teacher: Module | None, trainset: list[Example]
    ) -> tuple[Module, Module]:
        check_program(student, "student", "BootstrapFewShot")
        if getattr(student, "_compiled", False):
            raise OptimizerError(
                "BootstrapFewShot: the student is already compiled; pass the uncompiled program"
            )
        if teacher is not None:
            check_program(teacher, "teacher", "BootstrapFewShot")
        compiled = student.reset_copy()
        prepared = teacher.deepcopy() if teacher is not None else student.deepcopy()
        if self.max_labeled_demos and not getattr(prepared, "_compiled", False):
            labeled = LabeledFewShot(k=self.max_labeled_demos)
            prepared = labeled.compile(prepared.reset_copy(), trainset=trainset)
        return compiled, prepared

    @staticmethod
    def _check_predictor_pairs(student: Module, teacher: Module) -> list[str]:
        """Pair predictors by name; the structure and every signature must match."""
        student_pairs = student.named_predictors()
        teacher_pairs = teacher.named_predictors()
        student_names = [name for name, _ in student_pairs]
        teacher_names = [name for name, _ in teacher_pairs]
        if student_names != teacher_names:
            raise OptimizerError(
                "BootstrapFewShot: student and teacher must have the same program structure; "
                f"student predictors {student_names}, teacher predictors {teacher_names}"
            )
        for (name, s_pred), (_, t_pred) in zip(student_pairs, teacher_pairs, strict=True):
            if not _same_signature(s_pred.signature, t_pred.signature):
                raise OptimizerError(
                    f"BootstrapFewShot: student and teacher must have the same signatures; "
                    f"predictor {name!r}: student {_describe(s_pred.signature)} != "
                    f"teacher {_describe(t_pred.signature)}"
                )
            if s_pred is t_pred:
                raise OptimizerError(
                    f"BootstrapFewShot: student and teacher share the predictor object {name!r}"
                )
        return student_names

    # -- bootstrapping -----------------------------------------------------------------

    def _bootstrap(
        self, teacher: Module, trainset: list[Example], names: list[str]
    ) -> _InOrderScan:
        max_errors = self.max_errors if self.max_errors is not None else DEFAULT_MAX_ERRORS
        scan = _InOrderScan(len(trainset), self.max_bootstrapped_demos, max_errors, names)
        if scan.decided():
            return scan

        def run_example(item: tuple[int, Example]) -> _ExampleRun:
            try:
                run = self._rounds(teacher, item, scan.decided)
                scan.record(run)
            except BaseException as exc:
                scan.crash(item[0], exc)
                raise
            return run

        num_threads = self.num_threads if self.num_threads is not None else DEFAULT_NUM_THREADS
        window = LOOKAHEAD_PER_THREAD * num_threads

        def items() -> Iterator[tuple[int, Example]]:
            # Pulled by the executor whenever a worker is idle; holds back examples too far
            # ahead of the in-order scan so few LM calls are spent past the stopping point.
            for index, example in enumerate(trainset):
                if not scan.wait_for_room(index, window):
                    return
                yield index, example

        show = self.display_progress
        where = self._where
        with TqdmProgress(total=len(trainset), desc="Bootstrapping", disable=not show) as bar:
            if where == "local":
                executor = ParallelExecutor(num_threads, progress=bar if show else None)
                fn: Callable[[tuple[int, Example]], _ExampleRun] = run_example
            else:
                # Ray workers cannot reach the scan: the driver records what they send back.
                def record(progress: Progress) -> None:
                    outcome = progress.outcome
                    if outcome.value is not None:
                        scan.record(outcome.value)
                    elif outcome.failure is not None:
                        scan.crash(outcome.index, outcome.failure.exception or RuntimeError())
                    if show:
                        bar(progress)

                executor = ParallelExecutor(num_threads, progress=record)
                fn = functools.partial(self._rounds, teacher)
            try:
                outcomes = run_batch(where, executor, fn, items())
            except EvaluationAborted as exc:
                raise OptimizerError(
                    f"BootstrapFewShot: bootstrapping stopped early ({exc}); "
                    f"{len(scan.bootstrapped)} examples bootstrapped so far",
                    partial=_copy_traces(scan.name2traces),
                ) from exc
            except EvaluationInterrupted as exc:
                raise CompileInterrupted(
                    f"BootstrapFewShot interrupted; {len(scan.bootstrapped)} examples "
                    "bootstrapped so far (their traces are in .result)",
                    result=_copy_traces(scan.name2traces),
                ) from exc
        broken = next((o.failure for o in outcomes if o.failure is not None), None)
        if broken is not None and scan.next_index <= broken.index and scan.fatal is None:
            raise OptimizerError(
                f"BootstrapFewShot: bootstrapping trainset[{broken.index}] crashed: "
                f"{broken.error_type}: {broken.message}",
                partial=_copy_traces(scan.name2traces),
            ) from broken.exception
        if scan.fatal is not None:
            index, error = scan.fatal
            raise OptimizerError(
                f"BootstrapFewShot: {scan.error_count} errors while bootstrapping reached "
                f"max_errors={max_errors}; the last, on trainset[{index}]: "
                f"{type(error).__name__}: {error}",
                partial=_copy_traces(scan.name2traces),
            ) from error
        logger.info(
            "Bootstrapped %d full traces after %d examples for up to %d rounds, "
            "amounting to %d attempts.",
            len(scan.bootstrapped),
            scan.next_index,
            self.max_rounds,
            scan.attempts,
        )
        return scan

    def _rounds(
        self,
        teacher: Module,
        item: tuple[int, Example],
        decided: Callable[[], bool] | None = None,
    ) -> _ExampleRun:
        """Every round on one example, until one succeeds (or ``decided()`` says stop)."""
        index, example = item
        attempts: list[_Attempt] = []
        for round_idx in range(self.max_rounds):
            if decided is not None and decided():
                break
            attempt = self._bootstrap_one_example(teacher, example, round_idx)
            attempts.append(attempt)
            if attempt.success:
                break
        return _ExampleRun(index, tuple(attempts))

    def _bootstrap_one_example(self, teacher: Module, example: Example, round_idx: int) -> _Attempt:
        """Run a private teacher copy on ``example`` (never among its own demos)."""
        try:
            runner = teacher.deepcopy()
            predictor_names: dict[int, str] = {}
            for name, predictor in runner.named_predictors():
                predictor_names[id(predictor)] = name
                predictor.demos = [d for d in predictor.demos if not _same_example(d, example)]
                self._apply_teacher_settings(predictor, round_idx)
            with record_trace() as trace:
                prediction = runner(**example.inputs())
            if self.metric is None:
                success = True
            else:
                value = self.metric(example, prediction, trace)
                success = bool(
                    value >= self.metric_threshold if self.metric_threshold is not None else value
                )
        except Exception as exc:
            return _Attempt(round_idx, False, error=exc)
        if not success:
            return _Attempt(round_idx, False)
        return _Attempt(round_idx, True, demos=_demos_from_trace(trace, predictor_names))

    def _apply_teacher_settings(self, predictor: Any, round_idx: int) -> None:
        """``teacher_settings`` (``lm`` and call config) and the retry-round config."""
        settings = dict(self.teacher_settings)
        lm = settings.pop("lm", None)
        if lm is not None and getattr(predictor, "lm", None) is None:
            predictor.lm = lm
        config = dict(getattr(predictor, "config", None) or {})
        config.update(settings)
        if round_idx > 0:
            config.update(temperature=1.0, rollout_id=round_idx)
        predictor.config = config

    # -- selection ---------------------------------------------------------------------

    def _train(
        self, student: Module, name2traces: Mapping[str, list[Example]], validation: list[Example]
    ) -> None:
        """Bootstrapped demos first, then a seeded sample of the rest (DSPy's order)."""
        rng = random.Random(0)
        raw_demos = validation
        for name, predictor in student.named_predictors():
            augmented = name2traces[name][: self.max_bootstrapped_demos]
            sample_size = max(0, min(self.max_labeled_demos - len(augmented), len(raw_demos)))
            raw_demos = rng.sample(raw_demos, sample_size)
            predictor.demos = augmented + raw_demos


def _demos_from_trace(
    trace: list[Any], predictor_names: Mapping[int, str]
) -> dict[str, list[Example]]:
    """One augmented demo per predictor from a successful trace (DSPy's rule)."""
    collected: dict[str, list[Example]] = {}
    for predictor, inputs, outputs in trace:
        name = predictor_names.get(id(predictor))
        if name is None:
            continue
        demo = Example({"augmented": True, **dict(inputs), **_fields(outputs)})
        collected.setdefault(name, []).append(demo)
    chosen: dict[str, list[Example]] = {}
    for name, demos in collected.items():
        if len(demos) > 1:
            # Several calls of one predictor: 50/50 the last or one of the others, seeded
            # by the demos' content so the choice is the same on every run.
            rng = random.Random(_content_digest(demos))
            chosen[name] = [rng.choice(demos[:-1]) if rng.random() < 0.5 else demos[-1]]
        else:
            chosen[name] = demos
    return chosen


def _fields(outputs: Any) -> dict[str, Any]:
    if isinstance(outputs, Prediction | Example):
        return dict(outputs.items())
    return dict(outputs)


def _content_digest(demos: list[Example]) -> str:
    payload = json.dumps([d.toDict() for d in demos], sort_keys=True, default=repr)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _same_example(demo: Any, example: Example) -> bool:
    """DSPy drops the training example from the teacher's demos by equality."""
    return demo is example or demo == example


def _same_signature(a: Any, b: Any) -> bool:
    equals = getattr(a, "equals", None)
    if callable(equals):
        return bool(equals(b))
    return bool(a == b)


def _describe(signature: Any) -> str:
    text = getattr(signature, "signature", None)
    return repr(text) if isinstance(text, str) else repr(signature)


def _copy_traces(name2traces: Mapping[str, list[Example]]) -> dict[str, list[Example]]:
    return {name: list(demos) for name, demos in name2traces.items()}
