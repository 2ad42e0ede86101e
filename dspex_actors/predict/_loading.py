"""Rebuild a runnable program from a saved file alone (used by the CLI)."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from dspex_actors._errors import ProgramLoadError, SignatureError
from dspex_actors.predict._chain_of_thought import ChainOfThought
from dspex_actors.predict._predict import Predict
from dspex_actors.primitives import Module
from dspex_actors.primitives._module import METADATA_KEY, read_state_file
from dspex_actors.signatures import ensure_signature

__all__ = ["load_program"]

logger = logging.getLogger(__name__)


class _SinglePredictorProgram(Module):
    """A saved one-predictor program whose predictor is named ``predict``."""

    def __init__(self, predict: Predict) -> None:
        super().__init__()
        self.predict = predict

    def forward(self, **kwargs: object) -> object:
        return self.predict(**kwargs)


def load_program(path: str | os.PathLike[str], signature: Any = None) -> Module:
    """A Predict or ChainOfThought rebuilt from a file written by ``Module.save`` (here or
    by DSPy).

    Only one-predictor programs can be rebuilt without their code: a bare Predict
    (saved flat, or nested as ``self``) or a module holding ``predict`` (ChainOfThought when its
    first output is ``reasoning``). ``signature`` gives the predictor's signature (a string
    or class), for a file saved by DSPy whose instructions are no longer DSPy's default;
    for a ChainOfThought file give the signature without ``reasoning``. Other files →
    :class:`ProgramLoadError`.
    """
    state = read_state_file(path)
    saved = {name: value for name, value in state.items() if name != METADATA_KEY}
    names = list(saved)
    if "signature" in saved:  # a bare Predict, saved flat as DSPy does
        return _predict(saved, "self", signature)
    if names == ["self"]:
        return _predict(saved["self"], "self", signature)
    if names == ["predict"]:
        predict = _predict(saved["predict"], "predict", signature)
        outputs = list(predict.signature.output_fields)
        if outputs and outputs[0] == "reasoning":
            return ChainOfThought.from_predict(predict)
        return _SinglePredictorProgram(predict)
    raise ProgramLoadError(
        f"{os.fspath(path)} holds {len(names)} predictor(s) {names}: only a one-predictor "
        "program can be rebuilt from a file; build the program in code and call "
        "program.load(path)"
    )


def _predict(state: Any, name: str, signature: Any) -> Predict:
    """The saved predictor, with ``signature`` (plus ``reasoning`` if the file has it)."""
    if signature is None:
        return Predict.from_state(state, name=name)
    try:
        sig = ensure_signature(signature)
    except SignatureError as exc:
        raise ProgramLoadError(f"signature {signature!r}: {exc}") from exc
    sig_state = state.get("signature") if isinstance(state, Mapping) else None
    saved_fields = sig_state.get("fields") if isinstance(sig_state, Mapping) else None
    if (
        isinstance(saved_fields, list)
        and len(saved_fields) == len(sig.fields) + 1
        and "reasoning" not in sig.fields
    ):
        sig = ChainOfThought(sig).predict.signature
    return Predict.from_state(state, name=name, signature=sig)
