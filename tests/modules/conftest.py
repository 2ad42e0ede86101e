"""Fixtures for the module tests: the predictor tests' ``system_for`` (an entered ActorSystem
talking to a local LM server made for the test)."""

from __future__ import annotations

from collections.abc import Callable

from dspex_actors.system import ActorSystem
from dspex_actors.testing import LocalLMServer
from tests.predict.conftest import system_for

__all__ = ["SystemFor", "system_for"]

SystemFor = Callable[..., tuple[ActorSystem, LocalLMServer]]
"""``system_for(responder=None, **server_kwargs)`` -> (entered ActorSystem, its server)."""
