"""Fixtures for Predict tests: an ActorSystem talking to a local LM server."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from dspex_actors.lm import LM
from dspex_actors.system import ActorSystem
from dspex_actors.testing import LocalLMServer

API_KEY = "sk-test-secret-0123456789"


def make_lm(server: LocalLMServer, **kwargs: Any) -> LM:
    """An LM for ``server`` that never retries (tests count requests)."""
    return LM("openai/local-model", api_base=server.url, api_key=API_KEY, num_retries=0, **kwargs)


@pytest.fixture
def system(lm_server: LocalLMServer) -> Iterator[ActorSystem]:
    """A running ActorSystem (current in this context) whose LM is the default local server."""
    with ActorSystem(lm=make_lm(lm_server)) as running:
        yield running


@pytest.fixture
def system_for(
    make_lm_server: Callable[..., LocalLMServer],
) -> Iterator[Callable[..., tuple[ActorSystem, LocalLMServer]]]:
    """Factory: ``system_for(responder)`` → (entered ActorSystem, its server)."""
    systems: list[ActorSystem] = []

    def factory(responder: Any = None, **server_kwargs: Any) -> tuple[ActorSystem, LocalLMServer]:
        server = make_lm_server(responder, **server_kwargs)
        running = ActorSystem(lm=make_lm(server))
        running.__enter__()
        systems.append(running)
        return running, server

    yield factory
    for running in reversed(systems):
        running.__exit__(None, None, None)
