"""``dspex-actors demo``: the whole loop in one command, offline by default.

Without ``--model`` it starts the local LM server with a *simulated weak model* (it gets
a stable share of arithmetic questions wrong without demos, right with them), then runs
Predict -> Evaluate -> BootstrapFewShot -> Evaluate and prints the before/after scores,
the chosen demos and the system's counters. With ``--model`` the same runs against a
real OpenAI-compatible server.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import time
from collections.abc import Iterator

from dspex_actors._errors import ConfigurationError
from dspex_actors.cli._data import check_output_path
from dspex_actors.cli._options import (
    add_lm_options,
    add_system_options,
    lm_from_args,
    non_negative_float,
    positive_int,
    system_from_args,
)
from dspex_actors.cli._report import format_demos, format_score, format_stats
from dspex_actors.evaluate import Evaluate, answer_exact_match
from dspex_actors.lm import LM
from dspex_actors.predict import Predict
from dspex_actors.primitives import Example
from dspex_actors.teleprompt import BootstrapFewShot
from dspex_actors.testing import WEAK_WRONG_RATE, LocalLMServer, arithmetic_dataset

__all__ = ["add_demo_parser", "run_demo"]

logger = logging.getLogger(__name__)

SIGNATURE = "question -> answer"
LOCAL_MODEL = "openai/weak-arithmetic-sim"
SIMULATION_KEY = "not-a-real-key"
"""Sent to the local server so that a real key in the environment never goes there."""


def add_demo_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``demo``."""
    parser = subparsers.add_parser(
        "demo",
        help="run Predict -> Evaluate -> BootstrapFewShot -> Evaluate (offline by default)",
        description=(
            "Run the whole DSPy loop on small arithmetic questions: evaluate a Predict "
            "program, let BootstrapFewShot pick few-shot demos, evaluate again. Without "
            "--model it is fully offline: a local server plays a SIMULATED weak model."
        ),
    )
    parser.add_argument("--train", type=positive_int, default=16, help="trainset size (16)")
    parser.add_argument("--dev", type=positive_int, default=40, help="devset size (40)")
    parser.add_argument("--threads", type=positive_int, default=8, help="parallel workers (8)")
    parser.add_argument("--seed", type=int, default=0, help="dataset seed (0)")
    parser.add_argument(
        "--latency",
        type=non_negative_float,
        default=0.05,
        help="seconds the simulated model takes per reply (0.05); offline mode only",
    )
    parser.add_argument(
        "--max-demos", type=positive_int, default=4, help="demos BootstrapFewShot may pick (4)"
    )
    parser.add_argument("--save", metavar="PROGRAM.json", help="save the compiled program here")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    add_lm_options(parser, required=False)
    add_system_options(parser)
    parser.set_defaults(handler=run_demo)


@contextlib.contextmanager
def _language_model(args: argparse.Namespace) -> Iterator[LM]:
    """The LM of the demo: a real one from the options, else the local simulation."""
    if args.model is not None:
        print(f"Using the real model {args.model} at {args.api_base or 'its default endpoint'}.")
        yield lm_from_args(args)
        return
    with LocalLMServer("weak", latency=args.latency, model=LOCAL_MODEL.partition("/")[2]) as server:
        print(
            "NOTE: this demo talks to a SIMULATED weak model, not a real LM. A local server\n"
            f"at {server.url} answers about {round(WEAK_WRONG_RATE * 100)}% of the arithmetic "
            "questions wrongly (off by one)\n"
            "when its prompt has no examples, and correctly once it is shown a few.\n"
            "Pass --model PROVIDER/NAME (and --api-base URL) to run the same against a real LM."
        )
        if os.environ.get("OPENAI_API_KEY"):
            print("(OPENAI_API_KEY is set: add --model openai/gpt-4o-mini to use it.)")
        args.model, args.api_base, args.api_key_env = LOCAL_MODEL, server.url, None
        yield lm_from_args(args, api_key=SIMULATION_KEY)


def _section(title: str) -> None:
    print(f"\n== {title}", flush=True)


def run_demo(args: argparse.Namespace) -> int:
    """Run the demo; returns the exit code."""
    if args.save:
        check_output_path(args.save, "--save")
    try:
        rows = arithmetic_dataset(args.train + args.dev, seed=args.seed)
    except ValueError as exc:
        raise ConfigurationError(f"--train/--dev: {exc}") from None
    data = [Example(row).with_inputs("question") for row in rows]
    trainset, devset = data[: args.train], data[args.train :]
    show = not args.no_progress
    started = time.perf_counter()
    with _language_model(args) as lm, system_from_args(args, lm) as system:
        print(
            f"Actor system up: supervisor {system.name!r} with a Cache actor; the Client actor "
            f"for {lm.model} starts on first use."
        )
        evaluate = Evaluate(
            devset=devset,
            metric=answer_exact_match,
            num_threads=args.threads,
            display_progress=show,
        )
        program = Predict(SIGNATURE)

        _section(f"1. Predict({SIGNATURE!r}) on one question")
        sample = devset[0]
        prediction = program(question=sample.question)
        verdict = "right" if answer_exact_match(sample, prediction) else "WRONG"
        print(f"  {sample.question} -> {prediction.answer}   (gold: {sample.answer}, {verdict})")

        _section(f"2. Evaluate on {len(devset)} dev questions, {args.threads} workers")
        t0 = time.perf_counter()
        before = evaluate(program)
        print(f"  score before: {format_score(before)}  [{time.perf_counter() - t0:.2f}s]")

        _section(f"3. BootstrapFewShot on {len(trainset)} training questions")
        t0 = time.perf_counter()
        optimizer = BootstrapFewShot(
            metric=answer_exact_match,
            max_bootstrapped_demos=args.max_demos,
            max_labeled_demos=args.max_demos,
            num_threads=args.threads,
        )
        compiled = optimizer.compile(program, trainset=trainset)
        print(
            "  The program ran as a teacher on the training questions (in parallel); traces "
            "the metric\n  accepted became few-shot demos. "
            f"Chosen demos  [{time.perf_counter() - t0:.2f}s]:"
        )
        for line in format_demos(compiled, indent="    "):
            print(line)

        _section("4. Evaluate the compiled program on the same dev questions")
        t0 = time.perf_counter()
        after = evaluate(compiled)
        print(f"  score after:  {format_score(after)}  [{time.perf_counter() - t0:.2f}s]")

        _section("5. Evaluate it once more: every answer now comes from the Cache actor")
        t0 = time.perf_counter()
        again = evaluate(compiled, display_progress=False)
        print(f"  score again:  {format_score(again)}  [{time.perf_counter() - t0:.2f}s]")

        _section("Results")
        print(f"  before: {before.score}%   after: {after.score}%")
        if args.save:
            compiled.save(args.save)
            print(f"  compiled program saved to {args.save}")
        print("  counters (system.stats()):")
        for line in format_stats(system.stats(), indent="    "):
            print(line)
    print(f"\nDone in {time.perf_counter() - started:.1f}s; all actors stopped.")
    return 0
