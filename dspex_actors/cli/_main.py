"""Entry point of the ``dspex-actors`` command."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from dspex_actors._version import __version__


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; subcommands register themselves here."""
    parser = argparse.ArgumentParser(prog="dspex-actors", description=__doc__)
    parser.add_argument("--version", action="version", version=f"dspex-actors {__version__}")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    parser = build_parser()
    parser.parse_args(argv)
    parser.print_help()
    return 0
