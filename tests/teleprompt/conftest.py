"""Fixtures for optimizer tests: ActorSystems over local LM servers, arithmetic data."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from teleprompt_helpers import API_KEY, SystemFactory

from dspex_actors.lm import LM
from dspex_actors.system import ActorSystem
from dspex_actors.testing import LocalLMServer


@pytest.fixture
def system_for(make_lm_server: Callable[..., LocalLMServer]) -> Iterator[SystemFactory]:
    """``system_for(responder, cache=True, **server_kwargs)`` → (entered ActorSystem, server).

    The LM never retries, so the server's request log is exactly the calls made.
    """
    systems: list[ActorSystem] = []

    def factory(
        responder: Any = None, *, cache: bool = True, **server_kwargs: Any
    ) -> tuple[ActorSystem, LocalLMServer]:
        server = make_lm_server(responder, **server_kwargs)
        lm = LM(
            "openai/local-model",
            api_base=server.url,
            api_key=API_KEY,
            num_retries=0,
            cache=cache,
        )
        running = ActorSystem(lm=lm)
        running.__enter__()
        systems.append(running)
        return running, server

    yield factory
    for running in reversed(systems):
        running.__exit__(None, None, None)
