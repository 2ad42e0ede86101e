"""SIMBA: stochastic introspective mini-batch ascent (DSPy 3.4.1's ``teleprompt/simba.py``).

Each step samples a minibatch, runs ``num_candidates`` trajectories per example (each on
a program drawn by softmax over the best programs so far, at temperature 1.0 with its
own rollout id), sorts the examples by how much their trajectories disagree, and builds
new candidates from the most variable ones: either a demo from the best trajectory
(``append_a_demo``) or a rule the prompt model writes by contrasting the best and the
worst trajectory (``append_a_rule``, appended to the instructions). The candidates are
scored on the same minibatch; after ``max_steps`` the step winners are scored on the
whole trainset and the best returned.

DSPy runs the rule requests one after another; here every random draw is made first in
DSPy's order, then the rule requests of a step run concurrently (a failed one is dropped
and the next buckets planned, as DSPy's loop would), and every trajectory of a step --
all examples x all samples, then all candidates x all examples -- runs on one pool.
``log_dir=`` checkpoints the programs, scores and RNG state after every step.
"""

from __future__ import annotations

import inspect
import json
import logging
import math
import os
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dspex_actors._errors import OptimizerError
from dspex_actors.evaluate import ParallelExecutor
from dspex_actors.predict import Predict
from dspex_actors.primitives import Example, Module
from dspex_actors.signatures import InputField, OutputField, Signature
from dspex_actors.teleprompt._bootstrap import DEFAULT_MAX_ERRORS, DEFAULT_NUM_THREADS
from dspex_actors.teleprompt._budget import Budget
from dspex_actors.teleprompt._checkpoint import Checkpoint, rng_from_json, rng_to_json
from dspex_actors.teleprompt._instructions import describe_modules, set_instruction
from dspex_actors.teleprompt._partial import keep_partial
from dspex_actors.teleprompt._rollouts import Job, Rollout, run_jobs
from dspex_actors.teleprompt._teleprompter import (
    Teleprompter,
    check_counts,
    check_program,
    check_trainset,
)

__all__ = ["SIMBA", "OfferFeedback", "percentile"]

logger = logging.getLogger(__name__)

_NAME = "SIMBA"


class OfferFeedback(Signature):
    """You will be given two trajectories of an LLM-driven program's execution. Your goal is to help the program's modules build up experience on how to maximize the reward value assigned to the program's outputs if it were to receive similar inputs in the future.

    The module won't see its own history. It will rely on your advice balancing being concrete and being generalizable.

    In your advice:
    - Avoid boilerplate. Offer advice that would change the module's behavior for the better in the future.
    - Ensure that advice offered to a module M is specific to that M's specific sub-task, not the overall program.
    - Rely on contrasting the behavior of the worse trajectory against the better trajectory in making recommendations.
    - Ensure each unique module name appears exactly once as a key in the advice dictionary.
    """  # noqa: E501

    program_code: str = InputField(desc="The code of the program that we are analyzing")
    modules_defn: str = InputField(
        desc="The definition of each module in the program, including its I/O"
    )
    program_inputs: str = InputField(desc="The inputs to the program that we are analyzing")
    oracle_metadata: str = InputField(
        desc="Any (hidden) metadata about the training set instance we're analyzing"
    )
    worse_program_trajectory: str = InputField(
        desc="The trajectory of the program's execution, showing each module's I/O"
    )
    worse_program_outputs: str = InputField(desc="The outputs of the program that we are analyzing")
    worse_reward_value: float = InputField(
        desc="The reward value assigned to the program's outputs"
    )
    worse_reward_info: str = InputField(
        desc="Additional information that might be helpful to understanding the assigned "
        "reward value."
    )
    better_program_trajectory: str = InputField(
        desc="The trajectory of the program's execution, showing each module's I/O"
    )
    better_program_outputs: str = InputField(
        desc="The outputs of the program that we are analyzing"
    )
    better_reward_value: float = InputField(
        desc="The reward value assigned to the program's outputs"
    )
    better_reward_info: str = InputField(
        desc="Additional information that might be helpful to understanding the assigned "
        "reward value."
    )
    module_names: list[str] = InputField(
        desc="The names of the modules in the program, for which we seek advice"
    )
    discussion: str = OutputField(
        desc="Discussing blame of where each module went wrong, if it did"
    )
    module_advice: dict[str, str] = OutputField(
        desc="For each module, describe very concretely: If the module receives ${description "
        "of input or patterns therein}, then it should ${description of content, behavior, or "
        "strategies to adopt and/or others to avoid}. Basically, your advice be such that if "
        "the module has access to your tip, it would be much more likely to act like the "
        "successful trajectory rather than the lower-scoring trajectory."
    )


def percentile(values: Sequence[float], q: float) -> float:
    """numpy's default (linear) percentile of ``values`` at ``q`` in [0, 100]."""
    ordered = sorted(values)
    if not ordered:
        return 0.0
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _poisson(rng: random.Random, lam: float) -> int:
    """A Poisson draw (Knuth's method; ``lam`` here is at most a few)."""
    if lam <= 0:
        return 0
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


@dataclass
class _Pending:
    """A candidate being built from one bucket: its program and the strategy to apply."""

    program: Module
    strategy: str
    bucket: list[Rollout]


def _json_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, indent=2, default=repr)


class SIMBA(Teleprompter):
    """DSPy's SIMBA: minibatch ascent with self-reflective rules and demos.

    ``compile(student, trainset=..., seed=0)`` returns the best program, with
    ``candidate_programs`` (dicts ``score``, ``program``; best first), ``trial_logs``
    and ``budget`` attached. The metric is ``metric(example, prediction)`` returning a
    number or ``dx.Prediction(score=..., ...)``. More than ``max_errors`` failed runs in
    one step (None: 10), or Ctrl-C, raise :class:`OptimizerError` whose ``partial`` is the
    best step winner so far.
    """

    def __init__(
        self,
        metric: Callable[..., Any],
        *,
        bsize: int = 32,
        num_candidates: int = 6,
        max_steps: int = 8,
        max_demos: int = 4,
        prompt_model: Any = None,
        teacher_settings: Mapping[str, Any] | None = None,
        demo_input_field_maxlen: int = 100_000,
        num_threads: int | None = None,
        temperature_for_sampling: float = 0.2,
        temperature_for_candidates: float = 0.2,
        max_errors: int | None = None,
        log_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        if not callable(metric):
            raise OptimizerError(f"{_NAME}: metric must be callable, got {type(metric).__name__}")
        check_counts(
            _NAME,
            ("bsize", bsize, 1),
            ("num_candidates", num_candidates, 1),
            ("max_steps", max_steps, 0),
            ("max_demos", max_demos, 0),
            ("num_threads", num_threads, 1),
            ("max_errors", max_errors, 0),
            optional={"num_threads", "max_errors"},
        )
        self.metric = metric
        self.bsize = bsize
        self.num_candidates = num_candidates
        self.max_steps = max_steps
        self.max_demos = max_demos
        self.prompt_model = prompt_model
        self.teacher_settings: dict[str, Any] = dict(teacher_settings or {})
        self.demo_input_field_maxlen = demo_input_field_maxlen
        self.num_threads = num_threads
        self.temperature_for_sampling = temperature_for_sampling
        self.temperature_for_candidates = temperature_for_candidates
        self.max_errors = max_errors
        self.log_dir = log_dir
        self.strategies = ["append_a_demo", "append_a_rule"] if max_demos > 0 else ["append_a_rule"]

    def compile(
        self, student: Module, *, trainset: Sequence[Example], seed: int = 0, **kwargs: Any
    ) -> Module:
        """Run ``max_steps`` steps and return the best program (see the class docstring)."""
        if kwargs:
            raise TypeError(f"{_NAME}.compile got unexpected arguments: {sorted(kwargs)}")
        check_program(student, "student", _NAME)
        train = check_trainset(trainset, _NAME)
        if len(train) < self.bsize:
            raise OptimizerError(
                f"{_NAME}: the trainset has {len(train)} examples, fewer than bsize={self.bsize}"
            )
        return _Run(self, student.deepcopy(), train, seed).execute()


class _Run:
    """One SIMBA compile: the program pool, its scores, the data order and the RNGs."""

    def __init__(self, owner: SIMBA, student: Module, train: list[Example], seed: int) -> None:
        self.o = owner
        self.student = student
        self.train = train
        self.rng = random.Random(seed)
        self.rng_poisson = random.Random(seed + 1)
        self.num_threads = owner.num_threads or DEFAULT_NUM_THREADS
        self.max_errors = owner.max_errors if owner.max_errors is not None else DEFAULT_MAX_ERRORS
        self.checkpoint = Checkpoint(owner.log_dir, "simba")
        self.budget = Budget(_NAME)
        self.settings = {
            "seed": seed,
            "bsize": owner.bsize,
            "num_candidates": owner.num_candidates,
            "max_steps": owner.max_steps,
            "max_demos": owner.max_demos,
            "trainset": len(train),
            "instructions": [p.signature.instructions for p in student.predictors()],
        }
        self.programs: list[Module] = [student.deepcopy()]
        self.scores: dict[int, list[float]] = {0: []}
        self.winners: list[int] = [0]
        self.indices = list(range(len(train)))
        self.rng.shuffle(self.indices)
        self.position = 0
        self.step = 0
        self.trial_logs: dict[int, dict[str, Any]] = {}

    # -- state -------------------------------------------------------------------------

    def _save(self) -> None:
        self.checkpoint.save(
            self.settings,
            {
                "programs": [p.dump_state() for p in self.programs],
                "scores": {str(k): v for k, v in self.scores.items()},
                "winners": self.winners,
                "indices": self.indices,
                "position": self.position,
                "step": self.step,
                "trial_logs": {str(k): v for k, v in self.trial_logs.items()},
                "rng": rng_to_json(self.rng),
                "rng_poisson": rng_to_json(self.rng_poisson),
                "budget": self.budget.to_dict(),
            },
        )

    def _restore(self, state: Mapping[str, Any]) -> None:
        self.programs = [self.student.deepcopy().load_state(s) for s in state["programs"]]
        self.scores = {int(k): list(v) for k, v in state["scores"].items()}
        self.winners = list(state["winners"])
        self.indices = list(state["indices"])
        self.position = int(state["position"])
        self.step = int(state["step"])
        self.trial_logs = {int(k): v for k, v in state["trial_logs"].items()}
        self.rng = rng_from_json(state["rng"])
        self.rng_poisson = rng_from_json(state["rng_poisson"])

    def _partial(self) -> Module | None:
        return self.programs[self.winners[-1]].deepcopy() if self.programs else None

    # -- helpers -----------------------------------------------------------------------

    def _average(self, index: int) -> float:
        scores = self.scores.get(index, [])
        return sum(scores) / len(scores) if scores else 0.0

    def _top_k_plus_baseline(self, k: int) -> list[int]:
        ranked = sorted(range(len(self.programs)), key=self._average, reverse=True)
        top = ranked[:k]
        if 0 not in top and top:
            top[-1] = 0
        return list(dict.fromkeys(top))

    def _softmax_sample(self, indices: list[int], temperature: float) -> int:
        exps = [math.exp(self._average(i) / temperature) for i in indices]
        total = sum(exps)
        if total <= 0:
            return self.rng.choice(indices)
        return self.rng.choices(indices, weights=[e / total for e in exps], k=1)[0]

    def _sampler(self, program: Module, rollout: int) -> Module:
        """``program`` sampling as model ``rollout``: temperature 1.0 and its own rollout id;
        with ``teacher_settings``, model 0 is the teacher's LM at its own temperature."""
        copy = program.deepcopy()
        teacher = rollout == 0 and bool(self.o.teacher_settings)
        teacher_lm = self.o.teacher_settings.get("lm") if teacher else None
        for predictor in copy.predictors():
            changes: dict[str, Any] = {"rollout_id": rollout}
            if not teacher:
                changes["temperature"] = 1.0
            if teacher_lm is not None:
                predictor.lm = teacher_lm
            predictor.config = {**predictor.config, **changes}
        return copy

    def _run(self, jobs: list[Job]) -> list[Rollout]:
        metric = self.o.metric
        return run_jobs(
            jobs,
            lambda example, prediction, _trace: metric(example, prediction),
            num_threads=self.num_threads,
            max_errors=self.max_errors,
            optimizer=_NAME,
            partial=self._partial(),
        )

    # -- the loop ------------------------------------------------------------------------

    def execute(self) -> Module:
        saved = self.checkpoint.load(self.settings)
        if saved is not None:
            self._restore(saved)
        with keep_partial(_NAME, self._partial, lambda: f"step {self.step + 1}"):
            while self.step < self.o.max_steps:
                self._one_step()
                self.step += 1
                self._save()
            with self.budget.phase("final"):
                best = self._final()
            best.budget = self.budget.to_dict()  # type: ignore[attr-defined]
        self.budget.log()
        return best

    def _one_step(self) -> None:
        o = self.o
        log: dict[str, Any] = {}
        if self.position + o.bsize > len(self.train):
            self.rng.shuffle(self.indices)
            self.position = 0
        batch = [self.train[i] for i in self.indices[self.position : self.position + o.bsize]]
        self.position += o.bsize

        top = self._top_k_plus_baseline(o.num_candidates)
        jobs = []
        for model in range(o.num_candidates):
            for example in batch:
                chosen = self._softmax_sample(top, o.temperature_for_sampling)
                jobs.append(Job(self._sampler(self.programs[chosen], model), example, chosen))
        with self.budget.phase("trajectories"):
            outputs = self._run(jobs)

        all_scores = [r.score for r in outputs]
        p10, p90 = percentile(all_scores, 10), percentile(all_scores, 90)
        buckets = []
        for index in range(len(batch)):
            bucket = sorted(outputs[index :: len(batch)], key=lambda r: r.score, reverse=True)
            high, low = bucket[0].score, bucket[-1].score
            mean = sum(r.score for r in bucket) / len(bucket)
            buckets.append((bucket, (high - low, high, high - mean)))
        buckets.sort(key=lambda item: item[1], reverse=True)
        log["baseline_score"] = sum(all_scores) / len(all_scores)

        with self.budget.phase("strategies"):
            candidates = self._build_candidates([b for b, _ in buckets], p10, p90)
        jobs = [Job(c, example, i) for i, c in enumerate(candidates) for example in batch]
        with self.budget.phase("candidates"):
            outputs = self._run(jobs)
        candidate_scores = []
        for i in range(len(candidates)):
            rows = outputs[i * len(batch) : (i + 1) * len(batch)]
            candidate_scores.append([r.score for r in rows])
        if candidate_scores:
            averages = [sum(s) / len(s) for s in candidate_scores]
            winner = averages.index(max(averages))
            self.winners.append(len(self.programs) + winner)
            log["candidate_scores"] = averages
        for program, scores in zip(candidates, candidate_scores, strict=True):
            self.scores[len(self.programs)] = scores
            self.programs.append(program)
        self.trial_logs[self.step] = log
        logger.info("%s step %d/%d: %s", _NAME, self.step + 1, o.max_steps, log)

    def _build_candidates(
        self, buckets: list[list[Rollout]], p10: float, p90: float
    ) -> list[Module]:
        """DSPy's candidate loop, with the rule requests of a wave run concurrently."""
        o = self.o
        wanted = o.num_candidates + 1
        built: list[Module] = []
        position = 0
        while len(built) < wanted and position < len(buckets):
            wave: list[_Pending] = []
            while len(built) + len(wave) < wanted and position < len(buckets):
                wave.append(self._plan(buckets[position]))
                position += 1
            results = self._apply(wave, p10, p90)
            built.extend(program for program in results if program is not None)
        return built[:wanted]

    def _plan(self, bucket: list[Rollout]) -> _Pending:
        o = self.o
        source = self._softmax_sample(
            self._top_k_plus_baseline(o.num_candidates), o.temperature_for_candidates
        )
        program = self.programs[source].deepcopy()
        counts = [len(p.demos) for p in program.predictors()]
        max_demos = o.max_demos if o.max_demos > 0 else 3
        num_demos = max(counts) if counts else 0
        drop = max(_poisson(self.rng_poisson, num_demos / max_demos), int(num_demos >= max_demos))
        drop = min(drop, num_demos)
        dropped = {self.rng.randrange(num_demos) for _ in range(drop)}
        for predictor in program.predictors():
            predictor.demos = [d for i, d in enumerate(predictor.demos) if i not in dropped]
        return _Pending(program, self.rng.choice(o.strategies), bucket)

    def _apply(self, wave: list[_Pending], p10: float, p90: float) -> list[Module | None]:
        """Apply each planned strategy; rules ask the prompt model concurrently."""
        results: list[Module | None] = [None] * len(wave)
        rules: list[tuple[int, dict[str, str]]] = []
        for i, pending in enumerate(wave):
            if pending.strategy == "append_a_demo":
                self._append_a_demo(pending, p10)
                results[i] = pending.program
            else:
                request = self._rule_request(pending, p10, p90)
                if request is None:
                    results[i] = pending.program
                else:
                    rules.append((i, request))
        if rules:
            executor = ParallelExecutor(max(1, min(self.num_threads, len(rules))))
            lm = self.o.prompt_model
            outcomes = executor.run(
                lambda item: Predict(OfferFeedback)(**item[1], lm=lm).module_advice, rules
            )
            for outcome in outcomes:
                index = outcome.item[0]
                if outcome.failure is not None:
                    logger.error(
                        "%s: strategy failed with error: %s", _NAME, outcome.failure.message
                    )
                    continue
                program = wave[index].program
                advice = outcome.value if isinstance(outcome.value, Mapping) else {}
                for name, predictor in program.named_predictors():
                    if name in advice:
                        set_instruction(
                            predictor, predictor.signature.instructions + "\n\n" + str(advice[name])
                        )
                results[index] = program
        return results

    def _append_a_demo(self, pending: _Pending, p10: float) -> None:
        good = pending.bucket[0]
        if good.score <= p10:
            return
        names = {id(p): name for name, p in self._names(good)}
        by_name = dict(pending.program.named_predictors())
        chosen: dict[str, Example] = {}
        maxlen = self.o.demo_input_field_maxlen
        for predictor, inputs, outputs in good.trace:
            fields = {}
            for key, value in inputs.items():
                text = str(value)
                fields[key] = (
                    f"{text[:maxlen]}\n\t\t... <TRUNCATED FOR BREVITY>"
                    if maxlen and len(text) > maxlen
                    else value
                )
            name = names.get(id(predictor))
            if name is not None:
                chosen[name] = Example({"augmented": True, **fields, **dict(outputs.items())})
        for name, demo in chosen.items():
            by_name[name].demos = [*by_name[name].demos, demo]

    @staticmethod
    def _names(rollout: Rollout) -> list[tuple[str, Any]]:
        return rollout.job.program.named_predictors()

    def _rule_request(self, pending: _Pending, p10: float, p90: float) -> dict[str, str] | None:
        good, bad = pending.bucket[0], pending.bucket[-1]
        if good.score <= p10 or bad.score >= p90:
            return None
        good_view = self._view(good)
        bad_view = self._view(bad)
        if good.score <= bad.score:
            blank = {
                "trace": [],
                "score": "N/A",
                "prediction": {"N/A": "Prediction not available"},
                "info": {},
            }
            if good.score > p90:
                bad_view = blank
            else:
                good_view = blank
        example = good.job.example
        program = pending.program
        try:
            code = inspect.getsource(type(program))
        except (OSError, TypeError):
            code = type(program).__name__
        values = {
            "program_code": code,
            "modules_defn": describe_modules(program),
            "program_inputs": {**example.inputs()},
            "oracle_metadata": {**example.labels()},
            "better_program_trajectory": good_view["trace"],
            "better_program_outputs": good_view["prediction"],
            "worse_program_trajectory": bad_view["trace"],
            "worse_program_outputs": bad_view["prediction"],
            "worse_reward_value": bad_view["score"],
            "better_reward_value": good_view["score"],
            "worse_reward_info": bad_view["info"],
            "better_reward_info": good_view["info"],
            "module_names": [name for name, _ in program.named_predictors()],
        }
        return {key: _json_text(value) for key, value in values.items()}

    def _view(self, rollout: Rollout) -> dict[str, Any]:
        names = {id(p): name for name, p in self._names(rollout)}
        trace = [
            {"module_name": names[id(p)], "inputs": dict(i), "outputs": dict(o.items())}
            for p, i, o in rollout.trace
            if id(p) in names
        ]
        prediction = dict(rollout.prediction.items()) if rollout.prediction is not None else {}
        info = {"feedback": rollout.feedback} if rollout.feedback is not None else {}
        return {"trace": trace, "prediction": prediction, "score": rollout.score, "info": info}

    # -- the end ---------------------------------------------------------------------------

    def _final(self) -> Module:
        m = len(self.winners) - 1
        n = self.o.num_candidates + 1
        picks = [0] * n if m < 1 else [round(i * m / (n - 1)) for i in range(n)]
        picks = list(dict.fromkeys(picks))
        programs = [self.programs[self.winners[i]].deepcopy() for i in picks]
        jobs = [Job(p, example, i) for i, p in enumerate(programs) for example in self.train]
        outputs = self._run(jobs)
        scores = []
        size = len(self.train)
        for i in range(len(programs)):
            rows = outputs[i * size : (i + 1) * size]
            scores.append(sum(r.score for r in rows) / len(rows) if rows else 0.0)
            if i != 0 and (i - 1) in self.trial_logs:
                self.trial_logs[i - 1]["train_score"] = scores[-1]
        best_index = scores.index(max(scores))
        best = programs[best_index].deepcopy()
        best._compiled = True
        best.candidate_programs = sorted(  # type: ignore[attr-defined]
            ({"score": s, "program": p} for s, p in zip(scores, programs, strict=True)),
            key=lambda row: row["score"],
            reverse=True,
        )
        best.trial_logs = self.trial_logs  # type: ignore[attr-defined]
        logger.info("%s: final trainset scores %s, best %d", _NAME, scores, best_index)
        return best
