"""Metrics selectable by name on the command line, or ``module:function`` for your own."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from dspex_actors._errors import ConfigurationError
from dspex_actors.evaluate import answer_exact_match, answer_passage_match, f1_score

__all__ = ["METRICS", "MetricChoice", "metric_choice", "resolve_metric"]

logger = logging.getLogger(__name__)

METRICS: dict[str, str] = {
    "exact_match": "1 when the answer field equals the gold answer after normalisation",
    "f1": "token-level F1 between the answer field and the gold answer (0..1)",
    "passage_match": "1 when a passage in the prediction's context contains the gold answer",
}


@dataclass(frozen=True)
class MetricChoice:
    """A metric named on the command line: a built-in name or ``module:function``."""

    spec: str

    @property
    def builtin(self) -> bool:
        return self.spec in METRICS


def metric_choice(text: str) -> MetricChoice:
    """argparse type: a built-in metric name or ``module:function``."""
    if text in METRICS or _is_import_spec(text):
        return MetricChoice(text)
    known = ", ".join(sorted(METRICS))
    raise argparse.ArgumentTypeError(
        f"unknown metric {text!r}; choose one of {known}, or give module:function "
        "for a metric of your own"
    )


def _is_import_spec(text: str) -> bool:
    module, sep, function = text.partition(":")
    return bool(sep and module and function.isidentifier())


def _text(value: Any) -> Any:
    """Gold values read from JSON may be numbers: compare them as text."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return [v if isinstance(v, str) else str(v) for v in value]
    return str(value)


class FieldMetric:
    """A built-in answer metric applied to one field of the example and prediction."""

    def __init__(self, name: str, field: str) -> None:
        self.__name__ = name
        self.name = name
        self.field = field

    def __call__(self, example: Any, pred: Any, trace: Any = None) -> float | bool:
        gold = SimpleNamespace(answer=_text(example[self.field]))
        if self.name == "passage_match":
            return answer_passage_match(gold, pred, trace)
        got = SimpleNamespace(answer=getattr(pred, self.field))
        if self.name == "f1":
            references = gold.answer if isinstance(gold.answer, list) else [gold.answer]
            return max(f1_score(str(got.answer), ref) for ref in references)
        return answer_exact_match(gold, got, trace)

    def __repr__(self) -> str:
        return f"<metric {self.name} on field {self.field!r}>"


def resolve_metric(choice: MetricChoice, field: str) -> Callable[..., Any]:
    """The callable for a metric choice; a ConfigurationError when it cannot be imported."""
    if choice.builtin:
        return FieldMetric(choice.spec, field)
    module_name, _, function_name = choice.spec.partition(":")
    if os.getcwd() not in sys.path:  # a console script does not see the user's own modules
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(
            f"--metric {choice.spec}: cannot import {module_name}: {exc}"
        ) from None
    function = getattr(module, function_name, None)
    if not callable(function):
        raise ConfigurationError(
            f"--metric {choice.spec}: {module_name} has no function {function_name}"
        )
    metric: Callable[..., Any] = function
    return metric
