"""Entry point of the ``dspex-actors`` command.

Exit codes: 0 success, 2 usage errors (bad options, missing or bad input files, bad
signature, unknown metric), 1 runtime failures (LM errors, an evaluation stopped early or
in which every example failed, an internal error), 130 interrupted (Ctrl-C), 143
terminated (SIGTERM, handled like Ctrl-C: the finished results are printed and written).
User errors print one message saying what to fix, never a traceback (``-v`` shows
tracebacks, of failed examples too, and the failures as they happen).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterator, Sequence
from types import FrameType

from dspex_actors._errors import (
    ConfigurationError,
    DSPexError,
    PredictInputError,
    ProgramLoadError,
    SignatureError,
)
from dspex_actors._version import __version__

__all__ = [
    "EXIT_FAILURE",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_TERMINATED",
    "EXIT_USAGE",
    "build_parser",
    "main",
]

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143

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
exit codes: 0 success, 2 usage error (fix the command line or input files), 1 failure,
130 interrupted, 143 terminated.

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


class _Termination:
    """Whether SIGTERM arrived (it is turned into the Ctrl-C path, see _sigterm_as_ctrl_c)."""

    def __init__(self) -> None:
        self.received = False

    def handle(self, signum: int, frame: FrameType | None) -> None:
        self.received = True
        on_interrupt = signal.getsignal(signal.SIGINT)
        if callable(on_interrupt):  # Python's (raises KeyboardInterrupt) or asyncio.run's
            on_interrupt(signal.SIGINT, frame)
        else:
            raise KeyboardInterrupt


@contextlib.contextmanager
def _sigterm_as_ctrl_c() -> Iterator[_Termination]:
    """SIGTERM behaves like Ctrl-C while a command runs: partial results are kept."""
    termination = _Termination()
    if threading.current_thread() is not threading.main_thread():
        yield termination
        return
    previous = signal.signal(signal.SIGTERM, termination.handle)
    try:
        yield termination
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run(handler: Handler, args: argparse.Namespace) -> int:
    """Run a subcommand and turn its errors into exit codes and plain messages."""
    with _sigterm_as_ctrl_c() as termination:
        try:
            return _run_handler(handler, args)
        except KeyboardInterrupt:
            code = EXIT_TERMINATED if termination.received else EXIT_INTERRUPTED
            _error("terminated (SIGTERM)" if termination.received else "interrupted")
            return code


def _run_handler(handler: Handler, args: argparse.Namespace) -> int:
    try:
        return handler(args)
    except _USAGE_ERRORS as exc:
        _error(str(exc))
        return EXIT_USAGE
    except DSPexError as exc:
        _error(f"{type(exc).__name__}: {exc}")
        if args.verbose:
            traceback.print_exc()
        return EXIT_FAILURE
    except OSError as exc:
        _error(f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc))
        return EXIT_FAILURE
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
    failures_log = logging.getLogger("dspex_actors.evaluate")
    level = failures_log.level
    if not args.verbose:  # the progress bar counts failures; the summary explains them once
        failures_log.setLevel(logging.ERROR)
    try:
        return _run(handler, args)
    finally:
        failures_log.setLevel(level)
