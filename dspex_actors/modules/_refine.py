"""``Refine``: BestOfN that, after an attempt below the threshold, asks an LM for advice.

The advice (one text per predictor, from :class:`OfferFeedback`) is given to each predictor of
the next attempt as an extra ``hint_`` input field ("A hint to the module from an earlier
run"), exactly as DSPy 3.4.1 adds it; traces record the inputs without the hint.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from dspex_actors.modules._attempts import AttemptRun, RewardFn, RolloutModule
from dspex_actors.modules._feedback import OfferFeedback, feedback_inputs, source_of
from dspex_actors.predict import Predict, record_trace
from dspex_actors.predict._predict import _PreparedCall
from dspex_actors.predict._trace import TraceEntry
from dspex_actors.primitives import Module, Prediction
from dspex_actors.signatures import InputField

__all__ = ["Refine"]

HINT_FIELD = "hint_"
HINT_DESC = "A hint to the module from an earlier run"


class Refine(RolloutModule):
    """``Refine(module, N, reward_fn, threshold, fail_count=None)`` as in DSPy 3.4.1."""

    module_code: str
    reward_fn_code: str

    def __init__(
        self,
        module: Module,
        N: int,
        reward_fn: RewardFn,
        threshold: float | None,
        fail_count: int | None = None,
    ) -> None:
        super().__init__(module, N, reward_fn, threshold, fail_count)
        self.module_code = source_of(type(module))
        self.reward_fn_code = source_of(reward_fn)

    def _attempt_module(self, run: AttemptRun, rollout_id: int) -> Module:
        return self._hinted(run.attempt_module(rollout_id), run.advice)

    def _advise(
        self, run: AttemptRun, mod: Module, trace: list[TraceEntry], outputs: Any, reward: Any
    ) -> None:
        feedback = self._feedback_inputs(mod, run.kwargs, trace, outputs, reward)
        with record_trace():  # not a part of the program's trace
            run.advice = _advice(Predict(OfferFeedback)(**feedback))

    async def _aadvise(
        self, run: AttemptRun, mod: Module, trace: list[TraceEntry], outputs: Any, reward: Any
    ) -> None:
        feedback = self._feedback_inputs(mod, run.kwargs, trace, outputs, reward)
        with record_trace():
            run.advice = _advice(await Predict(OfferFeedback).acall(**feedback))

    def _feedback_inputs(
        self,
        mod: Module,
        kwargs: dict[str, Any],
        trace: list[TraceEntry],
        outputs: Any,
        reward: Any,
    ) -> dict[str, str]:
        return feedback_inputs(
            program=mod,
            program_code=self.module_code,
            reward_code=self.reward_fn_code,
            inputs=kwargs,
            trace=trace,
            outputs=outputs,
            threshold=self.threshold,
            reward=reward,
        )

    @staticmethod
    def _hinted(mod: Module, advice: dict[str, Any] | None) -> Module:
        """``mod`` with each predictor given its advice as a ``hint_`` input (if any advice)."""
        if not advice:
            return mod
        named = mod.named_predictors()
        if len(named) == 1 and named[0][0] == "self":
            hinted: Module = _with_hint(named[0][1], advice.get("self", "N/A"))
            return hinted
        names = {id(predictor): name for name, predictor in named}
        return mod.map_named_predictors(
            lambda p: _with_hint(p, advice.get(names.get(id(p), ""), "N/A"))
        )


def _advice(pred: Prediction) -> dict[str, Any] | None:
    advice = pred.get("advice")
    return advice if isinstance(advice, dict) else None


class _HintedPredict(Predict):
    """A predictor whose calls carry ``hint_`` (added to the signature and the inputs)."""

    _hint: str

    def _prepare(self, kwargs: dict[str, Any]) -> _PreparedCall:
        call = super()._prepare(kwargs)
        signature = call.signature.append(HINT_FIELD, InputField(desc=HINT_DESC))
        inputs = {**call.inputs, HINT_FIELD: self._hint}
        return dataclasses.replace(call, signature=signature, inputs=inputs)

    def _finish(
        self, call: _PreparedCall, completions: list[dict[str, Any]], response: Any
    ) -> Prediction:
        inputs = {k: v for k, v in call.inputs.items() if k != HINT_FIELD}
        return super()._finish(dataclasses.replace(call, inputs=inputs), completions, response)


_HINTED_CLASSES: dict[type[Any], type[_HintedPredict]] = {}


def _hinted_class(cls: type[Any]) -> type[_HintedPredict]:
    """The hinted twin of a predictor class (made once per class)."""
    if issubclass(cls, _HintedPredict):
        return cls
    hinted = _HINTED_CLASSES.get(cls)
    if hinted is None:
        hinted = type(f"Hinted{cls.__name__}", (_HintedPredict, cls), {})
        _HINTED_CLASSES[cls] = hinted
    return hinted


def _with_hint(predictor: Any, hint: Any) -> Any:
    """A copy of ``predictor`` (sharing its state) whose calls carry ``hint``."""
    if not isinstance(predictor, Predict):
        return predictor
    cls = _hinted_class(type(predictor))
    hinted = cls.__new__(cls)
    hinted.__dict__.update(predictor.__dict__)
    hinted._hint = hint if isinstance(hint, str) else str(hint)
    return hinted
