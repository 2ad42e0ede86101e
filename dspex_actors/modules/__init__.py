"""DSPy's composite modules: ReAct, BestOfN, Refine, MultiChainComparison, Parallel, majority."""

from dspex_actors.modules._best_of_n import BestOfN
from dspex_actors.modules._feedback import OfferFeedback
from dspex_actors.modules._majority import majority
from dspex_actors.modules._multi_chain import MultiChainComparison
from dspex_actors.modules._parallel import Parallel
from dspex_actors.modules._react import ReAct
from dspex_actors.modules._refine import Refine

__all__ = [
    "BestOfN",
    "MultiChainComparison",
    "OfferFeedback",
    "Parallel",
    "ReAct",
    "Refine",
    "majority",
]
