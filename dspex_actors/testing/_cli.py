"""``python -m dspex_actors.testing``: serve a LocalLMServer until Ctrl-C (or SIGTERM)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from dspex_actors.testing._faults import Fault
from dspex_actors.testing._responders import RESPONDERS
from dspex_actors.testing._server import LocalLMServer

__all__ = ["build_parser", "main"]

logger = logging.getLogger(__name__)

READY_PREFIX = "dspex local LM server listening on "
"""The first stdout line starts with this, then the api_base URL (ServerProcess reads it)."""


def _fault_rate(spec: str) -> tuple[Fault, float]:
    name, sep, rate = spec.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected FAULT=RATE such as 503=0.1, got {spec!r}")
    try:
        return Fault.parse(name), float(rate)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    """The command-line options."""
    parser = argparse.ArgumentParser(
        prog="python -m dspex_actors.testing",
        description=(
            "Serve a local LM for tests: OpenAI (POST /v1/chat/completions), Anthropic "
            "(/v1/messages), Gemini (/v1beta/models/M:generateContent), Azure deployments."
        ),
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each reply")
    parser.add_argument("--jitter", type=float, default=0.0, help="extra uniform(0, J) seconds")
    parser.add_argument(
        "--stream-chunk-chars",
        type=int,
        default=8,
        help="characters of content per streamed delta",
    )
    parser.add_argument(
        "--stream-interval",
        type=float,
        default=0.0,
        help="seconds between the events of a streamed reply",
    )
    parser.add_argument("--model", default="local-model")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--responder", choices=sorted(RESPONDERS), default="default")
    parser.add_argument(
        "--fault-rate",
        type=_fault_rate,
        action="append",
        default=[],
        metavar="FAULT=RATE",
        help="inject a fault at random, e.g. 503=0.1, 429=0.05, drop=0.01 (repeatable)",
    )
    parser.add_argument("--log-level", default="WARNING")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the server until interrupted; prints the api_base URL first."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr)
    stop = threading.Event()

    def on_term(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_term)
    server = LocalLMServer(
        args.responder,
        latency=args.latency,
        jitter=args.jitter,
        host=args.host,
        port=args.port,
        model=args.model,
        seed=args.seed,
        stream_chunk_chars=args.stream_chunk_chars,
        stream_interval=args.stream_interval,
    )
    if args.fault_rate:
        server.set_fault_rates(args.fault_rate)
    with server:
        sys.stdout.write(f"{READY_PREFIX}{server.url}\n")
        sys.stdout.flush()
        sys.stderr.write(
            f"responder={args.responder} model={args.model} latency={args.latency}s; "
            "Ctrl-C to stop\n"
        )
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
    return 0
