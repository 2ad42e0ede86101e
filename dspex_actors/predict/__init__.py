"""Predict, ChainOfThought, trace recording and rebuilding programs from saved files."""

from dspex_actors.predict._chain_of_thought import ChainOfThought
from dspex_actors.predict._loading import load_program
from dspex_actors.predict._predict import Predict
from dspex_actors.predict._sigstring import signature_to_string
from dspex_actors.predict._trace import TraceEntry, current_trace, record_trace

__all__ = [
    "ChainOfThought",
    "Predict",
    "TraceEntry",
    "current_trace",
    "load_program",
    "record_trace",
    "signature_to_string",
]
