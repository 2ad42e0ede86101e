"""What a streamed program yields for a listened field: DSPy's ``StreamResponse``."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["StreamResponse"]


@dataclass(frozen=True)
class StreamResponse:
    """A piece of output field ``signature_field_name`` of predictor ``predict_name``.

    The ``chunk`` values of one field, concatenated, are its text; the last one has
    ``is_last_chunk`` set (and may be empty).
    """

    predict_name: str
    signature_field_name: str
    chunk: str
    is_last_chunk: bool
