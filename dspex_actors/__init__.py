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
    ToolArgumentError,
)
from dspex_actors._version import __version__
from dspex_actors.adapters import ChatAdapter, JSONAdapter
from dspex_actors.evaluate import (
    Evaluate,
    EvaluationResult,
    ParallelExecutor,
    RayBackend,
    answer_exact_match,
    answer_passage_match,
)
from dspex_actors.lm import LM, LMRequest, LMResponse
from dspex_actors.modules import (
    BestOfN,
    MultiChainComparison,
    Parallel,
    ReAct,
    Refine,
    majority,
)
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
from dspex_actors.system import ActorSystem, configure, context, current_system
from dspex_actors.telemetry import BaseCallback
from dspex_actors.teleprompt import (
    BootstrapFewShot,
    BootstrapFewShotWithRandomSearch,
    LabeledFewShot,
)
from dspex_actors.tools import Tool

__all__ = [
    "LM",
    "ActorSystem",
    "AdapterParseError",
    "BaseCallback",
    "BestOfN",
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
    "MalformedResponseError",
    "Module",
    "MultiChainComparison",
    "OptimizerError",
    "OutputField",
    "Parallel",
    "ParallelExecutor",
    "Predict",
    "PredictInputError",
    "Prediction",
    "ProgramLoadError",
    "RayBackend",
    "ReAct",
    "Refine",
    "Signature",
    "SignatureError",
    "SignatureTypeError",
    "StreamListener",
    "StreamResponse",
    "Tool",
    "ToolArgumentError",
    "__version__",
    "answer_exact_match",
    "answer_passage_match",
    "configure",
    "context",
    "current_system",
    "ensure_signature",
    "majority",
    "make_signature",
    "record_trace",
    "streamify",
]
