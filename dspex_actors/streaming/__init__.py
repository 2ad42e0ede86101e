"""Streaming like DSPy: ``streamify(program, stream_listeners=[StreamListener(...)])``."""

from dspex_actors.streaming._listener import StreamListener
from dspex_actors.streaming._response import StreamResponse
from dspex_actors.streaming._streamify import streamify

__all__ = ["StreamListener", "StreamResponse", "streamify"]
