"""``StreamListener``: which output field of which predictor to stream (DSPy's names)."""

from __future__ import annotations

from typing import Any

__all__ = ["StreamListener"]


class StreamListener:
    """Stream output field ``signature_field_name``.

    ``predict`` (or ``predict_name``) picks the predictor when more than one has that
    field; by default the one predictor of the program that has it. Without
    ``allow_reuse`` the listener streams the field of one call only. The field is followed
    in the call's adapter format: chat ``[[ ## field ## ]]`` markers, the field's JSON
    string value under ``JSONAdapter``, or its ``<field>`` tag under ``XMLAdapter``
    (``dx.context(adapter=...)`` and a predictor's own adapter included).
    """

    def __init__(
        self,
        signature_field_name: str,
        predict: Any = None,
        predict_name: str | None = None,
        allow_reuse: bool = False,
    ) -> None:
        if not isinstance(signature_field_name, str) or not signature_field_name:
            msg = f"StreamListener needs a field name, got {signature_field_name!r}"
            raise TypeError(msg)
        self.signature_field_name = signature_field_name
        self.predict = predict
        self.predict_name = predict_name
        self.allow_reuse = bool(allow_reuse)

    def __repr__(self) -> str:
        return f"StreamListener(signature_field_name={self.signature_field_name!r})"
