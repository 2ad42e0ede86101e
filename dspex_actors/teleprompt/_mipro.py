"""MIPROv2: instruction proposals plus Bayesian search over (instruction, demo set) per predictor.

DSPy 3.4.1's algorithm and defaults (``dspy/teleprompt/mipro_optimizer_v2.py``):
``auto`` picks the candidate counts and valset size, demo sets come from
``BootstrapFewShot`` (DSPy's seeds -3, -2, -1, 0..), instructions from the grounded
proposer, then Optuna's seeded TPE sampler picks one instruction and one demo set per
predictor per trial, scored on a minibatch with a full evaluation of the best-averaging
untried combination every ``minibatch_full_eval_steps`` trials.

What differs is how the work runs. The demo sets bootstrap concurrently, the proposals
run concurrently, and trials are asked of the study in batches where that cannot change
what TPE samples: while fewer than ``n_startup_trials`` (10) trials are complete, TPE
samples independently of the results, so every trial up to that point or up to the next
full evaluation (whichever is first) is asked at once and all their minibatches run on
one pool. After that, trials go one at a time, as in DSPy. The choices are therefore
the same as a sequential run given the same LM answers, with 1 thread or 16.

``log_dir=`` keeps a checkpoint after every step (bootstrapped set, proposals, batch of
trials, full evaluation). Re-running with the same ``log_dir`` and settings replays the
finished trials into a fresh study without evaluating them and goes on from there.
"""

from __future__ import annotations

import logging
import math
import os
import random
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from dspex_actors._errors import ConfigurationError, OptimizerError
from dspex_actors.evaluate import ParallelExecutor
from dspex_actors.primitives import Example, Module
from dspex_actors.teleprompt._bootstrap import (
    DEFAULT_MAX_ERRORS,
    DEFAULT_NUM_THREADS,
    BootstrapFewShot,
    Metric,
)
from dspex_actors.teleprompt._budget import Budget
from dspex_actors.teleprompt._checkpoint import (
    Checkpoint,
    demos_from_json,
    demos_to_json,
    rng_from_json,
    rng_to_json,
)
from dspex_actors.teleprompt._instructions import set_instruction
from dspex_actors.teleprompt._partial import keep_partial
from dspex_actors.teleprompt._proposer import DEMOS_IN_CONTEXT, GroundedProposer, dataset_summary
from dspex_actors.teleprompt._rollouts import Job, mean_score, run_jobs
from dspex_actors.teleprompt._teleprompter import (
    Teleprompter,
    check_counts,
    check_program,
    check_trainset,
)
from dspex_actors.teleprompt._vanilla import LabeledFewShot

__all__ = ["AUTO_RUN_SETTINGS", "MIPROv2", "import_optuna"]

logger = logging.getLogger(__name__)

AUTO_RUN_SETTINGS: dict[str, dict[str, int]] = {
    "light": {"n": 6, "val_size": 100},
    "medium": {"n": 12, "val_size": 300},
    "heavy": {"n": 18, "val_size": 1000},
}
"""DSPy's auto modes: candidates ``n`` and the valset size they sample."""

MIN_MINIBATCH_SIZE = 50
"""In an auto mode, a valset larger than this is scored in minibatches (DSPy's rule)."""

TPE_STARTUP_TRIALS = 10
"""Optuna TPESampler's default ``n_startup_trials``: trials sampled independently."""

_NAME = "MIPROv2"


def import_optuna() -> Any:
    """The optuna module, or a ConfigurationError naming the extra that installs it."""
    try:
        import optuna
    except ModuleNotFoundError as exc:
        if exc.name != "optuna":
            raise
        raise ConfigurationError(
            "MIPROv2 needs the optional dependency optuna: pip install 'dspex-actors[optimizers]'"
        ) from exc
    return optuna


@dataclass
class _Trial:
    """One finished trial (or full evaluation) as the checkpoint keeps it."""

    kind: Literal["default", "trial", "full"]
    """``default``: the student; ``trial``: a sampled trial; ``full``: a periodic full eval."""
    params: dict[str, int]
    score: float
    batch: list[int] | None = None

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "params": self.params, "score": self.score, "batch": self.batch}

    @classmethod
    def from_json(cls, row: Mapping[str, Any]) -> _Trial:
        return cls(row["kind"], dict(row["params"]), float(row["score"]), row.get("batch"))


class MIPROv2(Teleprompter):
    """Optimize instructions and few-shot demo sets jointly (DSPy's MIPROv2).

    ``compile(student, trainset=..., valset=None, teacher=None, num_trials=None, ...)``
    takes DSPy's arguments and returns the best program found, with ``score``,
    ``trial_logs``, ``candidate_programs`` (full evaluations, best first; dicts with
    ``score``, ``program``, ``params``), ``mb_candidate_programs`` and ``budget`` (LM calls,
    tokens and wall time per phase) attached. ``max_errors`` failed examples per
    evaluation are tolerated (None: 10); one more raises :class:`OptimizerError` whose
    ``partial`` is the best program so far (None before the first full evaluation). Ctrl-C
    does the same. Needs the ``[optimizers]`` extra (optuna).
    """

    def __init__(
        self,
        metric: Metric,
        *,
        prompt_model: Any = None,
        task_model: Any = None,
        teacher_settings: Mapping[str, Any] | None = None,
        max_bootstrapped_demos: int = 4,
        max_labeled_demos: int = 4,
        auto: Literal["light", "medium", "heavy"] | None = "light",
        num_candidates: int | None = None,
        num_trials: int | None = None,
        minibatch: bool = True,
        minibatch_size: int = 35,
        num_threads: int | None = None,
        max_errors: int | None = None,
        seed: int = 9,
        init_temperature: float = 1.0,
        verbose: bool = False,
        track_stats: bool = True,
        log_dir: str | os.PathLike[str] | None = None,
        metric_threshold: float | None = None,
    ) -> None:
        if not callable(metric):
            raise OptimizerError(f"{_NAME}: metric must be callable, got {type(metric).__name__}")
        if auto not in {None, "light", "medium", "heavy"}:
            raise OptimizerError(
                f"{_NAME}: auto must be 'light', 'medium', 'heavy' or None, got {auto!r}"
            )
        check_counts(
            _NAME,
            ("max_bootstrapped_demos", max_bootstrapped_demos, 0),
            ("max_labeled_demos", max_labeled_demos, 0),
            ("num_candidates", num_candidates, 1),
            ("num_trials", num_trials, 1),
            ("minibatch_size", minibatch_size, 1),
            ("num_threads", num_threads, 1),
            ("max_errors", max_errors, 0),
            optional={"num_candidates", "num_trials", "num_threads", "max_errors"},
        )
        import_optuna()
        self.metric = metric
        self.prompt_model = prompt_model
        self.task_model = task_model
        self.teacher_settings: dict[str, Any] = dict(teacher_settings or {})
        self.max_bootstrapped_demos = max_bootstrapped_demos
        self.max_labeled_demos = max_labeled_demos
        self.auto = auto
        self.num_candidates = num_candidates
        self.num_trials = num_trials
        self.minibatch = minibatch
        self.minibatch_size = minibatch_size
        self.num_threads = num_threads
        self.max_errors = max_errors
        self.seed = seed
        self.init_temperature = init_temperature
        self.verbose = verbose
        self.track_stats = track_stats
        self.log_dir = log_dir
        self.metric_threshold = metric_threshold

    # -- settings ----------------------------------------------------------------------

    @staticmethod
    def trials_for(num_predictors: int, zeroshot: bool, num_candidates: int) -> int:
        """DSPy's trial count: ``max(2 * vars * log2(N), 1.5 * N)``."""
        num_vars = num_predictors * (1 if zeroshot else 2)
        return int(max(2 * num_vars * math.log2(num_candidates), 1.5 * num_candidates))

    def _resolve(
        self, program: Module, num_trials: int | None, zeroshot: bool
    ) -> tuple[int, int, int, int | None]:
        """(num_trials, instruct candidates, fewshot candidates, auto valset size or None)."""
        num_trials = num_trials if num_trials is not None else self.num_trials
        if self.auto is None:
            if self.num_candidates is None or num_trials is None:
                hint = ""
                if self.num_candidates is not None:
                    n = self.trials_for(len(program.predictors()), zeroshot, self.num_candidates)
                    hint = f"; for num_candidates={self.num_candidates} try num_trials={n}"
                raise OptimizerError(
                    f"{_NAME}: with auto=None, give both num_candidates and num_trials{hint}"
                )
            return num_trials, self.num_candidates, self.num_candidates, None
        if self.num_candidates is not None or num_trials is not None:
            raise OptimizerError(
                f"{_NAME}: auto={self.auto!r} sets num_candidates and num_trials itself; "
                "pass auto=None to set them"
            )
        settings = AUTO_RUN_SETTINGS[self.auto]
        n = settings["n"]
        instruct = n if zeroshot else int(n * 0.5)
        trials = self.trials_for(len(program.predictors()), zeroshot, n)
        return trials, instruct, n, settings["val_size"]

    # -- compile -----------------------------------------------------------------------

    def compile(
        self,
        student: Module,
        *,
        trainset: Sequence[Example],
        teacher: Module | None = None,
        valset: Sequence[Example] | None = None,
        num_trials: int | None = None,
        max_bootstrapped_demos: int | None = None,
        max_labeled_demos: int | None = None,
        seed: int | None = None,
        minibatch: bool | None = None,
        minibatch_size: int | None = None,
        minibatch_full_eval_steps: int = 5,
        program_aware_proposer: bool = True,
        data_aware_proposer: bool = True,
        view_data_batch_size: int = 10,
        tip_aware_proposer: bool = True,
        fewshot_aware_proposer: bool = True,
        **kwargs: Any,
    ) -> Module:
        """Return the best program found (see the class docstring)."""
        if kwargs:
            raise TypeError(f"{_NAME}.compile got unexpected arguments: {sorted(kwargs)}")
        check_program(student, "student", _NAME)
        train = check_trainset(trainset, _NAME)
        val = check_trainset(valset, _NAME, name="valset") if valset is not None else None
        if teacher is not None:
            check_program(teacher, "teacher", _NAME)
        mbd = (
            self.max_bootstrapped_demos
            if max_bootstrapped_demos is None
            else max_bootstrapped_demos
        )
        mld = self.max_labeled_demos if max_labeled_demos is None else max_labeled_demos
        zeroshot = mbd == 0 and mld == 0
        use_minibatch = self.minibatch if minibatch is None else minibatch
        mb_size = self.minibatch_size if minibatch_size is None else minibatch_size
        seed = seed or self.seed
        trials, n_instruct, n_fewshot, val_size = self._resolve(student, num_trials, zeroshot)

        if val is None:
            if len(train) < 2:
                raise OptimizerError(
                    f"{_NAME}: the trainset needs at least 2 examples when no valset is given"
                )
            size = min(1000, max(1, int(len(train) * 0.80)))
            cutoff = len(train) - size
            train, val = train[:cutoff], train[cutoff:]

        run = _Run(
            self,
            student=student.deepcopy(),
            teacher=teacher,
            trainset=train,
            valset=val,
            seed=seed,
            settings={
                "seed": seed,
                "auto": self.auto,
                "num_trials": trials,
                "n_instruct": n_instruct,
                "n_fewshot": n_fewshot,
                "max_bootstrapped_demos": mbd,
                "max_labeled_demos": mld,
                "minibatch": use_minibatch,
                "minibatch_size": mb_size,
                "minibatch_full_eval_steps": minibatch_full_eval_steps,
                "program_aware": program_aware_proposer,
                "data_aware": data_aware_proposer,
                "view_data_batch_size": view_data_batch_size,
                "tip_aware": tip_aware_proposer,
                "fewshot_aware": fewshot_aware_proposer,
                "trainset": len(train),
                "valset": len(val),
                "instructions": [p.signature.instructions for p in student.predictors()],
            },
            val_size=val_size,
        )
        return run.execute()


class _Run:
    """One compile's state: its RNG, checkpoint, budget and the steps' results."""

    def __init__(
        self,
        owner: MIPROv2,
        *,
        student: Module,
        teacher: Module | None,
        trainset: list[Example],
        valset: list[Example],
        seed: int,
        settings: dict[str, Any],
        val_size: int | None,
    ) -> None:
        self.o = owner
        self.student = student
        self.teacher = teacher
        self.trainset = trainset
        self.valset = valset
        self.seed = seed
        self.settings = settings
        self.val_size = val_size
        self.num_threads = owner.num_threads or DEFAULT_NUM_THREADS
        self.max_errors = owner.max_errors if owner.max_errors is not None else DEFAULT_MAX_ERRORS
        self.checkpoint = Checkpoint(owner.log_dir, "miprov2")
        self.budget = Budget(_NAME)
        self.rng = random.Random(seed)
        self.state: dict[str, Any] = {}
        self.best_params: dict[str, int] | None = None
        self.best_score = -math.inf
        self.val: list[Example] = []
        self.use_minibatch = True
        self.instructions: dict[int, list[str]] = {}
        self.demos: dict[int, list[list[Example]]] | None = None
        self.trials: list[_Trial] = []
        self.by_combo: dict[str, list[tuple[float, dict[str, int]]]] = {}
        self.fully_evaled: dict[str, float] = {}
        self.step = "choosing the valset"

    # -- checkpoint ---------------------------------------------------------------------

    def _save(self) -> None:
        self.state["rng"] = rng_to_json(self.rng)
        self.state["budget"] = self.budget.to_dict()
        self.checkpoint.save(self.settings, self.state)

    def _partial(self) -> Module | None:
        return None if self.best_params is None else self._program(self.best_params)

    # -- the steps -----------------------------------------------------------------------

    def execute(self) -> Module:
        saved = self.checkpoint.load(self.settings)
        if saved is not None:
            self.state = saved
            self.rng = rng_from_json(saved["rng"])
        with keep_partial(_NAME, self._partial, self._where):
            self._choose_valset()
            self.step = "bootstrapping"
            with self.budget.phase("bootstrap"):
                demo_candidates = self._bootstrap()
            self.step = "proposing instructions"
            with self.budget.phase("propose"):
                instructions = self._propose(demo_candidates)
            self.instructions = instructions
            self.demos = (
                None
                if self.settings["max_bootstrapped_demos"] == 0
                and (self.settings["max_labeled_demos"] == 0)
                else demo_candidates
            )
            self.step = "search"
            with self.budget.phase("search"):
                self._search()
        self.budget.log()
        return self._result()

    def _where(self) -> str:
        if self.step == "search":
            return f"trial {len(self.trials) + 1}"
        return self.step

    def _choose_valset(self) -> None:
        if "valset_indices" not in self.state:
            indices = list(range(len(self.valset)))
            minibatch = self.settings["minibatch"]
            if self.val_size is not None:
                size = min(self.val_size, len(self.valset))
                indices = self.rng.sample(range(len(self.valset)), size)
                minibatch = len(indices) > MIN_MINIBATCH_SIZE
            self.state["valset_indices"] = indices
            self.state["use_minibatch"] = minibatch
            self._save()
        self.val = [self.valset[i] for i in self.state["valset_indices"]]
        self.use_minibatch = bool(self.state["use_minibatch"])
        if self.use_minibatch and self.settings["minibatch_size"] > len(self.val):
            raise OptimizerError(
                f"{_NAME}: minibatch_size={self.settings['minibatch_size']} exceeds the valset "
                f"size {len(self.val)}; lower it or pass minibatch=False"
            )

    # -- step 1: demo sets ----------------------------------------------------------------

    def _bootstrap(self) -> dict[int, list[list[Example]]]:
        settings = self.settings
        zeroshot = settings["max_bootstrapped_demos"] == 0 and settings["max_labeled_demos"] == 0
        mld = 0 if zeroshot else settings["max_labeled_demos"]
        mbd = DEMOS_IN_CONTEXT if zeroshot else settings["max_bootstrapped_demos"]
        if "demo_plan" not in self.state:
            plan = []
            for seed in range(-3, settings["n_fewshot"] - 3):
                entry: dict[str, Any] = {"seed": seed, "order": None, "size": mbd}
                if seed >= 0 or (seed == -2 and mld == 0):
                    order = list(range(len(self.trainset)))
                    self.rng.shuffle(order)
                    entry["order"] = order
                    entry["size"] = self.rng.randint(1, max(1, mbd))
                plan.append(entry)
            self.state["demo_plan"] = plan
            self.state["demo_sets"] = {}
            self._save()
        plan = self.state["demo_plan"]
        done: dict[str, Any] = self.state["demo_sets"]
        pending = [entry for entry in plan if str(entry["seed"]) not in done]
        if pending:
            outer = max(1, min(len(pending), self.num_threads))
            inner = max(1, self.num_threads // outer)
            executor = ParallelExecutor(outer)
            stream = executor.iter_outcomes(lambda e: self._demo_set(e, mld, inner), pending)
            for outcome in stream:
                if outcome.failure is not None:
                    stream.close()
                    raise OptimizerError(
                        f"{_NAME}: bootstrapping demo set {outcome.item['seed']} failed: "
                        f"{outcome.failure.error_type}: {outcome.failure.message}",
                        partial=None,
                    ) from outcome.failure.exception
                done[str(outcome.item["seed"])] = outcome.value
                self._save()
        count = len(self.student.predictors())
        candidates: dict[int, list[list[Example]]] = {i: [] for i in range(count)}
        for entry in plan:
            sets = done[str(entry["seed"])]
            for i in range(count):
                candidates[i].append(demos_from_json(sets[i]))
        return candidates

    def _demo_set(
        self, entry: Mapping[str, Any], mld: int, threads: int
    ) -> list[list[dict[str, Any]]]:
        seed = entry["seed"]
        student = self._with_task_model(self.student)
        if seed == -3:
            program = student.reset_copy()
        elif seed == -2 and mld > 0:
            program = LabeledFewShot(k=mld).compile(
                student, trainset=list(self.trainset), sample=True
            )
        else:
            order = entry["order"]
            train = list(self.trainset) if order is None else [self.trainset[i] for i in order]
            program = BootstrapFewShot(
                metric=self.o.metric,
                metric_threshold=self.o.metric_threshold,
                teacher_settings=self.o.teacher_settings,
                max_bootstrapped_demos=entry["size"],
                max_labeled_demos=mld,
                max_errors=self.max_errors,
                num_threads=threads,
            ).compile(student, teacher=self.teacher, trainset=train)
        return [demos_to_json(p.demos) for p in program.predictors()]

    # -- step 2: instructions ---------------------------------------------------------------

    def _propose(self, demo_candidates: dict[int, list[list[Example]]]) -> dict[int, list[str]]:
        settings = self.settings
        if "instructions" in self.state:
            return {int(k): list(v) for k, v in self.state["instructions"].items()}
        if "data_summary" not in self.state:
            summary = None
            if settings["data_aware"]:
                summary = dataset_summary(
                    self.trainset, settings["view_data_batch_size"], self.o.prompt_model
                )
            self.state["data_summary"] = summary
            self._save()
        proposer = GroundedProposer(
            prompt_model=self.o.prompt_model,
            program=self.student,
            data_summary=self.state["data_summary"],
            program_aware=settings["program_aware"],
            use_task_demos=settings["fewshot_aware"],
            use_tip=settings["tip_aware"],
            init_temperature=self.o.init_temperature,
        )
        specs = proposer.plan(self.student, demo_candidates, settings["n_instruct"], self.rng)
        texts = proposer.propose(self.student, demo_candidates, specs, self.num_threads)
        proposed: dict[int, list[str]] = {i: [] for i in range(len(self.student.predictors()))}
        for spec, text in zip(specs, texts, strict=True):
            proposed[spec.pred_i].append(text)
        for i, predictor in enumerate(self.student.predictors()):
            if proposed[i]:
                proposed[i][0] = predictor.signature.instructions
            else:
                proposed[i] = [predictor.signature.instructions]
            for j, text in enumerate(proposed[i]):
                logger.info("%s: predictor %d instruction %d: %s", _NAME, i, j, text)
        self.state["instructions"] = {str(k): v for k, v in proposed.items()}
        self._save()
        return proposed

    # -- step 3: the search -------------------------------------------------------------------

    def _with_task_model(self, program: Module) -> Module:
        if self.o.task_model is None:
            return program
        copy = program.deepcopy()
        for predictor in copy.predictors():
            if predictor.lm is None:
                predictor.lm = self.o.task_model
        return copy

    def _program(self, params: Mapping[str, int]) -> Module:
        program = self.student.deepcopy()
        for i, predictor in enumerate(program.predictors()):
            set_instruction(predictor, self.instructions[i][params[f"{i}_predictor_instruction"]])
            if self.demos is not None:
                predictor.demos = list(self.demos[i][params[f"{i}_predictor_demos"]])
        return program

    def _distributions(self, optuna: Any) -> dict[str, Any]:
        categorical = optuna.distributions.CategoricalDistribution
        dists: dict[str, Any] = {}
        for i in range(len(self.instructions)):
            dists[f"{i}_predictor_instruction"] = categorical(
                tuple(range(len(self.instructions[i])))
            )
            if self.demos is not None:
                dists[f"{i}_predictor_demos"] = categorical(tuple(range(len(self.demos[i]))))
        return dists

    def _suggest(self, trial: Any) -> dict[str, int]:
        params: dict[str, int] = {}
        for i in range(len(self.instructions)):
            key = f"{i}_predictor_instruction"
            params[key] = int(
                trial.suggest_categorical(key, tuple(range(len(self.instructions[i]))))
            )
            if self.demos is not None:
                key = f"{i}_predictor_demos"
                params[key] = int(trial.suggest_categorical(key, tuple(range(len(self.demos[i])))))
        return params

    def _score(self, jobs: list[tuple[dict[str, int], list[int]]]) -> list[float]:
        """Score each (params, valset indices) on one pool; scores in job order."""
        flat: list[Job] = []
        for position, (params, batch) in enumerate(jobs):
            program = self._with_task_model(self._program(params))
            flat.extend(Job(program, self.val[i], position) for i in batch)
        metric = self.o.metric
        rollouts = run_jobs(
            flat,
            lambda example, prediction, _trace: metric(example, prediction),
            num_threads=self.num_threads,
            max_errors=self.max_errors,
            optimizer=_NAME,
            partial=self._partial(),
        )
        scores = []
        for position in range(len(jobs)):
            scores.append(mean_score([r for r in rollouts if r.job.tag == position]))
        return scores

    def _search(self) -> None:
        optuna = import_optuna()
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            sampler = optuna.samplers.TPESampler(seed=self.seed, multivariate=True)
        study = optuna.create_study(direction="maximize", sampler=sampler)
        dists = self._distributions(optuna)
        settings = self.settings
        num_trials = settings["num_trials"]
        steps = settings["minibatch_full_eval_steps"]
        full_size = len(self.val)
        minibatch = self.use_minibatch
        extra = 1 if num_trials % steps != 0 else 0
        adjusted = num_trials + num_trials // steps + 1 + extra if minibatch else num_trials

        self.trials = [_Trial.from_json(t) for t in self.state.get("trials", [])]
        default = dict.fromkeys(dists, 0)
        if not self.trials:
            score = self._score([(default, list(range(full_size)))])[0]
            self.trials.append(_Trial("default", default, score))
            self._record()
        self.best_params, self.best_score = dict(default), self.trials[0].score
        study.add_trial(
            optuna.trial.create_trial(params=default, distributions=dists, value=self.best_score)
        )

        done = 0
        replay = list(self.trials[1:])
        while replay:  # finished trials go back into the study; nothing is evaluated again
            row = replay.pop(0)
            if row.kind == "full":
                self._apply_full(study, optuna, dists, row)
                continue
            trial = study.ask()
            params = self._suggest(trial)
            if params != row.params:
                raise OptimizerError(
                    f"{_NAME}: the checkpoint in {self.checkpoint.path} does not replay (trial "
                    f"{done + 1} sampled {params}, saved {row.params}); use a fresh log_dir"
                )
            study.tell(trial, row.score)
            self._apply_minibatch(row, minibatch)
            done += 1

        while done < num_trials:
            batch: list[tuple[Any, dict[str, int], list[int]]] = []
            complete = len(study.trials) - len(batch)
            while done + len(batch) < num_trials:
                trial_num = len(study.trials) + 1  # DSPy's numbering: trial.number + 1
                trial = study.ask()
                params = self._suggest(trial)
                size = settings["minibatch_size"] if minibatch else full_size
                indices = (
                    self.rng.sample(range(full_size), size)
                    if size < full_size
                    else list(range(full_size))
                )
                batch.append((trial, params, indices))
                full_due = minibatch and (trial_num % (steps + 1) == 0 or trial_num == adjusted - 1)
                if full_due or complete + len(batch) >= TPE_STARTUP_TRIALS:
                    break
            scores = self._score([(params, indices) for _, params, indices in batch])
            for (trial, params, indices), score in zip(batch, scores, strict=True):
                trial_num = trial.number + 1
                study.tell(trial, score)
                row = _Trial("trial", params, score, indices)
                self.trials.append(row)
                self._apply_minibatch(row, minibatch)
                done += 1
                logger.info("%s trial %d/%d: %s -> %s", _NAME, trial_num, adjusted, params, score)
                if minibatch and (trial_num % (steps + 1) == 0 or trial_num == adjusted - 1):
                    self._record()
                    self._full_eval(study, optuna, dists)
            self._record()

    def _record(self) -> None:
        self.state["trials"] = [t.to_json() for t in self.trials]
        self._save()

    def _apply_minibatch(self, row: _Trial, minibatch: bool) -> None:
        key = ",".join(f"{k}={v}" for k, v in sorted(row.params.items()))
        if minibatch:
            self.by_combo.setdefault(key, []).append((row.score, row.params))
        elif row.score > self.best_score:
            self.best_score, self.best_params = row.score, dict(row.params)

    def _full_eval(self, study: Any, optuna: Any, dists: dict[str, Any]) -> None:
        """Fully evaluate the best-averaging combination not yet fully evaluated."""
        ranked = sorted(
            (
                (sum(s for s, _ in rows) / len(rows), key, rows[0][1])
                for key, rows in self.by_combo.items()
            ),
            key=lambda item: item[0],
            reverse=True,
        )
        chosen = next(
            ((key, params) for _, key, params in ranked if key not in self.fully_evaled), None
        )
        if chosen is None:
            logger.info("%s: every minibatch combination is already fully evaluated", _NAME)
            return
        _, params = chosen
        score = self._score([(params, list(range(len(self.val))))])[0]
        row = _Trial("full", params, score)
        self.trials.append(row)
        self._apply_full(study, optuna, dists, row)
        self._record()

    def _apply_full(self, study: Any, optuna: Any, dists: dict[str, Any], row: _Trial) -> None:
        study.add_trial(
            optuna.trial.create_trial(params=row.params, distributions=dists, value=row.score)
        )
        key = ",".join(f"{k}={v}" for k, v in sorted(row.params.items()))
        self.fully_evaled[key] = row.score
        if row.score > self.best_score:
            self.best_score, self.best_params = row.score, dict(row.params)

    # -- result -----------------------------------------------------------------------------

    def _result(self) -> Module:
        assert self.best_params is not None
        best = self._program(self.best_params)
        best._compiled = True
        best.budget = self.budget.to_dict()  # type: ignore[attr-defined]
        if self.o.track_stats:
            size = len(self.val)
            full = [t for t in self.trials if t.batch is None or len(t.batch) >= size]
            mb = [t for t in self.trials if t.batch is not None and len(t.batch) < size]
            best.score = self.best_score  # type: ignore[attr-defined]
            best.trial_logs = {  # type: ignore[attr-defined]
                number: t.to_json() for number, t in enumerate(self.trials, start=1)
            }
            best.candidate_programs = [  # type: ignore[attr-defined]
                {"score": t.score, "params": t.params, "program": self._program(t.params)}
                for t in sorted(full, key=lambda t: t.score, reverse=True)
            ]
            best.mb_candidate_programs = [  # type: ignore[attr-defined]
                {"score": t.score, "params": t.params, "program": self._program(t.params)}
                for t in sorted(mb, key=lambda t: t.score, reverse=True)
            ]
            best.total_calls = self.budget.total.lm_calls  # type: ignore[attr-defined]
        logger.info("%s: best full score %s with %s", _NAME, self.best_score, self.best_params)
        return best
