"""ChainOfThought: Predict with a ``reasoning`` output field before the declared ones."""

from __future__ import annotations

import logging
from typing import Any

from dspex_actors._errors import PredictInputError
from dspex_actors.predict._predict import Predict, check_options
from dspex_actors.primitives import Module, Prediction
from dspex_actors.signatures import OutputField, ensure_signature

__all__ = ["ChainOfThought"]

logger = logging.getLogger(__name__)

REASONING_PREFIX = "Reasoning: Let's think step by step in order to"
REASONING_DESC = "${reasoning}"


class ChainOfThought(Module):
    """Ask the LM to reason step by step first: the prediction has ``.reasoning``.

    A Module wrapping one :class:`Predict` named ``predict`` (as in DSPy, so saved
    files carry over) whose signature has ``reasoning`` prepended to the outputs.
    ``lm=``, ``adapter=`` and LM parameters (``**config``) go to that predictor.
    """

    predict: Predict

    def __init__(
        self,
        signature: Any,
        rationale_field: Any = None,
        rationale_field_type: Any = str,
        callbacks: list[Any] | None = None,
        **config: Any,
    ) -> None:
        super().__init__(callbacks=callbacks)
        options = {k: v for k, v in config.items() if k not in ("lm", "adapter")}
        check_options(type(self).__name__, config.get("lm"), config.get("adapter"), options)
        base = ensure_signature(signature)
        field = rationale_field
        if field is None:
            field = OutputField(prefix=REASONING_PREFIX, desc=REASONING_DESC)
        elif getattr(field, "annotation", None) is not None:
            rationale_field_type = field.annotation
        extended = base.prepend("reasoning", field, rationale_field_type)
        self.predict = Predict(extended, **config)

    @classmethod
    def from_predict(cls, predict: Predict) -> ChainOfThought:
        """Wrap an existing predictor whose signature already has ``reasoning``."""
        outputs = list(predict.signature.output_fields)
        if not outputs or outputs[0] != "reasoning":
            raise ValueError(
                f"{predict!r} has no leading 'reasoning' output field (outputs: {outputs})"
            )
        new = cls.__new__(cls)
        Module.__init__(new)
        new.predict = predict
        return new

    def __call__(self, *args: Any, **kwargs: Any) -> Prediction:
        if args:
            names = list(self.predict.signature.input_fields)
            raise PredictInputError(
                f"ChainOfThought takes keyword arguments only (the signature's input fields "
                f"{names}), got {len(args)} positional argument(s)"
            )
        result: Prediction = super().__call__(**kwargs)
        return result

    def forward(self, **kwargs: Any) -> Prediction:
        """One reasoning-then-answer call; ``config``/``demos``/``lm`` pass through."""
        return self.predict(**kwargs)

    async def aforward(self, **kwargs: Any) -> Prediction:
        """:meth:`forward` for ``await cot.acall(...)``."""
        return await self.predict.acall(**kwargs)
