"""``dspex-actors evaluate`` and ``dspex-actors compile``: the practitioner's commands."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from dspex_actors._errors import ConfigurationError, EvaluationAborted, EvaluationInterrupted
from dspex_actors.cli._data import Dataset, check_output_path, load_jsonl, write_jsonl
from dspex_actors.cli._metrics import METRICS, MetricChoice, metric_choice, resolve_metric
from dspex_actors.cli._options import (
    add_lm_options,
    add_system_options,
    lm_from_args,
    non_negative_int,
    positive_int,
    system_from_args,
)
from dspex_actors.cli._report import diagnose_failures, first_tracebacks, format_demos
from dspex_actors.evaluate import Evaluate, EvaluationResult
from dspex_actors.predict import ChainOfThought, Predict, load_program, signature_to_string
from dspex_actors.primitives import Module
from dspex_actors.signatures import ensure_signature
from dspex_actors.teleprompt import BootstrapFewShot

__all__ = ["add_compile_parser", "add_evaluate_parser", "run_compile", "run_evaluate"]

logger = logging.getLogger(__name__)

_METRIC_HELP = ", ".join(f"{name} ({text})" for name, text in METRICS.items())


def _add_metric_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--metric",
        type=metric_choice,
        default=MetricChoice("exact_match"),
        metavar="NAME",
        help=f"{_METRIC_HELP}; or module:function for your own metric(example, pred, trace)",
    )
    parser.add_argument(
        "--answer-field",
        default="answer",
        metavar="FIELD",
        help="the output field the built-in metrics compare with the data (answer)",
    )


def _add_data_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--threads", type=positive_int, default=8, help="examples run in parallel (8)"
    )
    parser.add_argument(
        "--skip-bad",
        action="store_true",
        help="record bad data lines (with their line numbers) and go on without them",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def add_evaluate_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``evaluate``."""
    parser = subparsers.add_parser(
        "evaluate",
        help="score a saved program on a JSONL dataset",
        description=(
            "Evaluate a program saved with program.save() (its signature is in the file) "
            "or with DSPy's program.save() (the signature comes from DSPy's default "
            "instructions, or from --signature) on a JSONL dataset (one JSON object per "
            "line holding the program's input fields and the gold answer), in parallel; "
            "print the score and optionally write one result per example."
        ),
    )
    parser.add_argument("program", metavar="PROGRAM.json", help="a saved program")
    parser.add_argument("data", metavar="DATA.jsonl", help="the examples, one JSON object a line")
    parser.add_argument(
        "--signature",
        metavar="SIG",
        help=(
            "the program's signature, e.g. 'question -> answer: int', for a file saved by "
            "DSPy (which records no types); for a ChainOfThought leave out 'reasoning'"
        ),
    )
    parser.add_argument(
        "--output", metavar="RESULTS.jsonl", help="write one JSON result per example here"
    )
    parser.add_argument(
        "--max-errors",
        type=positive_int,
        metavar="N",
        help="stop (exit 1) once more than N examples failed (default: never; finished "
        "results are kept)",
    )
    parser.add_argument(
        "--fail-under",
        type=float,
        metavar="SCORE",
        help="exit with status 1 when the score (0..100) is below SCORE (for CI)",
    )
    _add_metric_options(parser)
    _add_data_options(parser)
    add_lm_options(parser, required=True)
    add_system_options(parser)
    parser.set_defaults(handler=run_evaluate)


def add_compile_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``compile``."""
    parser = subparsers.add_parser(
        "compile",
        help="bootstrap few-shot demos for a signature from a JSONL trainset",
        description=(
            "Build Predict(SIGNATURE) (or ChainOfThought with --cot), run BootstrapFewShot "
            "on a JSONL trainset and save the compiled program, ready for "
            "`dspex-actors evaluate`."
        ),
    )
    parser.add_argument(
        "--signature",
        required=True,
        metavar="SIG",
        help='the signature, e.g. "question -> answer" or "question -> answer: int"',
    )
    parser.add_argument(
        "--trainset", required=True, metavar="TRAIN.jsonl", help="training examples"
    )
    parser.add_argument(
        "--output", required=True, metavar="PROGRAM.json", help="where to save the program"
    )
    parser.add_argument("--instructions", metavar="TEXT", help="the signature's instructions")
    parser.add_argument("--cot", action="store_true", help="use ChainOfThought instead of Predict")
    parser.add_argument(
        "--max-bootstrapped-demos", type=non_negative_int, default=4, metavar="N", help="(4)"
    )
    parser.add_argument(
        "--max-labeled-demos", type=non_negative_int, default=16, metavar="N", help="(16)"
    )
    parser.add_argument("--max-rounds", type=positive_int, default=1, metavar="N", help="(1)")
    _add_metric_options(parser)
    _add_data_options(parser)
    add_lm_options(parser, required=True)
    add_system_options(parser)
    parser.set_defaults(handler=run_compile)


def _need_file(path: str, what: str) -> None:
    target = Path(path)
    if not target.is_file():
        state = "is a directory" if target.is_dir() else "does not exist"
        raise ConfigurationError(f"{what} {path} {state}")


def _predictor_signature(program: Module) -> Any:
    predictors = program.named_predictors()
    if len(predictors) != 1:
        raise ConfigurationError(f"expected a one-predictor program, found {len(predictors)}")
    return predictors[0][1].signature


def _metric_labels(choice: MetricChoice, field: str, outputs: list[str]) -> list[str]:
    """The data fields a built-in metric needs (none for a metric of your own)."""
    if not choice.builtin:
        return []
    if choice.spec != "passage_match" and field not in outputs:
        raise ConfigurationError(
            f"--answer-field {field}: the program has no output field {field!r} "
            f"(its outputs: {', '.join(outputs)}); pick one of those"
        )
    return [field]


def _report_bad_lines(dataset: Dataset) -> None:
    for bad in dataset.bad:
        print(f"skipped {dataset.path} line {bad.line}: {bad.error}", file=sys.stderr)


def _result_rows(result: EvaluationResult, dataset: Dataset) -> Iterator[dict[str, Any]]:
    """Per-example rows with their data line number, plus the skipped lines, in file order."""
    rows = [{"line": dataset.lines[row["index"]], **row} for row in result.rows()]
    rows.extend(
        {"line": bad.line, "skipped": True, "error_type": "BadDataLine", "error": bad.error}
        for bad in dataset.bad
    )
    yield from sorted(rows, key=lambda row: int(row["line"]))


def run_evaluate(args: argparse.Namespace) -> int:
    """Evaluate a saved program; returns the exit code."""
    _need_file(args.program, "program file")
    if args.output:
        check_output_path(args.output, "--output")
    lm = lm_from_args(args)
    program = load_program(args.program, signature=args.signature)
    signature = _predictor_signature(program)
    inputs = list(signature.input_fields)
    outputs = [name for name in signature.output_fields if name != "reasoning"]
    labels = _metric_labels(args.metric, args.answer_field, outputs)
    metric = resolve_metric(args.metric, args.answer_field)
    dataset = load_jsonl(
        args.data, inputs=inputs, labels=labels, skip_bad=args.skip_bad, option="data file"
    )
    _report_bad_lines(dataset)
    print(
        f"Evaluating {args.program} ({signature_to_string(signature)}) on {len(dataset.examples)} "
        f"examples of {args.data} with {lm.model}, {args.threads} in parallel",
        file=sys.stderr,
    )
    evaluate = Evaluate(
        devset=dataset.examples,
        metric=metric,
        num_threads=args.threads,
        display_progress=not args.no_progress,
        max_errors=args.max_errors,
        provide_traceback=args.verbose,
    )
    started = time.perf_counter()
    code = 0
    interrupted: EvaluationInterrupted | None = None
    with system_from_args(args, lm):
        try:
            result = evaluate(program)
        except EvaluationAborted as exc:
            if exc.result is None:
                raise
            result = exc.result
            print(f"evaluation stopped early: {exc}", file=sys.stderr)
            code = 1
        except EvaluationInterrupted as exc:  # Ctrl-C or SIGTERM: keep what finished
            if exc.result is None:
                raise
            result, interrupted = exc.result, exc
    elapsed = time.perf_counter() - started
    print(result.summary())
    if dataset.bad:
        print(f"skipped data lines: {[bad.line for bad in dataset.bad]}")
    if args.output:
        count = write_jsonl(args.output, _result_rows(result, dataset))
        print(f"wrote {count} rows to {args.output}")
    print(f"finished in {elapsed:.1f}s")
    if args.verbose:
        for text in first_tracebacks(result.failures):
            print(text, file=sys.stderr, end="")
    for line in diagnose_failures(result.failures):
        print(f"error: {line}", file=sys.stderr)
    if interrupted is not None:
        raise interrupted  # main() turns it into exit 130 (143 for SIGTERM)
    if code == 0 and result.results and len(result.failures) == len(result.results):
        print(f"every example failed ({len(result.failures)})", file=sys.stderr)
        code = 1
    if code == 0 and args.fail_under is not None and result.score < args.fail_under:
        print(f"score {result.score} is below --fail-under {args.fail_under}", file=sys.stderr)
        code = 1
    return code


def _build_program(args: argparse.Namespace) -> Module:
    signature = ensure_signature(args.signature)
    if args.instructions:
        signature = signature.with_instructions(args.instructions)
    return ChainOfThought(signature) if args.cot else Predict(signature)


def run_compile(args: argparse.Namespace) -> int:
    """Bootstrap a program from a signature and a trainset; returns the exit code."""
    check_output_path(args.output, "--output")
    program = _build_program(args)
    signature = _predictor_signature(program)
    inputs = list(signature.input_fields)
    outputs = [name for name in signature.output_fields if name != "reasoning"]
    labels = _metric_labels(args.metric, args.answer_field, outputs)
    metric: Callable[..., Any] = resolve_metric(args.metric, args.answer_field)
    lm = lm_from_args(args)
    dataset = load_jsonl(
        args.trainset, inputs=inputs, labels=labels, skip_bad=args.skip_bad, option="trainset"
    )
    _report_bad_lines(dataset)
    optimizer = BootstrapFewShot(
        metric=metric,
        max_bootstrapped_demos=args.max_bootstrapped_demos,
        max_labeled_demos=args.max_labeled_demos,
        max_rounds=args.max_rounds,
        num_threads=args.threads,
        display_progress=not args.no_progress,
    )
    print(
        f"Compiling {type(program).__name__}({args.signature!r}) on "
        f"{len(dataset.examples)} examples of {args.trainset} with {lm.model}",
        file=sys.stderr,
    )
    started = time.perf_counter()
    with system_from_args(args, lm):
        compiled = optimizer.compile(program, trainset=dataset.examples)
    compiled.save(args.output)
    print(f"compiled in {time.perf_counter() - started:.1f}s; demos:")
    for line in format_demos(compiled):
        print(line)
    print(f"saved to {args.output}")
    print(f"next: dspex-actors evaluate {args.output} DEV.jsonl --model {lm.model} ...")
    return 0
