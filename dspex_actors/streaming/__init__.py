"""Streaming like DSPy: ``streamify(program, stream_listeners=[StreamListener(...)])``."""

from dspex_actors.streaming._listener import StreamListener
from dspex_actors.streaming._response import StreamResponse
from dspex_actors.streaming._status import StatusMessage, StatusMessageProvider
from dspex_actors.streaming._streamify import apply_sync_streaming, streamify

__all__ = [
    "StatusMessage",
    "StatusMessageProvider",
    "StreamListener",
    "StreamResponse",
    "apply_sync_streaming",
    "streamify",
]
