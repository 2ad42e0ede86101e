"""dspex_actors: the DSPy programming model on supervised Pykka actors.

Signatures, predictors, evaluation and few-shot optimizers, with long-lived Client and
Cache actors under a supervisor and a bounded pool of worker actors for evaluation.
"""

from dspex_actors._errors import (
    AdapterParseError,
    CacheError,
    CircuitOpenError,
    CoercionError,
    ConfigurationError,
    DSPexError,
    EvaluationAborted,
    EvaluationError,
    ExampleTimeoutError,
    LMConnectionError,
    LMError,
    LMHTTPStatusError,
    LMTimeoutError,
    LMTLSError,
    LMUnavailableError,
    MalformedResponseError,
    OptimizerError,
    PredictInputError,
    ProgramLoadError,
    SignatureError,
    SignatureTypeError,
)
from dspex_actors._version import __version__
from dspex_actors.adapters import ChatAdapter, JSONAdapter
from dspex_actors.evaluate import (
    Evaluate,
    EvaluationResult,
    ParallelExecutor,
    answer_exact_match,
    answer_passage_match,
)
from dspex_actors.lm import LM, LMRequest, LMResponse
from dspex_actors.predict import ChainOfThought, Predict, record_trace
from dspex_actors.primitives import Example, Module, Prediction
from dspex_actors.signatures import (
    InputField,
    OutputField,
    Signature,
    ensure_signature,
    make_signature,
)
from dspex_actors.streaming import StreamListener, StreamResponse, streamify
from dspex_actors.system import ActorSystem, configure, current_system
from dspex_actors.teleprompt import (
    GEPA,
    SIMBA,
    BootstrapFewShot,
    BootstrapFewShotWithRandomSearch,
    LabeledFewShot,
    MIPROv2,
)

__all__ = [
    "GEPA",
    "LM",
    "SIMBA",
    "ActorSystem",
    "AdapterParseError",
    "BootstrapFewShot",
    "BootstrapFewShotWithRandomSearch",
    "CacheError",
    "ChainOfThought",
    "ChatAdapter",
    "CircuitOpenError",
    "CoercionError",
    "ConfigurationError",
    "DSPexError",
    "Evaluate",
    "EvaluationAborted",
    "EvaluationError",
    "EvaluationResult",
    "Example",
    "ExampleTimeoutError",
    "InputField",
    "JSONAdapter",
    "LMConnectionError",
    "LMError",
    "LMHTTPStatusError",
    "LMRequest",
    "LMResponse",
    "LMTLSError",
    "LMTimeoutError",
    "LMUnavailableError",
    "LabeledFewShot",
    "MIPROv2",
    "MalformedResponseError",
    "Module",
    "OptimizerError",
    "OutputField",
    "ParallelExecutor",
    "Predict",
    "PredictInputError",
    "Prediction",
    "ProgramLoadError",
    "Signature",
    "SignatureError",
    "SignatureTypeError",
    "StreamListener",
    "StreamResponse",
    "__version__",
    "answer_exact_match",
    "answer_passage_match",
    "configure",
    "current_system",
    "ensure_signature",
    "make_signature",
    "record_trace",
    "streamify",
]
