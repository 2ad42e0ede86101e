"""``MultiChainComparison``: compare M reasoning attempts and produce one corrected answer.

DSPy 3.4.1's module: the attempts become ``reasoning_attempt_1..M`` inputs (``«I'm trying to
<first line of the rationale> I'm not sure but my prediction is <answer>»``) and a
``rationale`` output comes first; the predictor runs at ``temperature=0.7`` by default.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from dspex_actors._errors import ConfigurationError, PredictInputError
from dspex_actors.predict import Predict
from dspex_actors.primitives import Module, Prediction
from dspex_actors.signatures import InputField, OutputField, ensure_signature

__all__ = ["MultiChainComparison"]


class MultiChainComparison(Module):
    """``MultiChainComparison(signature, M=3)(completions, **inputs)``.

    ``completions`` are M earlier predictions (Predictions or dicts) each with ``rationale``
    or ``reasoning`` and the signature's last output field.
    """

    M: int
    last_key: str
    predict: Predict

    def __init__(
        self,
        signature: Any,
        M: int = 3,
        temperature: float = 0.7,
        **config: Any,
    ) -> None:
        super().__init__()
        if isinstance(M, bool) or not isinstance(M, int) or M < 1:
            raise ConfigurationError(f"MultiChainComparison M must be a positive int, got {M!r}")
        self.M = M
        signature = ensure_signature(signature)
        *_, self.last_key = signature.output_fields
        for idx in range(M):
            signature = signature.append(
                f"reasoning_attempt_{idx + 1}",
                InputField(prefix=f"Student Attempt #{idx + 1}:", desc="${reasoning attempt}"),
            )
        signature = signature.prepend(
            "rationale",
            OutputField(
                prefix="Accurate Reasoning: Thank you everyone. Let's now holistically",
                desc="${corrected reasoning}",
            ),
        )
        self.predict = Predict(signature, temperature=temperature, **config)

    def _inputs(self, completions: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
        if isinstance(completions, (str, bytes, Mapping)) or not isinstance(completions, Iterable):
            raise PredictInputError(
                "MultiChainComparison: completions must be a list of predictions, "
                f"got {type(completions).__name__}"
            )
        attempts = [self._attempt(index, c) for index, c in enumerate(completions)]
        if len(attempts) != self.M:
            raise PredictInputError(
                f"The number of attempts ({len(attempts)}) doesn't match the expected number "
                f"M ({self.M}). Please set the correct value for M when initializing "
                "MultiChainComparison."
            )
        return {
            **{f"reasoning_attempt_{idx + 1}": a for idx, a in enumerate(attempts)},
            **kwargs,
        }

    def _attempt(self, index: int, completion: Any) -> str:
        get = getattr(completion, "get", None)
        if not callable(get):
            raise PredictInputError(
                f"MultiChainComparison: completion #{index} must be a Prediction or a dict, "
                f"got {type(completion).__name__}"
            )
        rationale = get("rationale", get("reasoning"))
        answer = get(self.last_key)
        if rationale is None or answer is None:
            raise PredictInputError(
                f"MultiChainComparison: completion #{index} needs 'rationale' (or 'reasoning') "
                f"and '{self.last_key}'"
            )
        rationale = str(rationale).strip().split("\n")[0].strip()
        answer = str(answer).strip().split("\n")[0].strip()
        return f"«I'm trying to {rationale} I'm not sure but my prediction is {answer}»"

    def forward(self, completions: Any, **kwargs: Any) -> Prediction:
        """One comparison call over the M ``completions``."""
        return self.predict(**self._inputs(completions, kwargs))

    async def aforward(self, completions: Any, **kwargs: Any) -> Prediction:
        """:meth:`forward` for ``await mcc.acall(...)``."""
        return await self.predict.acall(**self._inputs(completions, kwargs))
