"""Fixtures for the module tests: an entered ActorSystem talking to a local LM server."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from dspex_actors.lm import LM
from dspex_actors.system import ActorSystem
from dspex_actors.testing import LocalLMServer

SystemFor = Callable[..., tuple[ActorSystem, LocalLMServer]]


def make_lm(server: LocalLMServer, **kwargs: Any) -> LM:
    """An LM for ``server`` that never retries (tests count requests)."""
    return LM("openai/local-model", api_base=server.url, api_key="sk-test", num_retries=0, **kwargs)


@pytest.fixture
def system_for(make_lm_server: Callable[..., LocalLMServer]) -> Iterator[SystemFor]:
    """Factory: ``system_for(responder, lm_kwargs={...}, **server_kwargs)`` → (entered
    ActorSystem, its server)."""
    systems: list[ActorSystem] = []

    def factory(
        responder: Any = None, lm_kwargs: dict[str, Any] | None = None, **server_kwargs: Any
    ) -> tuple[ActorSystem, LocalLMServer]:
        server = make_lm_server(responder, **server_kwargs)
        running = ActorSystem(lm=make_lm(server, **(lm_kwargs or {})))
        running.__enter__()
        systems.append(running)
        return running, server

    yield factory
    for running in reversed(systems):
        running.__exit__(None, None, None)
