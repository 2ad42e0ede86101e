"""``JSONAdapter``: DSPy 3.4.1's JSON-mode layout, used as the chat adapter's one retry.

Same system message as the chat adapter except the structure section (inputs as
``[[ ## ]]`` sections, outputs as an indented JSON object of placeholders); the request
asks for a JSON object; demo replies are indented JSON; ``response_format`` is
``{"type": "json_object"}``. Replies are read as the first JSON object in the text.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from dspex_actors.adapters._base import (
    parse_error,
    translate_field_type,
    type_requirement,
)
from dspex_actors.adapters._chat import STRUCTURE_INTRO, ChatAdapter, _coerce_outputs
from dspex_actors.signatures import (
    FieldInfo,
    Signature,
    ensure_signature,
    loads_tolerant,
    to_jsonable,
)

if TYPE_CHECKING:
    pass

__all__ = ["JSON_RESPONSE_FORMAT", "JSONAdapter"]

logger = logging.getLogger(__name__)

JSON_RESPONSE_FORMAT: dict[str, str] = {"type": "json_object"}


class JSONAdapter(ChatAdapter):
    """Asks for the outputs as one JSON object (``response_format`` json_object); no fallback.

    Native function calling is on by default, as in DSPy.
    """

    def __init__(
        self,
        *,
        use_native_function_calling: bool = True,
        parallel_tool_calls: bool | None = None,
    ) -> None:
        super().__init__(
            use_json_adapter_fallback=False,
            use_native_function_calling=use_native_function_calling,
            parallel_tool_calls=parallel_tool_calls,
        )

    def __repr__(self) -> str:
        if self.use_native_function_calling:
            return "JSONAdapter()"
        return "JSONAdapter(use_native_function_calling=False)"

    def _call_params(self, params: Mapping[str, Any] | None) -> dict[str, Any]:
        """The call's parameters with ``response_format`` json_object."""
        return {**(params or {}), "response_format": dict(JSON_RESPONSE_FORMAT)}

    def format_field_structure(self, signature: type[Signature]) -> str:
        """Inputs as ``[[ ## name ## ]]`` sections, outputs as an indented JSON object."""
        parts = [
            STRUCTURE_INTRO,
            "Inputs will have the following structure:",
            self._placeholders(signature.input_fields),
            "Outputs will be a JSON object with the following fields.",
            self._json_object(
                (name, field, translate_field_type(name, field))
                for name, field in signature.output_fields.items()
            ),
        ]
        return "\n\n".join(parts).strip()

    def user_message_output_requirements(self, signature: type[Signature]) -> str:
        """``Respond with a JSON object in the following order of fields: `a`, then `b`.``"""
        fields = ", then ".join(
            f"`{name}`{type_requirement(field)}" for name, field in signature.output_fields.items()
        )
        return f"Respond with a JSON object in the following order of fields: {fields}."

    def format_assistant_message_content(
        self,
        signature: type[Signature],
        outputs: Mapping[str, Any],
        missing_field_message: str | None = None,
    ) -> str:
        """The outputs as an indented JSON object (no completion marker)."""
        return self._json_object(
            (name, field, outputs.get(name, missing_field_message))
            for name, field in signature.output_fields.items()
        )

    @staticmethod
    def _json_object(fields: Iterable[tuple[str, FieldInfo, Any]]) -> str:
        return json.dumps(
            to_jsonable({name: value for name, _, value in fields}), indent=2, ensure_ascii=False
        )

    def parse(self, signature: type[Signature] | str, completion: str) -> dict[str, Any]:
        """The output fields of the first JSON object in ``completion``, coerced to their types."""
        sig = ensure_signature(signature)
        decoded = loads_tolerant(completion)
        if not isinstance(decoded, dict):
            start = completion.find("{")
            decoded = loads_tolerant(completion[start:]) if start >= 0 else None
        if not isinstance(decoded, dict):
            raise parse_error(
                type(self).__name__, sig, completion, problem="the reply is not a JSON object"
            )
        raw = {k: v for k, v in decoded.items() if k in sig.output_fields}
        return _coerce_outputs(type(self).__name__, sig, raw, completion)
