"""Entry point of the ``dspex-actors`` command.

Exit codes: 0 success, 2 usage errors (bad options, missing or bad input files, bad
signature, unknown metric), 1 runtime failures (LM errors, an evaluation stopped early,
an internal error), 130 interrupted. User errors print one message saying what to fix,
never a traceback (``-v`` shows tracebacks of internal errors).
"""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from collections.abc import Callable, Sequence

from dspex_actors._errors import (
    ConfigurationError,
    DSPexError,
    PredictInputError,
    ProgramLoadError,
    SignatureError,
)
from dspex_actors._version import __version__

__all__ = ["EXIT_FAILURE", "EXIT_OK", "EXIT_USAGE", "build_parser", "main"]

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

PROG = "dspex-actors"
SERVE_LOCAL_LM = "serve-local-lm"

_USAGE_ERRORS: tuple[type[BaseException], ...] = (
    ConfigurationError,
    SignatureError,
    ProgramLoadError,
    PredictInputError,
)
"""Errors that mean the command line or its input files need fixing (exit 2)."""

Handler = Callable[[argparse.Namespace], int]

_EPILOG = """\
exit codes: 0 success, 2 usage error (fix the command line or input files), 1 failure.

Start with:  dspex-actors demo
"""


def _add_serve_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from dspex_actors.testing._cli import build_parser as server_parser

    subparsers.add_parser(
        SERVE_LOCAL_LM,
        parents=[server_parser()],
        add_help=False,
        help="serve a local OpenAI-compatible LM on 127.0.0.1 for experiments",
        description=(
            "Serve POST /v1/chat/completions on 127.0.0.1 with a deterministic test model "
            "(--responder weak imitates a weak model). Point --api-base at the printed URL."
        ),
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    from dspex_actors.cli._commands import add_compile_parser, add_evaluate_parser
    from dspex_actors.cli._demo import add_demo_parser

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="The DSPy programming model on supervised Pykka actors.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log progress details and show tracebacks"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    add_demo_parser(subparsers)
    add_evaluate_parser(subparsers)
    add_compile_parser(subparsers)
    _add_serve_parser(subparsers)
    for name, subparser in subparsers.choices.items():
        if name != SERVE_LOCAL_LM:
            subparser.add_argument(
                "-v",
                "--verbose",
                action="store_true",
                default=argparse.SUPPRESS,
                help="log progress details and show tracebacks",
            )
    return parser


def _error(message: str) -> None:
    print(f"{PROG}: error: {message}", file=sys.stderr)


def _run(handler: Handler, args: argparse.Namespace) -> int:
    """Run a subcommand and turn its errors into exit codes and plain messages."""
    try:
        return handler(args)
    except _USAGE_ERRORS as exc:
        _error(str(exc))
        return EXIT_USAGE
    except DSPexError as exc:
        _error(f"{type(exc).__name__}: {exc}")
        return EXIT_FAILURE
    except OSError as exc:
        _error(f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc))
        return EXIT_FAILURE
    except KeyboardInterrupt:
        _error("interrupted")
        return EXIT_INTERRUPTED
    except Exception as exc:
        if args.verbose:
            traceback.print_exc()
        _error(
            f"internal error: {type(exc).__name__}: {exc}"
            + ("" if args.verbose else " (run with -v for the traceback)")
        )
        return EXIT_FAILURE


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(arguments)
    except SystemExit as exc:  # argparse: --help/--version (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    reconfigure = getattr(sys.stdout, "reconfigure", None)
    if callable(reconfigure):  # keep printed lines in order with progress bars on stderr
        reconfigure(line_buffering=True)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    if args.command == SERVE_LOCAL_LM:
        from dspex_actors.testing import main as serve

        rest = arguments[arguments.index(SERVE_LOCAL_LM) + 1 :]
        try:
            return serve(rest)
        except KeyboardInterrupt:
            return EXIT_OK
    handler: Handler = args.handler
    return _run(handler, args)
