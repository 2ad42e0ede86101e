"""MIPROv2's grounded instruction proposer: a dataset summary, then one proposal per demo set.

DSPy 3.4.1's prompts and flow (``dspy/propose``): the summary is built by an observer
that reads the trainset ten examples at a time (at most ten calls) and a summarizer;
each proposal describes the program and the module (when program-aware), shows up to
three bootstrapped demos from its demo set and the ones after it, a random prompting
tip, and asks for a new instruction at ``init_temperature`` with a fresh rollout id.
Every random draw (tip, rollout id) is made up front in DSPy's order, then the
proposals -- independent of each other -- run concurrently on the executor.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dspex_actors.evaluate import ParallelExecutor
from dspex_actors.predict import Predict
from dspex_actors.primitives import Example, Module
from dspex_actors.signatures import InputField, OutputField, Signature
from dspex_actors.teleprompt._instructions import example_string, program_source, strip_prefix

__all__ = ["TIPS", "GroundedProposer", "ProposalSpec", "dataset_summary"]

TIPS: dict[str, str] = {
    "none": "",
    "creative": "Don't be afraid to be creative when creating the new instruction!",
    "simple": "Keep the instruction clear and concise.",
    "description": "Make sure your instruction is very informative and descriptive.",
    "high_stakes": "The instruction should include a high stakes scenario in which the LM must "
    "solve the task!",
    "persona": 'Include a persona that is relevant to the task in the instruction (ie. "You are '
    'a ...")',
}
"""DSPy's prompting tips, one drawn per proposal."""

DEMOS_IN_CONTEXT = 3
"""Bootstrapped demos shown to the proposer (DSPy's BOOTSTRAPPED_FEWSHOT_EXAMPLES_IN_CONTEXT)."""

_MAX_SUMMARY_CALLS = 10
_INPUT_KEYS = re.compile(r"input_keys=\{([^\}]+)\}")


class DatasetDescriptor(Signature):
    """Given several examples from a dataset please write observations about trends that hold for most or all of the samples. Some areas you may consider in your observations: topics, content, syntax, conciseness, etc. It will be useful to make an educated guess as to the nature of the task this dataset will enable. Don't be afraid to be creative"""  # noqa: E501

    examples: str = InputField(desc="Sample data points from the dataset")
    observations: str = OutputField(
        desc="Somethings that holds true for most or all of the data you observed"
    )


class DatasetDescriptorWithPriorObservations(Signature):
    """Given several examples from a dataset please write observations about trends that hold for most or all of the samples. I will also provide you with a few observations I have already made.  Please add your own observations or if you feel the observations are comprehensive say 'COMPLETE' Some areas you may consider in your observations: topics, content, syntax, conciceness, etc. It will be useful to make an educated guess as to the nature of the task this dataset will enable. Don't be afraid to be creative"""  # noqa: E501

    examples: str = InputField(desc="Sample data points from the dataset")
    prior_observations: str = InputField(desc="Some prior observations I made about the data")
    observations: str = OutputField(
        desc="Somethings that holds true for most or all of the data you observed or COMPLETE "
        "if you have nothing to add"
    )


class ObservationSummarizer(Signature):
    """Given a series of observations I have made about my dataset, please summarize them into a brief 2-3 sentence summary which highlights only the most important details."""  # noqa: E501

    observations: str = InputField(desc="Observations I have made about my dataset")
    summary: str = OutputField(
        desc="Two to Three sentence summary of only the most significant highlights of my "
        "observations"
    )


class DescribeProgram(Signature):
    """Below is some pseudo-code for a pipeline that solves tasks with calls to language models. Please describe what type of task this program appears to be designed to solve, and how it appears to work."""  # noqa: E501

    program_code: str = InputField(
        desc="Pseudocode for a language model program designed to solve a particular task."
    )
    program_example: str = InputField(desc="An example of the program in use.")
    program_description: str = OutputField(
        desc="Describe what task the program is designed to solve, and how it goes about "
        "solving this task."
    )


class DescribeModule(Signature):
    """Below is some pseudo-code for a pipeline that solves tasks with calls to language models. Please describe the purpose of one of the specified module in this pipeline."""  # noqa: E501

    program_code: str = InputField(
        desc="Pseudocode for a language model program designed to solve a particular task."
    )
    program_example: str = InputField(desc="An example of the program in use.")
    program_description: str = InputField(
        desc="Summary of the task the program is designed to solve, and how it goes about "
        "solving it."
    )
    module: str = InputField(desc="The module in the program that we want to describe.")
    module_description: str = OutputField(
        desc="Description of the module's role in the broader program."
    )


def instruction_signature(*, dataset: bool, program_aware: bool, with_tip: bool) -> type[Signature]:
    """DSPy's ``GenerateSingleModuleInstruction`` with the optional fields chosen."""

    class GenerateSingleModuleInstruction(Signature):
        """Use the information below to learn about a task that we are trying to solve using calls to an LM, then generate a new instruction that will be used to prompt a Language Model to better solve the task."""  # noqa: E501

        if dataset:
            dataset_description: str = InputField(
                desc="A description of the dataset that we are using."
            )
        if program_aware:
            program_code: str = InputField(
                desc="Language model program designed to solve a particular task."
            )
            program_description: str = InputField(
                desc="Summary of the task the program is designed to solve, and how it goes "
                "about solving it."
            )
            module: str = InputField(desc="The module to create an instruction for.")
            module_description: str = InputField(
                desc="Description of the module to create an instruction for."
            )
        task_demos: str = InputField(desc="Example inputs/outputs of our module.")
        basic_instruction: str = InputField(desc="Basic instruction.")
        if with_tip:
            tip: str = InputField(
                desc="A suggestion for how to go about generating the new instruction."
            )
        proposed_instruction: str = OutputField(
            desc="Propose an instruction that will be used to prompt a Language Model to "
            "perform this task."
        )

    return GenerateSingleModuleInstruction


def _examples_text(rows: Sequence[Example]) -> str:
    text = "[" + ", ".join(repr(row) for row in rows) + "]"
    return _INPUT_KEYS.sub(
        lambda m: (
            "input_keys={" + ", ".join(sorted(k.strip() for k in m.group(1).split(","))) + "}"
        ),
        text,
    )


def dataset_summary(trainset: Sequence[Example], view_data_batch_size: int, lm: Any) -> str:
    """DSPy's ``create_dataset_summary``: observe in batches, then summarize (sequential)."""
    config = {"temperature": 1.0, "n": 1}
    upper = min(len(trainset), view_data_batch_size)
    first = Predict(DatasetDescriptor)(
        examples=_examples_text(trainset[:upper]), lm=lm, config=config
    )
    observations = str(first.observations)
    skips = 0
    calls = 0
    for start in range(view_data_batch_size, len(trainset), view_data_batch_size):
        calls += 1
        if calls >= _MAX_SUMMARY_CALLS:
            break
        rows = trainset[start : min(len(trainset), start + view_data_batch_size)]
        more = str(
            Predict(DatasetDescriptorWithPriorObservations)(
                prior_observations=observations,
                examples=_examples_text(rows),
                lm=lm,
                config=config,
            ).observations
        )
        if len(more) >= 8 and more[:8].upper() == "COMPLETE":
            skips += 1
            if skips >= 5:
                break
            continue
        observations += more
    summary = Predict(ObservationSummarizer)(observations=observations, lm=lm, config=config)
    return strip_prefix(str(summary.summary))


@dataclass(frozen=True)
class ProposalSpec:
    """One proposal to make: predictor, demo set, tip and rollout id (drawn up front)."""

    pred_i: int
    demo_set_i: int
    tip: str
    rollout_id: int


class GroundedProposer:
    """Proposes ``N`` instructions per predictor, grounded in data, program and demos."""

    def __init__(
        self,
        *,
        prompt_model: Any,
        program: Module,
        data_summary: str | None,
        program_aware: bool = True,
        use_task_demos: bool = True,
        use_tip: bool = True,
        init_temperature: float = 1.0,
    ) -> None:
        self.prompt_model = prompt_model
        self.program_aware = program_aware
        self.use_task_demos = use_task_demos
        self.use_tip = use_tip
        self.data_summary = data_summary
        self.init_temperature = init_temperature
        self.program_code = program_source(program) if program_aware else None

    def plan(
        self,
        program: Module,
        demo_candidates: Mapping[int, list[list[Example]]] | None,
        n: int,
        rng: random.Random,
    ) -> list[ProposalSpec]:
        """The proposals DSPy makes, with its random draws in its order."""
        num_demos = max(len(demo_candidates[0]), 1) if demo_candidates else n
        specs = []
        for pred_i in range(len(program.predictors())):
            for demo_set_i in range(num_demos)[: min(n, num_demos)]:
                tip = TIPS[rng.choice(list(TIPS))] if self.use_tip else ""
                specs.append(ProposalSpec(pred_i, demo_set_i, tip, rng.randint(0, 10**9)))
        return specs

    def propose(
        self,
        program: Module,
        demo_candidates: Mapping[int, list[list[Example]]] | None,
        specs: Sequence[ProposalSpec],
        num_threads: int,
    ) -> list[str]:
        """Run the planned proposals concurrently; the instructions in ``specs`` order."""
        executor = ParallelExecutor(max(1, min(num_threads, len(specs))))
        outcomes = executor.run(lambda s: self._propose_one(program, demo_candidates, s), specs)
        texts = []
        for outcome in outcomes:
            if outcome.failure is not None:
                raise outcome.failure.exception or RuntimeError(outcome.failure.message)
            texts.append(str(outcome.value))
        return texts

    def _propose_one(
        self,
        program: Module,
        demo_candidates: Mapping[int, list[list[Example]]] | None,
        spec: ProposalSpec,
    ) -> str:
        predictor = program.predictors()[spec.pred_i]
        signature = predictor.signature
        config = {"temperature": self.init_temperature, "rollout_id": spec.rollout_id}
        lm = self.prompt_model
        task_demos = ""
        if self.use_task_demos and demo_candidates:
            sets = demo_candidates[spec.pred_i]
            adjacent = [
                sets[spec.demo_set_i],
                *sets[spec.demo_set_i + 1 :],
                *sets[: spec.demo_set_i],
            ]
            shown = [
                example_string(signature, demo)
                for demo_set in adjacent
                for demo in demo_set
                if "augmented" in demo
            ][:DEMOS_IN_CONTEXT]
            task_demos = "\n\n".join(shown) + "\n\n"
        if not task_demos.strip() or spec.demo_set_i == 0:
            task_demos = "No task demos provided."

        inputs: dict[str, Any] = {
            "task_demos": task_demos,
            "basic_instruction": signature.instructions,
        }
        program_aware = self.program_aware and self.program_code is not None
        if program_aware:
            description = strip_prefix(
                str(
                    Predict(DescribeProgram)(
                        program_code=self.program_code,
                        program_example=task_demos,
                        lm=lm,
                        config=config,
                    ).program_description
                )
            )
            module = (
                f"{type(predictor).__name__}({', '.join(signature.input_fields)}) -> "
                f"{', '.join(signature.output_fields)}"
            )
            module_description = Predict(DescribeModule)(
                program_code=self.program_code,
                program_description=description,
                program_example=task_demos,
                module=module,
                lm=lm,
                config=config,
            ).module_description
            inputs.update(
                program_code=self.program_code,
                program_description=description,
                module=module,
                module_description=str(module_description),
            )
        use_dataset = self.data_summary is not None
        if use_dataset:
            inputs["dataset_description"] = self.data_summary
        if spec.tip:
            inputs["tip"] = spec.tip
        generator = Predict(
            instruction_signature(
                dataset=use_dataset, program_aware=program_aware, with_tip=bool(spec.tip)
            )
        )
        proposed = generator(**inputs, lm=lm, config=config).proposed_instruction
        return strip_prefix(str(proposed))
