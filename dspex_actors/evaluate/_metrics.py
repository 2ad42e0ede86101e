"""DSPy's answer metrics: exact match (or token-F1 threshold) and passage match.

Normalisation follows DSPy so scores carry over: Unicode NFD, lowercase, ASCII
punctuation removed, English articles (a/an/the) removed, whitespace collapsed.
"""

from __future__ import annotations

import logging
import re
import string
import unicodedata
from collections import Counter
from typing import Any

__all__ = ["answer_exact_match", "answer_passage_match", "f1_score", "normalize_text"]

logger = logging.getLogger(__name__)

_DROP_PUNCTUATION = str.maketrans("", "", string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")
# DPR's SimpleTokenizer: runs of letters/digits/marks, or any other single non-space char.
_TOKEN = re.compile(r"(?:[^\W_]|[\u0300-\u036f])+|[^\s\w\u0300-\u036f]|_")


def normalize_text(text: str) -> str:
    """Normalise an answer string the way DSPy does before comparing."""
    text = unicodedata.normalize("NFD", text).lower()
    text = text.translate(_DROP_PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def f1_score(prediction: str, ground_truth: str) -> float:
    """Token-level F1 of two strings after :func:`normalize_text` (0.0 without overlap)."""
    predicted = normalize_text(prediction).split()
    expected = normalize_text(ground_truth).split()
    same = sum((Counter(predicted) & Counter(expected)).values())
    if same == 0:
        return 0.0
    precision = same / len(predicted)
    recall = same / len(expected)
    return 2 * precision * recall / (precision + recall)


def _references(example: Any) -> list[str]:
    answer = example.answer
    if isinstance(answer, str):
        return [answer]
    if isinstance(answer, list) and all(isinstance(a, str) for a in answer):
        return answer
    msg = f"example.answer must be a str or a list of str, got {type(answer).__name__}"
    raise ValueError(msg)


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


def answer_exact_match(example: Any, pred: Any, trace: Any = None, frac: float = 1.0) -> bool:
    """True when ``pred.answer`` matches ``example.answer`` (a str or any of a list).

    ``frac >= 1.0``: exact match after normalisation; otherwise the best token F1 over
    the references must be at least ``frac``. ``trace`` is accepted for DSPy's metric
    signature and unused.
    """
    references = _references(example)
    answer = _as_text(pred.answer)
    if frac >= 1.0:
        normalized = normalize_text(answer)
        return any(normalized == normalize_text(ref) for ref in references)
    return max(f1_score(answer, ref) for ref in references) >= frac


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(unicodedata.normalize("NFD", text).lower())


def _contains(haystack: list[str], needle: list[str]) -> bool:
    width = len(needle)
    if width == 0:
        return False
    first = needle[0]
    return any(
        haystack[i] == first and haystack[i : i + width] == needle
        for i in range(len(haystack) - width + 1)
    )


def answer_passage_match(example: Any, pred: Any, trace: Any = None) -> bool:
    """True when any passage in ``pred.context`` contains any reference answer.

    Passages and answers are normalised and tokenised (DPR style); an answer matches
    when its tokens appear contiguously in a passage.
    """
    references = [_tokens(normalize_text(ref)) for ref in _references(example)]
    passages = pred.context
    if isinstance(passages, str):
        passages = [passages]
    for passage in passages:
        tokens = _tokens(normalize_text(_as_text(passage)))
        if any(_contains(tokens, ref) for ref in references):
            return True
    return False
