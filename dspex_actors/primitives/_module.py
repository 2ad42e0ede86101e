"""Module: the base class of LM programs, and Parameter: what a predictor is to a Module.

``named_predictors()`` walks attributes, sub-modules, lists and dicts and names what it
finds the way DSPy does (``predict``, ``steps[0]``, ``steps['a']``, ``cot.predict``; a
bare predictor is ``self``), so saved programs carry over between the two libraries.
``save``/``load`` write and read DSPy's JSON state layout.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import json
import logging
import os
import tempfile
from collections.abc import Awaitable, Callable, Iterator, Mapping
from enum import Enum
from pathlib import Path
from types import ModuleType
from typing import Any, Self

from dspex_actors._errors import ConfigurationError, ProgramLoadError
from dspex_actors._usage import UsageTracker, tracking
from dspex_actors._version import __version__
from dspex_actors.primitives._program_pickle import (
    dependency_versions,
    load_program,
    load_state_pickle,
    save_state_pickle,
)
from dspex_actors.primitives._program_pickle import save_program as save_program_file
from dspex_actors.telemetry._callbacks import has_callbacks, start_hook
from dspex_actors.telemetry._otel import tracer
from dspex_actors.telemetry._spans import internal_span

__all__ = ["Module", "Parameter", "install_batch", "load"]

logger = logging.getLogger(__name__)

METADATA_KEY = "metadata"
"""The top-level key of a saved program that is not a predictor (as in DSPy)."""

FORMAT_VERSION = 1


class _Batch:
    """Where ``Module.batch`` finds its runner: ``dspex_actors.modules`` installs it on import
    (which ``import dspex_actors`` always does), as the executor's package imports this one."""

    run: Callable[..., Any] | None = None


def install_batch(run: Callable[..., Any]) -> None:
    """Set the function behind :meth:`Module.batch` (called by ``dspex_actors.modules``)."""
    _Batch.run = run

def _with_usage(outputs: Any, tracker: UsageTracker) -> Any:
    """``outputs``, its usage set from ``tracker`` when it is a Prediction."""
    set_usage = getattr(outputs, "set_lm_usage", None)
    if callable(set_usage):
        set_usage(tracker.get_total_tokens())
    return outputs


class Parameter:
    """What optimizers tune: something with resettable, dumpable, loadable state.

    :class:`~dspex_actors.Predict` is the only Parameter; the class exists so that
    :class:`Module` can find predictors without importing them.
    """

    def reset(self) -> None:
        """Forget learned state (demos)."""
        raise NotImplementedError

    def dump_state(self) -> dict[str, Any]:
        """The JSON-ready state saved for this parameter."""
        raise NotImplementedError

    def check_state(self, state: Any, name: str = "self") -> None:
        """Raise :class:`ProgramLoadError` if ``state`` cannot be loaded into this parameter."""
        raise NotImplementedError

    def load_state(self, state: Mapping[str, Any]) -> Self:
        """Apply ``state`` (already checked); returns self."""
        raise NotImplementedError


class Module:
    """Base class of LM programs: define ``forward(**inputs)`` and call the module.

    Predictors (and sub-modules holding predictors) are plain attributes; lists and
    dicts of them work too. Subclasses may skip ``super().__init__()``.
    """

    _compiled: bool = False
    callbacks: list[Any] | None = None

    def __init__(self, callbacks: list[Any] | None = None) -> None:
        self.callbacks = list(callbacks) if callbacks else []
        self._compiled = False

    # -- calling -----------------------------------------------------------------------

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """The program's logic; subclasses define it."""
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    async def aforward(self, *args: Any, **kwargs: Any) -> Any:
        """The program's logic for ``await module.acall(...)``; subclasses may define it.

        Predict and ChainOfThought do; a Module of your own that only defines ``forward``
        is run by :meth:`acall` on a worker thread instead.
        """
        raise NotImplementedError(f"{type(self).__name__} does not define aforward()")

    @property
    def has_native_aforward(self) -> bool:
        """Whether this module's class defines its own ``aforward`` (no thread needed)."""
        return type(self).aforward is not Module.aforward

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """``forward`` between the callbacks' ``on_module_start``/``end`` hooks (in an INTERNAL
        span when OpenTelemetry is installed); a Prediction returned carries the usage of
        every LM call made meanwhile (``get_lm_usage()``, DSPy's per-model shape)."""
        with tracking() as tracker:
            outputs = self._forward_observed(args, kwargs)
        return _with_usage(outputs, tracker)

    def _forward_observed(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if tracer() is None and not has_callbacks(self):
            return self.forward(*args, **kwargs)
        hook = start_hook("module", self, {"args": args, "kwargs": kwargs})
        outputs: Any = None
        exception: BaseException | None = None
        try:
            with internal_span(self._span_name()):
                outputs = self.forward(*args, **kwargs)
            return outputs
        except BaseException as exc:
            exception = exc
            raise
        finally:
            if hook is not None:
                hook.end(outputs, exception)

    async def acall(self, *args: Any, **kwargs: Any) -> Any:
        """``await module.acall(**inputs)``: ``aforward`` (or ``forward`` on a worker thread
        when the module defines no ``aforward``), between the same callback hooks."""
        with tracking() as tracker:
            outputs = await self._aforward_observed(args, kwargs)
        return _with_usage(outputs, tracker)

    async def _aforward_observed(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if tracer() is None and not has_callbacks(self):
            return await self._aforward_awaitable(args, kwargs)
        hook = start_hook("module", self, {"args": args, "kwargs": kwargs})
        outputs: Any = None
        exception: BaseException | None = None
        try:
            with internal_span(self._span_name()):
                outputs = await self._aforward_awaitable(args, kwargs)
            return outputs
        except BaseException as exc:
            exception = exc
            raise
        finally:
            if hook is not None:
                hook.end(outputs, exception)

    def _aforward_awaitable(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Awaitable[Any]:
        """``aforward``'s coroutine, or ``forward`` on a worker thread (a plain method: no
        coroutine of its own stays alive while the call is in flight)."""
        if self.has_native_aforward:
            return self.aforward(*args, **kwargs)
        return asyncio.to_thread(self.forward, *args, **kwargs)

    def batch(
        self,
        examples: Any,
        num_threads: int | None = None,
        *,
        max_errors: int | None = None,
        return_failed_examples: bool = False,
        provide_traceback: bool | None = None,
        disable_progress_bar: bool = False,
        timeout: float | None = None,
        straggler_limit: int = 3,
    ) -> Any:
        """Run this module on every example's inputs in parallel (``dx.Parallel``'s semantics):
        the results in order, ``None`` for a failed one; with ``return_failed_examples`` also
        the failed examples and their exceptions."""
        run = _Batch.run
        if run is None:
            raise ConfigurationError("Module.batch needs dspex_actors.modules: import dspex_actors")
        return run(
            self,
            examples,
            num_threads=num_threads,
            max_errors=max_errors,
            return_failed_examples=return_failed_examples,
            provide_traceback=provide_traceback,
            disable_progress_bar=disable_progress_bar,
            timeout=timeout,
            straggler_limit=straggler_limit,
        )

    def _span_name(self) -> str:
        return f"{type(self).__name__}.forward"

    # -- walking the program -----------------------------------------------------------

    def named_parameters(self) -> list[tuple[str, Parameter]]:
        """Every Parameter reachable from this module, with its DSPy-style name.

        Walks attributes, sub-modules (not compiled ones), and one level of lists,
        tuples and dicts. A parameter reachable twice is listed once.
        """
        seen: set[int] = set()
        found: list[tuple[str, Parameter]] = []

        def add(name: str, value: Any) -> None:
            if isinstance(value, Parameter):
                if id(value) not in seen:
                    seen.add(id(value))
                    found.append((name, value))
            elif isinstance(value, Module) and not getattr(value, "_compiled", False):
                for sub_name, param in value.named_parameters():
                    add(f"{name}.{sub_name}", param)

        if isinstance(self, Parameter):
            add("self", self)
        for attr, value in vars(self).items():
            if isinstance(value, Parameter | Module):
                add(attr, value)
            elif isinstance(value, list | tuple):
                for index, item in enumerate(value):
                    add(f"{attr}[{index}]", item)
            elif isinstance(value, dict):
                for key, item in value.items():
                    add(f"{attr}['{key}']", item)
        return found

    def parameters(self) -> list[Parameter]:
        """The Parameters of :meth:`named_parameters`, without names."""
        return [param for _, param in self.named_parameters()]

    def named_predictors(self) -> list[tuple[str, Any]]:
        """Every predictor in the program with its DSPy-style name (``predict``, ``steps[0]``)."""
        return self.named_parameters()

    def predictors(self) -> list[Any]:
        """The predictors of :meth:`named_predictors`, without names."""
        return [param for _, param in self.named_predictors()]

    def named_sub_modules(self, type_: type | None = None) -> Iterator[tuple[str, Any]]:
        """Breadth-first walk of every sub-module (self included), each reached once."""
        wanted = type_ or Module
        queue: list[tuple[str, Any]] = [("self", self)]
        seen = {id(self)}
        while queue:
            name, item = queue.pop(0)
            if isinstance(item, wanted):
                yield name, item
            children: list[tuple[str, Any]] = []
            if isinstance(item, Module):
                children = [(f"{name}.{k}", v) for k, v in vars(item).items()]
            elif isinstance(item, list | tuple):
                children = [(f"{name}[{i}]", v) for i, v in enumerate(item)]
            elif isinstance(item, dict):
                children = [(f"{name}[{k}]", v) for k, v in item.items()]
            for child_name, child in children:
                if id(child) not in seen:
                    seen.add(id(child))
                    queue.append((child_name, child))

    def map_named_predictors(self, func: Callable[[Any], Any]) -> Self:
        """Replace every predictor ``p`` by ``func(p)`` in place; returns self."""
        for name, predictor in self.named_predictors():
            _set_by_name(self, name, func(predictor))
        return self

    def set_lm(self, lm: Any) -> None:
        """Use ``lm`` for every predictor of this program."""
        for _, predictor in self.named_predictors():
            predictor.lm = lm

    def get_lm(self) -> Any:
        """The LM all predictors use (error if they differ; None means the system's)."""
        lms = {id(p.lm): p.lm for p in self.predictors()}
        if len(lms) > 1:
            raise ValueError("the predictors of this program use different LMs")
        return next(iter(lms.values()), None)

    # -- copies ------------------------------------------------------------------------

    def deepcopy(self) -> Self:
        """A deep copy of the program; predictors share their LM and signature values."""
        try:
            return copy.deepcopy(self)
        except Exception:  # an attribute refuses deepcopy: copy the others one by one
            logger.debug("deepcopy of %s failed; copying attributes one by one", type(self))
        new = type(self).__new__(type(self))
        for attr, value in vars(self).items():
            if isinstance(value, Module):
                setattr(new, attr, value.deepcopy())
                continue
            try:
                setattr(new, attr, copy.deepcopy(value))
            except Exception:
                logger.warning(
                    "could not deep-copy attribute %r of %s; sharing it",
                    attr,
                    type(self).__name__,
                )
                setattr(new, attr, value)
        return new

    def reset_copy(self) -> Self:
        """A deep copy with every predictor reset (demos cleared), as DSPy's."""
        new = self.deepcopy()
        for param in new.parameters():
            param.reset()
        return new

    # -- state, save and load ------------------------------------------------------

    def dump_state(self) -> dict[str, Any]:
        """Predictor name → its state (DSPy's layout)."""
        return {name: param.dump_state() for name, param in self.named_parameters()}

    def load_state(self, state: Mapping[str, Any]) -> Self:
        """Load a :meth:`dump_state` result; checks everything before changing anything."""
        if not isinstance(state, Mapping):
            raise ProgramLoadError(
                f"a saved program is a JSON object of predictor states, "
                f"not {type(state).__name__}"
            )
        named = self.named_parameters()
        saved = {k: v for k, v in state.items() if k != METADATA_KEY}
        names = [name for name, _ in named]
        missing = [name for name in names if name not in saved]
        extra = [name for name in saved if name not in names]
        if missing and "signature" in saved:
            raise ProgramLoadError(
                f"saved program holds a single bare predictor, but {type(self).__name__} has "
                f"predictor(s) {names}: load it into a Predict"
            )
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"no state for predictor(s) {missing}")
            if extra:
                parts.append(f"state for predictor(s) {extra} that this program does not have")
            raise ProgramLoadError(
                f"saved program does not match {type(self).__name__}: {'; '.join(parts)} "
                f"(program predictors: {names}, saved: {list(saved)})"
            )
        for name, param in named:
            param.check_state(saved[name], name=name)
        for name, param in named:
            param.load_state(saved[name])
        return self

    def save(
        self,
        path: str | os.PathLike[str],
        save_program: bool = False,
        modules_to_serialize: list[ModuleType] | None = None,
    ) -> None:
        """Write the program's state as JSON (DSPy's layout; never credentials); a path
        ending in ``.pkl`` writes the same state with cloudpickle, as DSPy does.

        ``save_program=True``: write the whole program (its classes and code too) to the
        directory ``path`` with cloudpickle, as DSPy does; read it back with
        ``dx.load(path, allow_pickle=True)``. Needs the ``[pickle]`` extra.
        """
        if save_program:
            save_program_file(self, path, _metadata(), modules_to_serialize)
            return
        target = Path(path)
        state = self.dump_state()
        state[METADATA_KEY] = _metadata()
        if target.suffix == ".pkl":  # DSPy's pickled state (the [pickle] extra)
            save_state_pickle(state, target)
            return
        try:
            text = json.dumps(state, indent=2, ensure_ascii=False, default=_json_default)
        except TypeError as exc:
            raise TypeError(f"cannot save {type(self).__name__} to {target}: {exc}") from exc
        _atomic_write(target, text + "\n")

    def load(self, path: str | os.PathLike[str], allow_pickle: bool = False) -> Self:
        """Load state saved by :meth:`save` (or by DSPy) into this program; returns self.

        A ``.pkl`` state file is unpickled only with ``allow_pickle=True``."""
        if Path(path).suffix == ".pkl":
            self.load_state(load_state_pickle(path, allow_pickle))
        else:
            self.load_state(read_state_file(path))
        return self

    def __repr__(self) -> str:
        lines = [f"{name} = {param!r}" for name, param in self.named_parameters()]
        return f"{type(self).__name__}(" + "".join(f"\n  {line}" for line in lines) + ")"


def load(path: str | os.PathLike[str], allow_pickle: bool = False) -> Module:
    """A whole program saved with ``save(dir, save_program=True)`` (DSPy's ``dspy.load``).

    Refused unless ``allow_pickle=True``: unpickling runs code from the file.
    """
    program = load_program(path, allow_pickle=allow_pickle)
    if not isinstance(program, Module):
        raise ProgramLoadError(
            f"{path} holds a {type(program).__name__}, not a program (a dx.Module)"
        )
    return program


def read_state_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a saved program's JSON object; unreadable or malformed → ProgramLoadError."""
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as exc:
        reason = exc.strerror or exc
        raise ProgramLoadError(f"cannot read saved program {source}: {reason}") from exc
    try:
        state = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ProgramLoadError(f"saved program {source} is not valid JSON: {exc}") from exc
    if not isinstance(state, dict):
        raise ProgramLoadError(
            f"saved program {source} must hold a JSON object, not {type(state).__name__}"
        )
    return state


def _metadata() -> dict[str, Any]:
    """DSPy's metadata entry plus our own; DSPy reads only ``dependency_versions``."""
    return {
        "dependency_versions": dependency_versions(),
        "dspex_actors": {"version": __version__, "format": FORMAT_VERSION},
    }


def _json_default(value: Any) -> Any:
    """JSON fallback for demo values: Enums, sets, tuples, models and dataclasses become
    plain data."""
    to_dict = getattr(value, "toDict", None)
    if callable(to_dict):
        return to_dict()
    model_dump = getattr(value, "model_dump", None)
    if callable(model_dump):
        return model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"a value of type {type(value).__name__} is not JSON-serialisable")


def _atomic_write(target: Path, text: str) -> None:
    """Write ``text`` to ``target`` via a temporary file so a crash leaves no half file."""
    directory = target.parent if str(target.parent) else Path()
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def _set_by_name(root: Module, name: str, value: Any) -> None:
    """Assign ``value`` at a DSPy-style path such as ``a.b[0]`` or ``steps['k']``."""
    if name == "self":
        raise ValueError("map_named_predictors cannot replace a bare predictor itself")
    *path, last = name.split(".")
    owner: Any = root
    for part in path:
        attr, index = _split_index(part)
        owner = getattr(owner, attr)
        if index is not None:
            owner = owner[index]
    attr, index = _split_index(last)
    if index is None:
        setattr(owner, attr, value)
    else:
        getattr(owner, attr)[index] = value


def _split_index(part: str) -> tuple[str, int | str | None]:
    if not part.endswith("]"):
        return part, None
    attr, _, key = part[:-1].partition("[")
    if key.startswith("'") and key.endswith("'"):
        return attr, key[1:-1]
    return attr, int(key)
