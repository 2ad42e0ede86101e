"""Fixtures for the CLI tests: data files and a runner for ``main(argv)``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from cli_helpers import Run, write_jsonl

from dspex_actors.cli import main
from dspex_actors.testing import arithmetic_dataset


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., Run]:
    """``cli("evaluate", ...)`` runs ``main(argv)`` in-process and captures its output."""

    def run(*argv: str) -> Run:
        capsys.readouterr()
        code = main(list(argv))
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return run


@pytest.fixture
def dev_jsonl(tmp_path: Path) -> Path:
    """A clean dataset of 12 arithmetic questions."""
    return write_jsonl(tmp_path / "dev.jsonl", arithmetic_dataset(12, seed=4))


@pytest.fixture
def program_json(tmp_path: Path) -> Path:
    """A saved, uncompiled ``Predict("question -> answer")``."""
    from dspex_actors.predict import Predict

    path = tmp_path / "program.json"
    Predict("question -> answer").save(path)
    return path
