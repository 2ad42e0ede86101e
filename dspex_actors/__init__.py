"""dspex_actors: the DSPy programming model on supervised Pykka actors.

Signatures, predictors, evaluation and few-shot optimizers, with long-lived Client and
Cache actors under a supervisor and a bounded pool of worker actors for evaluation.
"""

from dspex_actors._errors import (
    AdapterParseError,
    CacheError,
    CircuitOpenError,
    ConfigurationError,
    DSPexError,
    EvaluationAborted,
    EvaluationError,
    ExampleTimeoutError,
    LMConnectionError,
    LMError,
    LMHTTPStatusError,
    LMTimeoutError,
    LMUnavailableError,
    MalformedResponseError,
    OptimizerError,
    PredictInputError,
    ProgramLoadError,
    SignatureError,
    SignatureTypeError,
)
from dspex_actors._version import __version__

__all__ = [
    "AdapterParseError",
    "CacheError",
    "CircuitOpenError",
    "ConfigurationError",
    "DSPexError",
    "EvaluationAborted",
    "EvaluationError",
    "ExampleTimeoutError",
    "LMConnectionError",
    "LMError",
    "LMHTTPStatusError",
    "LMTimeoutError",
    "LMUnavailableError",
    "MalformedResponseError",
    "OptimizerError",
    "PredictInputError",
    "ProgramLoadError",
    "SignatureError",
    "SignatureTypeError",
    "__version__",
]
