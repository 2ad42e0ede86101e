"""Language models: the ``LM`` config value, request/response types and the Client actor."""

from dspex_actors._types import LMRequest, LMResponse, Message, Submit
from dspex_actors.lm._breaker import EndpointBreaker
from dspex_actors.lm._client import ClientActor, ClientOptions, GetClientStats, call_client
from dspex_actors.lm._history import History, inspect_history
from dspex_actors.lm._lm import LM

__all__ = [
    "LM",
    "ClientActor",
    "ClientOptions",
    "EndpointBreaker",
    "GetClientStats",
    "History",
    "LMRequest",
    "LMResponse",
    "Message",
    "Submit",
    "call_client",
    "inspect_history",
]
