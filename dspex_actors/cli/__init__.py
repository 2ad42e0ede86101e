"""The ``dspex-actors`` command line."""

from dspex_actors.cli._main import main

__all__ = ["main"]
