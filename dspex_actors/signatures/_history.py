"""``History``: earlier turns of a conversation, as a signature input field type.

DSPy's ``dspy.History``: each message is a dict keyed by the signature's field names. An
input field of this type is not written into the final user turn; the adapter expands it into
user/assistant turns (the inputs of each message, then its outputs) after the demos.
"""

from __future__ import annotations

from typing import Any

import pydantic

__all__ = ["History"]


class History(pydantic.BaseModel):
    """A conversation so far: ``History(messages=[{"question": ..., "answer": ...}, ...])``.

    Each message holds some of the signature's input fields (rendered as a user turn) and some
    of its output fields (rendered as the assistant's reply). Frozen, like DSPy's.
    """

    messages: list[dict[str, Any]]

    model_config = pydantic.ConfigDict(
        frozen=True,
        str_strip_whitespace=True,
        validate_assignment=True,
        extra="forbid",
    )

