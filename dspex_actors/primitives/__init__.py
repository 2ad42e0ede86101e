"""Example, Prediction and Module: the data and program primitives (DSPy's semantics)."""

from dspex_actors.primitives._asyncify import asyncify, syncify
from dspex_actors.primitives._example import Example
from dspex_actors.primitives._module import Module, Parameter, load, read_state_file
from dspex_actors.primitives._prediction import Completions, Prediction

__all__ = [
    "Completions",
    "Example",
    "Module",
    "Parameter",
    "Prediction",
    "asyncify",
    "load",
    "read_state_file",
    "syncify",
]
