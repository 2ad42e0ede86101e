"""Rebuild a runnable program from a saved file alone (used by the CLI)."""

from __future__ import annotations

import logging
import os

from dspex_actors._errors import ProgramLoadError
from dspex_actors.predict._chain_of_thought import ChainOfThought
from dspex_actors.predict._predict import Predict
from dspex_actors.primitives import Module
from dspex_actors.primitives._module import METADATA_KEY, read_state_file

__all__ = ["load_program"]

logger = logging.getLogger(__name__)


class _SinglePredictorProgram(Module):
    """A saved one-predictor program whose predictor is named ``predict``."""

    def __init__(self, predict: Predict) -> None:
        super().__init__()
        self.predict = predict

    def forward(self, **kwargs: object) -> object:
        return self.predict(**kwargs)


def load_program(path: str | os.PathLike[str]) -> Module:
    """A Predict or ChainOfThought rebuilt from a file written by ``Module.save``.

    Only one-predictor programs can be rebuilt without their code: a bare Predict
    (saved flat, or nested as ``self``) or a module holding ``predict`` (ChainOfThought when its
    first output is ``reasoning``). Other files → :class:`ProgramLoadError`.
    """
    state = read_state_file(path)
    saved = {name: value for name, value in state.items() if name != METADATA_KEY}
    names = list(saved)
    if "signature" in saved:  # a bare Predict, saved flat as DSPy does
        return Predict.from_state(saved, name="self")
    if names == ["self"]:
        return Predict.from_state(saved["self"], name="self")
    if names == ["predict"]:
        predict = Predict.from_state(saved["predict"], name="predict")
        outputs = list(predict.signature.output_fields)
        if outputs and outputs[0] == "reasoning":
            return ChainOfThought.from_predict(predict)
        return _SinglePredictorProgram(predict)
    raise ProgramLoadError(
        f"{os.fspath(path)} holds {len(names)} predictor(s) {names}: only a one-predictor "
        "program can be rebuilt from a file; build the program in code and call "
        "program.load(path)"
    )
