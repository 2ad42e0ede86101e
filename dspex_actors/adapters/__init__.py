"""Adapters: turn a signature, demos and inputs into chat messages and parse the LM's replies.

``ChatAdapter`` reproduces DSPy 3.4.1's chat-adapter layout byte for byte; ``JSONAdapter`` is
its one-shot JSON-mode fallback; ``XMLAdapter`` is DSPy's XML-tag layout.
"""

from dspex_actors.adapters._base import (
    RequestFn,
    demo_to_dict,
    field_description_string,
    translate_field_type,
)
from dspex_actors.adapters._chat import ChatAdapter
from dspex_actors.adapters._json import JSON_RESPONSE_FORMAT, JSONAdapter
from dspex_actors.adapters._xml import XMLAdapter

__all__ = [
    "JSON_RESPONSE_FORMAT",
    "ChatAdapter",
    "JSONAdapter",
    "RequestFn",
    "XMLAdapter",
    "demo_to_dict",
    "field_description_string",
    "translate_field_type",
]
