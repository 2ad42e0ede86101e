"""``asyncify`` and ``syncify``: DSPy's bridges between sync and async programs.

Here they need no thread pool of their own: ``asyncify(program)`` is ``program.acall``
(natively async for a program with ``aforward``, else ``forward`` on a worker thread), and
``syncify(program)`` runs ``aforward`` to completion for a synchronous caller.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
from collections.abc import Awaitable, Callable
from types import MethodType
from typing import Any

from dspex_actors._errors import ConfigurationError
from dspex_actors.primitives._module import Module

__all__ = ["asyncify", "syncify"]


def asyncify(program: Any) -> Callable[..., Awaitable[Any]]:
    """An async function calling ``program``: a Module's ``acall``; any other callable on a
    worker thread (in a copy of the caller's context, as ``asyncio.to_thread`` does)."""
    if isinstance(program, Module):
        return program.acall
    if not callable(program):
        raise ConfigurationError(f"asyncify needs a Module or a callable, got {program!r}")

    async def call(*args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(program, *args, **kwargs)

    return call


def syncify(program: Module, in_place: bool = True) -> Module:
    """``program`` (or, with ``in_place=False``, a Module wrapping it) whose ``forward`` runs
    its ``aforward`` to the end: on a new event loop, or, when this thread already runs
    one, on a thread of its own (that loop is blocked meanwhile, as by any sync call)."""
    if not isinstance(program, Module) or not program.has_native_aforward:
        raise ConfigurationError(
            f"syncify needs a Module that defines aforward(), got {program!r}"
        )
    if in_place:

        def forward(self: Module, *args: Any, **kwargs: Any) -> Any:
            return run_to_completion(self.aforward(*args, **kwargs))

        setattr(program, "forward", MethodType(forward, program))  # noqa: B010 - a method
        return program
    return _SyncWrapper(program)


class _SyncWrapper(Module):
    """``forward`` runs the wrapped program's ``aforward`` (``syncify(..., in_place=False)``)."""

    def __init__(self, program: Module) -> None:
        super().__init__()
        self.program = program

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return run_to_completion(self.program.aforward(*args, **kwargs))


def run_to_completion(coroutine: Any) -> Any:
    """Run ``coroutine`` from synchronous code and return its result."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    context = contextvars.copy_context()  # the caller's system, settings and trace
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="dspex-syncify") as pool:
        return pool.submit(context.run, asyncio.run, coroutine).result()
