"""GEPA: reflective instruction evolution with Pareto-front candidate selection.

Our own implementation of the algorithm DSPy 3.4.1 runs through the ``gepa`` package:
reflective mutation and, with ``use_merge`` (the default, as in DSPy), merges of two
candidates' instructions (:mod:`._gepa_merge`). Each reflective iteration:

1. pick a parent: ``"pareto"`` samples among the candidates that are best on some
   validation instance (dominated ones removed), weighted by how many instances they
   lead on; ``"current_best"`` takes the best average;
2. run it on the next ``reflection_minibatch_size`` training examples (epoch-shuffled)
   with traces, scoring with ``metric(gold, pred, trace, None, None)``; a minibatch
   already at ``perfect_score`` everywhere is skipped (``skip_perfect_score``);
3. for the next predictor in round-robin order, build the reflective dataset (that
   predictor's inputs, outputs and the metric's ``feedback`` for it, asked with
   ``metric(gold, pred, trace, pred_name, pred_trace)``; one of its steps drawn per
   example from the trace RNG; DSPy also takes the steps of predictors with an equal
   signature, we take only the predictor's own)
   and ask ``reflection_lm`` for a new instruction with DSPy's ``ProposeInstruction``
   (:mod:`._gepa_reflection`); a reply without one is asked again once, then the
   iteration ends without a child;
4. run the child on the same minibatch; if its sum beats the parent's, score it on the
   whole valset and add it to the pool.

After a child joins, a merge is due (up to ``max_merge_invocations`` accepted merges):
the next iteration combines two Pareto-front candidates that share an ancestor, scores
the result on 5 valset instances and adds it (after a full valset evaluation) when it
does at least as well there as the better parent; a merge that finds no pair leaves
the iteration to reflection.

It stops once ``max_metric_calls`` evaluations (program runs scored) are spent:
``auto`` sets that budget with DSPy's formula, ``max_full_evals`` as multiples of
train + val. Every evaluation runs on the parallel executor (a whole minibatch or the
valset at once). While parents' minibatches come back perfect, nothing but the RNG and
the sampler moves, so the next iterations' parents and minibatches are drawn ahead
(up to ``num_threads / reflection_minibatch_size``, doubling while they skip) and their
minibatches run together; at the first that is not skipped the RNG and sampler go back
to just after its draws, so the run takes exactly the sequential decisions.
Two RNGs seeded with ``seed``, as in DSPy: the run's (selection, minibatches, merges)
and the trace RNG (the step shown per example, DSPy's adapter's ``Random(seed)``).
``log_dir=`` checkpoints the pool, scores, RNGs, sampler and merge schedule after each
iteration (and after a merge's subsample evaluation); a re-run with the same ``log_dir``
goes on from the last finished step.
"""

from __future__ import annotations

import inspect
import logging
import math
import os
import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from dspex_actors._errors import AdapterParseError, ConfigurationError, OptimizerError
from dspex_actors.primitives import Example, Module
from dspex_actors.system import current_system
from dspex_actors.teleprompt._bootstrap import DEFAULT_MAX_ERRORS, DEFAULT_NUM_THREADS
from dspex_actors.teleprompt._budget import Budget
from dspex_actors.teleprompt._checkpoint import Checkpoint, rng_from_json, rng_to_json
from dspex_actors.teleprompt._gepa_merge import MergePlan, MergeState, Pool, plan_merge
from dspex_actors.teleprompt._gepa_reflection import (
    PROPOSAL_ATTEMPTS,
    PROPOSER,
    ReflectionError,
    propose_instruction,
)
from dspex_actors.teleprompt._instructions import instructions_of, with_instructions
from dspex_actors.teleprompt._partial import keep_partial
from dspex_actors.teleprompt._rollouts import Job, Rollout, check_score, run_jobs
from dspex_actors.teleprompt._teleprompter import (
    Teleprompter,
    check_counts,
    check_program,
    check_trainset,
)

__all__ = ["GEPA", "auto_budget"]

logger = logging.getLogger(__name__)

_NAME = "GEPA"

AUTO_RUN_SETTINGS: dict[str, dict[str, int]] = {
    "light": {"n": 6},
    "medium": {"n": 12},
    "heavy": {"n": 18},
}
"""DSPy's GEPA auto modes (candidate counts its budget formula starts from)."""


def auto_budget(
    num_preds: int,
    num_candidates: int,
    valset_size: int,
    minibatch_size: int = 35,
    full_eval_steps: int = 5,
) -> int:
    """DSPy's GEPA budget for an auto mode, in metric calls."""
    num_trials = int(max(2 * (num_preds * 2) * math.log2(num_candidates), 1.5 * num_candidates))
    total = valset_size + num_candidates * 5 + num_trials * minibatch_size
    if num_trials == 0:
        return total
    periodic = (num_trials + 1) // full_eval_steps + 1
    extra = 1 if num_trials < full_eval_steps else 0
    return total + (periodic + extra) * valset_size


def _dominated(program: int, others: set[int], fronts: Sequence[set[int]]) -> bool:
    for front in fronts:
        if program in front and not any(other in front for other in others):
            return False
    return True


def pareto_dominated(fronts: Sequence[set[int]], averages: Sequence[float]) -> set[int]:
    """The candidates every front they are on shares with another that is kept (GEPA's rule:
    removed one at a time, weakest average first)."""
    programs = sorted({p for front in fronts for p in front}, key=lambda p: averages[p])
    dominated: set[int] = set()
    changed = True
    while changed:
        changed = False
        for program in programs:
            if program in dominated:
                continue
            if _dominated(program, set(programs) - {program} - dominated, fronts):
                dominated.add(program)
                changed = True
                break
    return dominated


def select_from_pareto(
    fronts: Sequence[set[int]], averages: Sequence[float], rng: random.Random
) -> int:
    """GEPA's Pareto selection: drop dominated candidates, sample by instances led."""
    dominated = pareto_dominated(fronts, averages)
    sampling: list[int] = []
    for front in fronts:
        for program in sorted(front):
            if program not in dominated:
                sampling.append(program)
    return rng.choice(sampling)


class GEPA(Teleprompter):
    """Evolve instructions from execution traces and textual feedback (DSPy's GEPA).

    ``metric(gold, pred, trace, pred_name, pred_trace)`` returns a float or
    ``dx.Prediction(score=..., feedback=...)``. Exactly one budget: ``auto``,
    ``max_full_evals`` or ``max_metric_calls``. ``reflection_lm`` (None: the system's LM)
    writes the new instructions. ``compile`` returns the candidate with the best
    average valset score, with ``detailed_results`` (candidates, parents, scores, metric
    calls) and ``budget`` attached. ``use_merge`` (default True) adds DSPy's merge step,
    at most ``max_merge_invocations`` (default 5) accepted merges; a merged candidate's
    ``parents`` entry is the pair ``[i, j]``. More than ``max_errors`` failed runs in one
    evaluation (None: 10), or Ctrl-C, raise :class:`OptimizerError` whose ``partial`` is
    the best program so far.
    """

    def __init__(
        self,
        metric: Callable[..., Any],
        *,
        auto: Literal["light", "medium", "heavy"] | None = None,
        max_full_evals: int | None = None,
        max_metric_calls: int | None = None,
        reflection_minibatch_size: int = 3,
        candidate_selection_strategy: Literal["pareto", "current_best"] = "pareto",
        reflection_lm: Any = None,
        skip_perfect_score: bool = True,
        num_threads: int | None = None,
        failure_score: float = 0.0,
        perfect_score: float = 1.0,
        max_errors: int | None = None,
        log_dir: str | os.PathLike[str] | None = None,
        track_stats: bool = True,
        seed: int = 0,
        use_merge: bool = True,
        max_merge_invocations: int = 5,
    ) -> None:
        if not callable(metric):
            raise OptimizerError(f"{_NAME}: metric must be callable, got {type(metric).__name__}")
        try:
            inspect.signature(metric).bind(None, None, None, None, None)
        except TypeError as exc:
            raise OptimizerError(
                f"{_NAME}: the metric must accept (gold, pred, trace, pred_name, pred_trace); {exc}"
            ) from exc
        except ValueError:
            pass  # a callable without a signature (a builtin): take it on trust
        given = [
            n
            for n, v in (
                ("auto", auto),
                ("max_full_evals", max_full_evals),
                ("max_metric_calls", max_metric_calls),
            )
            if v is not None
        ]
        if len(given) != 1:
            raise OptimizerError(
                f"{_NAME}: give exactly one of auto, max_full_evals, max_metric_calls (got "
                f"{', '.join(given) or 'none'})"
            )
        if auto is not None and auto not in AUTO_RUN_SETTINGS:
            raise OptimizerError(
                f"{_NAME}: auto must be 'light', 'medium' or 'heavy', got {auto!r}"
            )
        if candidate_selection_strategy not in {"pareto", "current_best"}:
            raise OptimizerError(
                f"{_NAME}: candidate_selection_strategy must be 'pareto' or 'current_best', "
                f"got {candidate_selection_strategy!r}"
            )
        if not isinstance(use_merge, bool):
            raise ConfigurationError(f"{_NAME}: use_merge must be a bool, got {use_merge!r}")
        check_counts(
            _NAME, ("max_merge_invocations", max_merge_invocations, 0), error=ConfigurationError
        )
        check_counts(
            _NAME,
            ("max_full_evals", max_full_evals, 1),
            ("max_metric_calls", max_metric_calls, 1),
            ("reflection_minibatch_size", reflection_minibatch_size, 1),
            ("num_threads", num_threads, 1),
            ("max_errors", max_errors, 0),
            optional={"max_full_evals", "max_metric_calls", "num_threads", "max_errors"},
        )
        self.metric = metric
        self.auto = auto
        self.max_full_evals = max_full_evals
        self.max_metric_calls = max_metric_calls
        self.reflection_minibatch_size = reflection_minibatch_size
        self.candidate_selection_strategy = candidate_selection_strategy
        self.reflection_lm = reflection_lm
        self.skip_perfect_score = skip_perfect_score
        self.num_threads = num_threads
        self.failure_score = failure_score
        self.perfect_score = perfect_score
        self.max_errors = max_errors
        self.log_dir = log_dir
        self.track_stats = track_stats
        self.seed = seed
        self.use_merge = use_merge
        self.max_merge_invocations = max_merge_invocations

    def compile(
        self,
        student: Module,
        *,
        trainset: Sequence[Example],
        teacher: Module | None = None,
        valset: Sequence[Example] | None = None,
        **kwargs: Any,
    ) -> Module:
        """Return the best candidate found (see the class docstring)."""
        if kwargs:
            raise TypeError(f"{_NAME}.compile got unexpected arguments: {sorted(kwargs)}")
        if teacher is not None:
            raise OptimizerError(f"{_NAME}: a teacher is not supported; pass teacher=None")
        check_program(student, "student", _NAME)
        train = check_trainset(trainset, _NAME)
        val = check_trainset(valset, _NAME, name="valset") if valset is not None else train
        if self.auto is not None:
            budget = auto_budget(
                len(student.predictors()), AUTO_RUN_SETTINGS[self.auto]["n"], len(val)
            )
        elif self.max_full_evals is not None:
            budget = self.max_full_evals * (len(train) + (len(val) if valset is not None else 0))
        else:
            assert self.max_metric_calls is not None
            budget = self.max_metric_calls
        return _Run(self, student.deepcopy(), train, val, budget).execute()


_MERGE_EVALUATED = "evaluated on the subsample"
"""A merge record's outcome between its subsample evaluation and the decision."""


def _parent_list(parent: int | list[int] | None) -> list[int]:
    if parent is None:
        return []
    return [parent] if isinstance(parent, int) else list(parent)


class _Run:
    """One GEPA compile: the candidate pool, its scores, the sampler and the RNGs."""

    def __init__(
        self, owner: GEPA, student: Module, train: list[Example], val: list[Example], budget: int
    ) -> None:
        self.o = owner
        self.student = student
        self.train = train
        self.val = val
        self.max_calls = budget
        self.names = [name for name, _ in student.named_predictors()]
        self.num_threads = owner.num_threads or DEFAULT_NUM_THREADS
        self.max_errors = owner.max_errors if owner.max_errors is not None else DEFAULT_MAX_ERRORS
        self.rng = random.Random(owner.seed)
        self.trace_rng = random.Random(owner.seed)
        self.checkpoint = Checkpoint(owner.log_dir, "gepa")
        self.budget = Budget(_NAME)
        self.settings = {
            "seed": owner.seed,
            "budget": budget,
            "minibatch": owner.reflection_minibatch_size,
            "selection": owner.candidate_selection_strategy,
            "trainset": len(train),
            "valset": len(val),
            "instructions": instructions_of(student),
            "proposer": PROPOSER,
        }
        self.merge = MergeState() if owner.use_merge else None
        if owner.use_merge:
            self.settings["max_merge_invocations"] = owner.max_merge_invocations
        self.candidates: list[dict[str, str]] = []
        self.parents: list[int | list[int] | None] = []
        self.val_scores: list[list[float]] = []
        self.metric_calls = 0
        self.iterations: list[dict[str, Any]] = []
        self.order: list[int] = []
        self.position = 0
        self.next_component: list[int] = []
        self.lookahead = max(1, self.num_threads // max(1, owner.reflection_minibatch_size))

    # -- state -------------------------------------------------------------------------

    def _state(self) -> dict[str, Any]:
        merge = {} if self.merge is None else {"merge": self.merge.to_json()}
        return {
            **merge,
            "candidates": self.candidates,
            "parents": self.parents,
            "val_scores": self.val_scores,
            "metric_calls": self.metric_calls,
            "iterations": self.iterations,
            "order": self.order,
            "position": self.position,
            "next_component": self.next_component,
            "rng": rng_to_json(self.rng),
            "trace_rng": rng_to_json(self.trace_rng),
            "budget": self.budget.to_dict(),
        }

    def _restore(self, state: Mapping[str, Any]) -> None:
        self.candidates = [dict(c) for c in state["candidates"]]
        self.parents = list(state["parents"])
        self.val_scores = [list(s) for s in state["val_scores"]]
        self.metric_calls = int(state["metric_calls"])
        self.iterations = list(state["iterations"])
        self.order = list(state["order"])
        self.position = int(state["position"])
        self.next_component = list(state["next_component"])
        self.rng = rng_from_json(state["rng"])
        self.trace_rng = rng_from_json(state["trace_rng"])
        if self.merge is not None:
            self.merge = MergeState.from_json(state["merge"])

    def _save(self) -> None:
        self.checkpoint.save(self.settings, self._state())

    def _best(self) -> int:
        averages = self._averages()
        return max(range(len(averages)), key=lambda i: (averages[i], -i))

    def _averages(self) -> list[float]:
        return [sum(s) / len(s) if s else 0.0 for s in self.val_scores]

    def _program(self, index: int) -> Module:
        return with_instructions(self.student, self.candidates[index])

    def _partial(self) -> Module | None:
        return self._program(self._best()) if self.candidates else None

    # -- evaluation ----------------------------------------------------------------------

    def _evaluate(self, program: Module, examples: Sequence[Example]) -> list[Rollout]:
        rollouts = self._evaluate_many([(program, examples)])[0]
        self.metric_calls += len(examples)
        return rollouts

    def _evaluate_many(
        self, work: Sequence[tuple[Module, Sequence[Example]]]
    ) -> list[list[Rollout]]:
        """Every (program, examples) pair on one pool; rollouts per pair, in order (the
        caller counts the metric calls it keeps)."""
        metric = self.o.metric
        jobs = [
            Job(program, ex, position) for position, (program, exs) in enumerate(work) for ex in exs
        ]
        rollouts = run_jobs(
            jobs,
            lambda gold, pred, trace: metric(gold, pred, trace, None, None),
            num_threads=self.num_threads,
            max_errors=self.max_errors,
            optimizer=_NAME,
            failure_score=self.o.failure_score,
            partial=self._partial(),
        )
        grouped: list[list[Rollout]] = [[] for _ in work]
        for rollout in rollouts:
            grouped[rollout.job.tag].append(rollout)
        return grouped

    def _minibatch(self) -> list[int]:
        size = min(self.o.reflection_minibatch_size, len(self.train))
        if not self.order or self.position + size > len(self.order):
            self.order = list(range(len(self.train)))
            self.rng.shuffle(self.order)
            self.position = 0
        batch = self.order[self.position : self.position + size]
        self.position += size
        return batch

    def _select(self) -> int:
        if self.o.candidate_selection_strategy == "current_best":
            return self._best()
        return select_from_pareto(self._fronts(), self._averages(), self.rng)

    def _fronts(self) -> list[set[int]]:
        """Per valset instance, the candidates with its best score."""
        fronts: list[set[int]] = []
        for instance in range(len(self.val)):
            column = [scores[instance] for scores in self.val_scores]
            top = max(column)
            fronts.append({i for i, s in enumerate(column) if s == top})
        return fronts

    # -- the loop ------------------------------------------------------------------------

    def execute(self) -> Module:
        saved = self.checkpoint.load(self.settings)
        if saved is not None:
            self._restore(saved)
        with keep_partial(_NAME, self._partial, lambda: f"iteration {len(self.iterations)}"):
            if not self.candidates:
                with self.budget.phase("baseline"):
                    rollouts = self._evaluate(self.student, self.val)
                self.candidates.append(instructions_of(self.student))
                self.parents.append(None)
                self.val_scores.append([r.score for r in rollouts])
                self.next_component.append(0)
                self._save()
            if self.iterations and self.iterations[-1].get("outcome") == _MERGE_EVALUATED:
                self._finish_merge(self.iterations[-1])
                self._save()
            depth = 1
            while self.metric_calls < self.max_calls:
                skipped = self._iterate(depth)
                depth = min(depth * 2, self.lookahead) if skipped else 1
        self.budget.log()
        return self._result()

    def _plan(self, depth: int) -> list[tuple[int, list[int], dict[str, Any]]]:
        """The next ``depth`` iterations' parents and minibatches, with the RNG and sampler
        state after each: they depend on nothing but those, while no candidate joins."""
        planned = []
        calls = self.metric_calls
        for _ in range(depth):
            if calls >= self.max_calls:
                break
            parent = self._select()
            batch_ids = self._minibatch()
            calls += len(batch_ids)
            after = {
                "rng": self.rng.getstate(),
                "order": list(self.order),
                "position": self.position,
            }
            planned.append((parent, batch_ids, after))
        return planned

    def _iterate(self, depth: int) -> bool:
        """Run iterations until one may change the pool; True if every one was skipped.

        The parents' minibatches of up to ``depth`` planned iterations run at once. While
        they are perfect (skipped) the plan holds; at the first that is not, the RNG and
        sampler go back to just after its own draws and the rest of the plan is dropped.
        A due merge comes first; when it is evaluated it is the whole iteration.
        """
        if self.merge is not None and self.merge.due > 0 and self.merge.last_found_new:
            self.merge.last_found_new = False
            pool = Pool(
                self.candidates,
                [_parent_list(p) for p in self.parents],
                self._averages(),
                self._front(),
                self.val_scores,
            )
            plan = plan_merge(self.rng, self.merge, pool)
            if plan is not None:
                self._merge(plan)
                return False
        planned = self._plan(depth)
        programs = [self._program(parent) for parent, _, _ in planned]
        with self.budget.phase("minibatch"):
            results = self._evaluate_many(
                [
                    (program, [self.train[i] for i in ids])
                    for program, (_, ids, _) in zip(programs, planned, strict=True)
                ]
            )
        for program, (parent, batch_ids, after), before in zip(
            programs, planned, results, strict=True
        ):
            self.rng.setstate(after["rng"])
            self.order, self.position = after["order"], after["position"]
            self.metric_calls += len(batch_ids)
            record: dict[str, Any] = {"parent": parent, "batch": batch_ids}
            self.iterations.append(record)
            record["parent_scores"] = [r.score for r in before]
            if self.o.skip_perfect_score and all(r.score >= self.o.perfect_score for r in before):
                record["outcome"] = "skipped: perfect minibatch"
                self._save()
                continue
            self._reflect(parent, program, [self.train[i] for i in batch_ids], before, record)
            self._save()
            return False
        return True

    def _reflect(
        self,
        parent: int,
        program: Module,
        batch: list[Example],
        before: list[Rollout],
        record: dict[str, Any],
    ) -> None:
        """Propose a child for ``parent`` from its minibatch; keep it if it does better."""
        component = self.names[self.next_component[parent] % len(self.names)]
        self.next_component[parent] += 1
        record["component"] = component
        dataset = self._reflective_dataset(program, component, before)
        if not dataset:
            record["outcome"] = f"skipped: no trace of {component}"
            return
        with self.budget.phase("reflection"):
            instruction = self._propose(component, self.candidates[parent][component], dataset)
        if instruction is None:
            record["outcome"] = f"skipped: no instruction in the reply for {component}"
            return
        record["instruction"] = instruction
        child = {**self.candidates[parent], component: instruction}
        child_program = with_instructions(self.student, child)
        with self.budget.phase("minibatch"):
            after = self._evaluate(child_program, batch)
        record["child_scores"] = [r.score for r in after]
        if sum(r.score for r in after) <= sum(r.score for r in before):
            record["outcome"] = "rejected"
            return
        with self.budget.phase("valset"):
            rollouts = self._evaluate(child_program, self.val)
        self.candidates.append(child)
        self.parents.append(parent)
        self.val_scores.append([r.score for r in rollouts])
        self.next_component.append(self.next_component[parent])
        record["outcome"] = f"accepted as candidate {len(self.candidates) - 1}"
        if self.merge is not None:
            self.merge.schedule(self.o.max_merge_invocations)
        logger.info(
            "%s: candidate %d (from %d, %s) scores %.4f on the valset",
            _NAME,
            len(self.candidates) - 1,
            parent,
            component,
            self._averages()[-1],
        )

    def _front(self) -> list[int]:
        """The non-dominated candidates (those a merge may combine)."""
        fronts, averages = self._fronts(), self._averages()
        dominated = pareto_dominated(fronts, averages)
        return sorted({p for front in fronts for p in front} - dominated)

    def _merge(self, plan: MergePlan) -> None:
        """Score ``plan``'s candidate on its subsample, checkpoint, then decide on it."""
        record: dict[str, Any] = {
            "merge": [plan.first, plan.second, plan.ancestor],
            "candidate": plan.candidate,
            "subsample": plan.subsample,
        }
        self.iterations.append(record)
        record["parent_sums"] = [
            sum(self.val_scores[parent][k] for k in plan.subsample)
            for parent in (plan.first, plan.second)
        ]
        with self.budget.phase("merge"):
            rollouts = self._evaluate(
                with_instructions(self.student, plan.candidate),
                [self.val[k] for k in plan.subsample],
            )
        record["child_scores"] = [r.score for r in rollouts]
        record["outcome"] = _MERGE_EVALUATED
        self._save()
        self._finish_merge(record)
        self._save()

    def _finish_merge(self, record: dict[str, Any]) -> None:
        """Add an evaluated merge to the pool if it did at least as well as both parents."""
        assert self.merge is not None
        first, second, ancestor = record["merge"]
        if sum(record["child_scores"]) < max(record["parent_sums"]):
            record["outcome"] = "rejected"
            return
        candidate = dict(record["candidate"])
        with self.budget.phase("valset"):
            rollouts = self._evaluate(with_instructions(self.student, candidate), self.val)
        self.candidates.append(candidate)
        self.parents.append([first, second])
        self.val_scores.append([r.score for r in rollouts])
        self.next_component.append(max(self.next_component[first], self.next_component[second]))
        self.merge.due -= 1
        self.merge.accepted += 1
        record["outcome"] = f"accepted as candidate {len(self.candidates) - 1}"
        logger.info(
            "%s: candidate %d (merge of %d and %d via %d) scores %.4f on the valset",
            _NAME,
            len(self.candidates) - 1,
            first,
            second,
            ancestor,
            self._averages()[-1],
        )

    def _reflective_dataset(
        self, program: Module, component: str, rollouts: Sequence[Rollout]
    ) -> list[dict[str, Any]]:
        predictor = dict(program.named_predictors())[component]
        items = []
        for rollout in rollouts:
            steps = [step for step in rollout.trace if step[0] is predictor]
            if not steps or rollout.prediction is None:
                continue
            step = self.trace_rng.choice(steps)
            value = self.o.metric(
                rollout.job.example, rollout.prediction, rollout.trace, component, [step]
            )
            score, feedback = check_score(value, _NAME)
            items.append(
                {
                    "Inputs": dict(step[1]),
                    "Generated Outputs": dict(step[2].items()),
                    "Feedback": feedback
                    if feedback is not None
                    else f"This trajectory got a score of {score}.",
                }
            )
        return items

    def _propose(self, component: str, current: str, dataset: list[dict[str, Any]]) -> str | None:
        """A new instruction, or None when every try's reply held none (``gepa`` skips)."""
        lm = self.o.reflection_lm if self.o.reflection_lm is not None else current_system().lm
        if lm is None:
            raise OptimizerError(f"{_NAME}: no reflection_lm given and the system has no LM")
        for attempt in range(1, PROPOSAL_ATTEMPTS + 1):
            try:
                return propose_instruction(lm, component, current, dataset)
            except (AdapterParseError, ReflectionError) as exc:
                logger.warning("%s: proposal %d for %s failed: %s", _NAME, attempt, component, exc)
        return None

    def _result(self) -> Module:
        best = self._best()
        program = self._program(best)
        program._compiled = True
        program.budget = self.budget.to_dict()  # type: ignore[attr-defined]
        if self.o.track_stats:
            program.detailed_results = {  # type: ignore[attr-defined]
                "candidates": self.candidates,
                "parents": self.parents,
                "val_aggregate_scores": self._averages(),
                "val_subscores": self.val_scores,
                "best_idx": best,
                "total_metric_calls": self.metric_calls,
                "iterations": self.iterations,
            }
            if self.merge is not None:
                program.detailed_results["merge_invocations"] = self.merge.accepted  # type: ignore[attr-defined]
        logger.info(
            "%s: best candidate %d, valset average %.4f", _NAME, best, self._averages()[best]
        )
        return program
