"""How an instruction optimizer's run ends early, keeping the best program so far.

``max_errors`` exceeded in an evaluation, or an LM error outside one (a proposal or
reflection call), become :class:`OptimizerError` whose ``partial`` is the best program
found before it; Ctrl-C becomes :class:`CompileInterrupted` (a ``KeyboardInterrupt``, so
an ``except Exception:`` never swallows it) whose ``result`` is that program. The
finished work is never lost (the checkpoint, when on, holds it too).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from dspex_actors._errors import (
    CompileInterrupted,
    DSPexError,
    EvaluationAborted,
    OptimizerError,
)
from dspex_actors.primitives import Module

__all__ = ["keep_partial"]


@contextmanager
def keep_partial(
    optimizer: str, partial: Callable[[], Module | None], where: Callable[[], str]
) -> Iterator[None]:
    """Turn the body's early ends into OptimizerError(partial=partial()), Ctrl-C into
    CompileInterrupted(result=partial()); ``where()`` says which step was running
    (``"iteration 3"``), for the message."""
    try:
        yield
    except KeyboardInterrupt as exc:
        message = f"{optimizer}: interrupted in {where()}"
        raise CompileInterrupted(message, result=partial()) from exc
    except EvaluationAborted as exc:
        raise OptimizerError(
            f"{optimizer}: {where()} stopped early ({exc})", partial=partial()
        ) from exc
    except OptimizerError:
        raise
    except DSPexError as exc:
        raise OptimizerError(
            f"{optimizer}: {where()} failed: {type(exc).__name__}: {exc}", partial=partial()
        ) from exc
