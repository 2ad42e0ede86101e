"""The optimizer base class and the input checks every optimizer shares."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Collection, Sequence
from typing import Any

from dspex_actors._errors import DSPexError, OptimizerError
from dspex_actors.primitives import Example, Module
from dspex_actors.telemetry._spans import observed_run

__all__ = ["Teleprompter", "check_counts", "check_program", "check_trainset"]

logger = logging.getLogger(__name__)


class Teleprompter:
    """Base class of the optimizers: ``compile(student, *, trainset, ...)`` returns a new program.

    The student is never modified; the result is a copy with demos set on its predictors.
    Every subclass's ``compile`` runs between the callbacks' ``on_compile_start``/``end``
    hooks, in a ``dspex.compile`` span.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        compile_fn = cls.__dict__.get("compile")
        if compile_fn is not None and not getattr(compile_fn, "_observed", False):
            cls.compile = _observed_compile(compile_fn)  # type: ignore[method-assign]

    def compile(self, student: Module, *, trainset: Sequence[Example], **kwargs: Any) -> Module:
        """Return an optimized copy of ``student``."""
        raise NotImplementedError

    def get_params(self) -> dict[str, Any]:
        """The optimizer's settings (DSPy's accessor), for logging and reports."""
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}


def _observed_compile(compile_fn: Callable[..., Module]) -> Callable[..., Module]:
    @functools.wraps(compile_fn)
    def compile(self: Teleprompter, student: Module, *args: Any, **kwargs: Any) -> Module:
        inputs = {"student": student, **kwargs}
        name = type(self).__name__
        with observed_run(
            "compile", self, inputs, "dspex.compile", {"dspex.optimizer": name}
        ) as run:
            return run.returns(compile_fn(self, student, *args, **kwargs))

    compile._observed = True  # type: ignore[attr-defined]
    return compile


def check_program(program: object, role: str, optimizer: str) -> Module:
    """``program`` as a Module with at least one predictor, or a clear OptimizerError."""
    if not isinstance(program, Module):
        raise OptimizerError(
            f"{optimizer}: the {role} must be a dspex_actors Module (a Predict or a Module "
            f"subclass), got {type(program).__name__}"
        )
    if not program.named_predictors():
        raise OptimizerError(
            f"{optimizer}: the {role} {type(program).__name__} has no predictors to give demos to"
        )
    return program


def check_trainset(
    trainset: object, optimizer: str, *, name: str = "trainset", allow_empty: bool = False
) -> list[Example]:
    """``trainset`` as a list of Examples with inputs marked, or a clear OptimizerError.

    Checks every item up front so a bad row fails before any LM call is spent.
    """
    if (
        trainset is None
        or isinstance(trainset, str | bytes | Example)
        or not isinstance(trainset, Sequence)
    ):
        raise OptimizerError(
            f"{optimizer}: {name} must be a list of Examples, got {type(trainset).__name__}"
        )
    items = list(trainset)
    if not items and not allow_empty:
        raise OptimizerError(f"{optimizer}: {name} is empty; give it at least one Example")
    for index, item in enumerate(items):
        if not isinstance(item, Example):
            raise OptimizerError(
                f"{optimizer}: {name}[{index}] is a {type(item).__name__}, not an Example; "
                "build rows with dx.Example(...).with_inputs(...)"
            )
        if item.input_keys is None:
            raise OptimizerError(
                f"{optimizer}: {name}[{index}] has no input fields marked: {item!r}; "
                "call .with_inputs('field', ...) on it"
            )
    return items


def check_counts(
    optimizer: str,
    *options: tuple[str, object, int],
    optional: Collection[str] = (),
    error: type[DSPexError] = OptimizerError,
) -> None:
    """Each ``(label, value, minimum)`` is an int >= minimum (None too, if in ``optional``);
    else ``error`` (OptimizerError unless the caller says otherwise) names it."""
    for label, value, minimum in options:
        if value is None and label in optional:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise error(f"{optimizer}: {label} must be an int >= {minimum}, got {value!r}")
