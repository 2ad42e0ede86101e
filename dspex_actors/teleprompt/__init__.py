"""Optimizers: few-shot (LabeledFewShot, BootstrapFewShot, BootstrapFewShotWithRandomSearch)
and instruction optimizers (MIPROv2, GEPA, SIMBA).

They follow DSPy's semantics (same seeds, same sampling, same selection order) so the
demos chosen match DSPy's given the same LM answers; bootstrapping and candidate
scoring run on the parallel executor.
"""

from dspex_actors.teleprompt._bootstrap import BootstrapFewShot
from dspex_actors.teleprompt._gepa import GEPA
from dspex_actors.teleprompt._mipro import MIPROv2
from dspex_actors.teleprompt._random_search import BootstrapFewShotWithRandomSearch
from dspex_actors.teleprompt._simba import SIMBA
from dspex_actors.teleprompt._teleprompter import Teleprompter
from dspex_actors.teleprompt._vanilla import LabeledFewShot

__all__ = [
    "GEPA",
    "SIMBA",
    "BootstrapFewShot",
    "BootstrapFewShotWithRandomSearch",
    "LabeledFewShot",
    "MIPROv2",
    "Teleprompter",
]
