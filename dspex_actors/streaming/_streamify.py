"""``streamify``: run a program and yield its listened fields as they arrive, then its result."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Callable, Generator, Sequence
from typing import Any, Literal, overload

from dspex_actors._errors import ConfigurationError
from dspex_actors.primitives import Module, Prediction
from dspex_actors.streaming._listener import StreamListener
from dspex_actors.streaming._response import StreamResponse
from dspex_actors.streaming._session import Binding, StreamSession
from dspex_actors.streaming._status import StatusCallback, StatusMessage, StatusMessageProvider
from dspex_actors.telemetry._callbacks import context_callbacks, global_callbacks

__all__ = ["apply_sync_streaming", "streamify"]

StreamItem = StreamResponse | StatusMessage | Prediction | Any


@overload
def streamify(
    program: Module,
    *,
    status_message_provider: StatusMessageProvider | None = None,
    stream_listeners: Sequence[StreamListener] | None = None,
    include_final_prediction_in_output_stream: bool = True,
    is_async_program: bool = False,
    async_streaming: Literal[True] = True,
) -> Callable[..., AsyncGenerator[StreamItem, None]]: ...


@overload
def streamify(
    program: Module,
    *,
    status_message_provider: StatusMessageProvider | None = None,
    stream_listeners: Sequence[StreamListener] | None = None,
    include_final_prediction_in_output_stream: bool = True,
    is_async_program: bool = False,
    async_streaming: Literal[False],
) -> Callable[..., Generator[StreamItem, None, None]]: ...


def streamify(
    program: Module,
    *,
    status_message_provider: StatusMessageProvider | None = None,
    stream_listeners: Sequence[StreamListener] | None = None,
    include_final_prediction_in_output_stream: bool = True,
    is_async_program: bool = False,
    async_streaming: bool = True,
) -> Callable[..., AsyncGenerator[StreamItem, None] | Generator[StreamItem, None, None]]:
    """Wrap ``program`` so that calling it streams, as DSPy's ``dspy.streamify`` does.

    ``streamed(**inputs)`` is an async generator (a plain one with
    ``async_streaming=False``) of :class:`StreamResponse` items for the listened fields,
    as the LM writes them, then the program's result. The predictors a listener follows
    send their LM call with ``"stream": true``; a cached answer is given whole, without a
    request. A stream cut mid-way raises its :class:`~dspex_actors.LMError` from the
    generator. A listener for a field no predictor of the program has is a
    :class:`~dspex_actors.ConfigurationError`, here, before anything runs.

    :class:`StatusMessage` items say what the run is doing, as the
    ``status_message_provider`` words it (by default, as DSPy's: a tool call starting and
    ending). ``is_async_program`` is accepted for DSPy's sake and changes nothing: a
    program with ``aforward`` runs on the loop, any other on a worker thread.
    """
    program_value: object = program
    if not isinstance(program_value, Module):
        msg = f"streamify needs a Module (a Predict, ChainOfThought, ...), got {program!r}"
        raise ConfigurationError(msg)
    bindings = _bind(program, list(stream_listeners or ()))
    include_final = include_final_prediction_in_output_stream
    provider = status_message_provider or StatusMessageProvider()
    callbacks = context_callbacks()

    async def astream(**inputs: Any) -> AsyncGenerator[StreamItem, None]:
        session = StreamSession(asyncio.get_running_loop(), bindings)
        token = session.enter()
        scoped = callbacks.get()
        base = scoped if scoped is not None else global_callbacks()
        callbacks_token = callbacks.set((*base, StatusCallback(provider, session)))
        try:  # the task's context is a copy of this one: it sees the session and callback
            run = asyncio.ensure_future(program.acall(**inputs))
        finally:
            callbacks.reset(callbacks_token)
            session.leave(token)
        try:
            while True:
                take = asyncio.ensure_future(session.queue.get())
                await asyncio.wait({take, run}, return_when=asyncio.FIRST_COMPLETED)
                if take.done():
                    yield take.result()
                    continue
                take.cancel()
                while not session.queue.empty():
                    yield session.queue.get_nowait()
                result = run.result()  # the program's error, if it failed
                if include_final:
                    yield result
                return
        finally:
            if not run.done():
                run.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await run

    def stream(**inputs: Any) -> Generator[StreamItem, None, None]:
        return apply_sync_streaming(astream(**inputs))

    return astream if async_streaming else stream


def apply_sync_streaming(
    async_generator: AsyncGenerator[StreamItem, None],
) -> Generator[StreamItem, None, None]:
    """The items of ``async_generator`` as a plain generator (DSPy's helper of that name):
    run on an event loop of its own in this thread, closed when the generator is."""
    loop = asyncio.new_event_loop()
    try:
        while True:
            try:
                item = loop.run_until_complete(async_generator.__anext__())
            except StopAsyncIteration:
                return
            yield item
    finally:
        try:
            loop.run_until_complete(async_generator.aclose())
        finally:
            loop.close()


def _bind(program: Module, listeners: list[StreamListener]) -> list[Binding]:
    """Each listener's predictor (by identity) and its name in the program."""
    predictors = program.named_predictors()
    bindings = []
    for listener in listeners:
        listener_value: object = listener
        if not isinstance(listener_value, StreamListener):
            msg = f"stream_listeners must be dx.StreamListener objects, got {listener!r}"
            raise ConfigurationError(msg)
        field = listener.signature_field_name
        if listener.predict is not None:
            chosen = [(n, p) for n, p in predictors if p is listener.predict]
        elif listener.predict_name is not None:
            chosen = [(n, p) for n, p in predictors if n == listener.predict_name]
        else:
            chosen = [(n, p) for n, p in predictors if field in p.signature.output_fields]
        if listener.predict is not None or listener.predict_name is not None:
            if not chosen:
                msg = f"stream listener for {field!r}: its predictor is not part of {program!r}"
                raise ConfigurationError(msg)
            chosen = [(n, p) for n, p in chosen if field in p.signature.output_fields]
        if not chosen:
            have = "; ".join(f"{n}: {p.signature.signature}" for n, p in predictors) or "none"
            msg = (
                f"stream listener for {field!r}: no predictor of the program has an output "
                f"field {field!r} (predictors: {have})"
            )
            raise ConfigurationError(msg)
        if len(chosen) > 1:
            names = ", ".join(n for n, _ in chosen)
            msg = (
                f"stream listener for {field!r}: several predictors have that output field "
                f"({names}); pass predict= or predict_name= to StreamListener"
            )
            raise ConfigurationError(msg)
        name, predictor = chosen[0]
        bindings.append(Binding(predictor, name, field, listener.allow_reuse))
    return bindings
