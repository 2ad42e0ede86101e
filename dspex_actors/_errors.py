"""The typed error hierarchy of dspex_actors.

Every error the library raises on purpose is a :class:`DSPexError`. Errors about bad
input also subclass the matching builtin (``ValueError``/``TypeError``) so that code
written against DSPy's builtin exceptions keeps working.

Messages name the problem (which field, which signature, which example, which model
and endpoint) and never contain credentials.
"""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = [
    "AdapterParseError",
    "CacheError",
    "CircuitOpenError",
    "CoercionError",
    "CompileInterrupted",
    "ConfigurationError",
    "ContentBlockedError",
    "DSPexError",
    "EvaluationAborted",
    "EvaluationCancelled",
    "EvaluationError",
    "EvaluationInterrupted",
    "ExampleTimeoutError",
    "LMConnectionError",
    "LMError",
    "LMHTTPStatusError",
    "LMTimeoutError",
    "LMUnavailableError",
    "MalformedResponseError",
    "MetricError",
    "OptimizerError",
    "PredictInputError",
    "ProgramLoadError",
    "SignatureError",
    "SignatureTypeError",
    "SystemStoppingError",
    "ToolArgumentError",
]


class DSPexError(Exception):
    """Base class of every error raised by dspex_actors."""


class ConfigurationError(DSPexError, ValueError):
    """A bad or missing configuration: an unknown provider, no LM configured, ..."""


class SignatureError(DSPexError, ValueError):
    """A signature that cannot be built: no arrow, empty side, duplicate field, ..."""


class SignatureTypeError(SignatureError, TypeError):
    """A field annotation that names an unknown or unsupported type."""


class CoercionError(DSPexError, ValueError):
    """A value that cannot be read as a field's type (``parse_value``).

    The adapters turn it into :class:`AdapterParseError`. ``annotation`` is the
    expected type and ``value`` the offending value (the raw text, or a decoded part of it).
    """

    def __init__(self, message: str, *, annotation: Any = None, value: Any = None):
        super().__init__(message)
        self.annotation = annotation
        self.value = value


class PredictInputError(DSPexError, TypeError):
    """A predictor called wrongly: positional arguments, a missing input field, ..."""


class ProgramLoadError(DSPexError, ValueError):
    """A saved program that does not match the program loading it, or is not readable."""


class LMError(DSPexError):
    """A language-model call failed.

    ``model`` and ``endpoint`` say which LM and which server (never the key); ``record``
    is what the Client saw of the call (its attempts and events, for telemetry), if any.
    """

    def __init__(self, message: str, *, model: str | None = None, endpoint: str | None = None):
        super().__init__(message)
        self.model = model
        self.endpoint = endpoint
        self.record: Any = None


class LMHTTPStatusError(LMError):
    """The server answered with an HTTP error status."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        body_excerpt: str = "",
        retry_after: float | None = None,
        model: str | None = None,
        endpoint: str | None = None,
    ):
        super().__init__(message, model=model, endpoint=endpoint)
        self.status_code = status_code
        self.body_excerpt = body_excerpt
        self.retry_after = retry_after


class LMTimeoutError(LMError):
    """The server did not answer within the LM's timeout."""


class LMConnectionError(LMError):
    """The connection could not be made, or was dropped before a full reply."""


class LMTLSError(LMConnectionError):
    """The server's TLS certificate was not trusted (or the handshake failed).

    A configuration problem, not an outage: not retried, not counted by the breaker.
    Pass ``LM(verify="/path/ca.pem")`` for a private CA.
    """


class CircuitOpenError(LMError):
    """The endpoint's circuit breaker is open: the call failed fast, nothing was sent."""


class MalformedResponseError(LMError):
    """The server's reply was not a valid chat-completions body."""


class ContentBlockedError(LMError):
    """The provider refused or blocked the content (a safety filter, a refusal).

    ``reason`` is the provider's word for it (``SAFETY``, ``refusal``, ``content_filter``,
    a prompt ``blockReason``). Not retried: the same prompt would be blocked again.
    """

    def __init__(
        self,
        message: str,
        *,
        reason: str = "",
        model: str | None = None,
        endpoint: str | None = None,
    ):
        super().__init__(message, model=model, endpoint=endpoint)
        self.reason = reason


class LMUnavailableError(LMError):
    """The Client actor serving the LM stopped or crashed before the call finished."""


class SystemStoppingError(LMUnavailableError):
    """The ActorSystem is draining (``stop(grace=...)``) or stopped: the call was refused
    before anything was sent; calls already in flight finish."""


class CacheError(DSPexError):
    """The persistent cache could not be opened or written."""


class AdapterParseError(DSPexError, ValueError):
    """The LM's reply could not be parsed into the signature's output fields.

    Carries the signature, the fields that were missing or could not be coerced,
    and the raw reply text.
    """

    def __init__(
        self,
        message: str,
        *,
        signature: Any = None,
        missing_fields: list[str] | None = None,
        lm_response: str = "",
        parsed: dict[str, Any] | None = None,
    ):
        super().__init__(message)
        self.signature = signature
        self.missing_fields = list(missing_fields or [])
        self.lm_response = lm_response
        self.parsed = dict(parsed or {})


class EvaluationError(DSPexError):
    """Base class of errors raised by :class:`Evaluate` and the parallel executor."""


class ExampleTimeoutError(EvaluationError, TimeoutError):
    """An example ran longer than the evaluation's per-example ``timeout``."""


class MetricError(EvaluationError, ValueError):
    """The metric raised, or returned something that is not a finite number (NaN, inf,
    None, a huge int, a string...): recorded as that example's failure, naming the metric."""


class EvaluationAborted(EvaluationError):
    """A run stopped early: ``max_errors`` exceeded, or the first examples all failed with
    the same LM error (a dead endpoint or a bad key), or the devset iterable raised.

    ``result`` holds the partial :class:`EvaluationResult`: every example that
    finished has its score or its recorded failure.
    """

    def __init__(self, message: str, *, result: Any = None):
        super().__init__(message)
        self.result = result


class OptimizerError(DSPexError):
    """An optimizer could not compile: bad trainset, mismatched teacher, too many errors.

    ``partial`` holds what was produced before the failure, when there is any.
    """

    def __init__(self, message: str, *, partial: Any = None):
        super().__init__(message)
        self.partial = partial


class ToolArgumentError(DSPexError, ValueError):
    """A tool was called with arguments it does not take, or values of the wrong type."""


class EvaluationInterrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM in the CLI) stopped an evaluation.

    A ``KeyboardInterrupt``, not an ``Exception``: an ``except Exception:`` in the
    caller's loop never swallows it. ``result`` holds the partial
    :class:`EvaluationResult` (from the parallel executor: the finished outcomes).
    """

    def __init__(self, message: str, *, result: Any = None):
        super().__init__(message)
        self.result = result


class EvaluationCancelled(asyncio.CancelledError):
    """The task awaiting ``Evaluate.acall`` (or ``AsyncExecutor.run``) was cancelled.

    A real ``asyncio.CancelledError`` -- so ``asyncio.wait_for`` and task groups work as
    usual and the caller's event loop lives on -- carrying the partial result in
    ``result``. (Ctrl-C in a synchronous ``Evaluate(...)(program)`` raises
    :class:`EvaluationInterrupted` instead.)
    """

    def __init__(self, message: str, *, result: Any = None):
        super().__init__(message)
        self.result = result


class CompileInterrupted(EvaluationInterrupted):
    """Ctrl-C stopped an optimizer's ``compile``; ``result`` holds what it had produced
    (bootstrapped traces, or the candidates scored so far)."""
