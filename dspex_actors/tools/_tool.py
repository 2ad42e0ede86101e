"""``Tool``: a Python function an agent may call, described the way DSPy 3.4.1 describes it.

The name, description and per-argument JSON schema come from the function's signature and
docstring (or are given). Calling the tool checks the argument names and reads each value as
its annotated type (``parse_value``: ``"5"`` for an ``int`` becomes ``5``); an argument
without a hint is passed as given. ``str(tool)`` is the line ReAct puts in its prompt.
"""

from __future__ import annotations

import asyncio
import copy
import inspect
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, get_type_hints

from dspex_actors._errors import CoercionError, ConfigurationError, ToolArgumentError
from dspex_actors.signatures import parse_value, to_jsonable
from dspex_actors.telemetry._callbacks import start_hook
from dspex_actors.tools._schema import arg_schema, is_checked_type

__all__ = ["Tool", "describe_callable"]


def describe_callable(func: Any) -> str:
    """``module.qualname`` of a function (or its type's), to name it in error messages."""
    target = func if hasattr(func, "__qualname__") else type(func)
    module = getattr(target, "__module__", None)
    qualname = getattr(target, "__qualname__", repr(target))
    return f"{module}.{qualname}" if module else str(qualname)


class Tool:
    """A callable tool: ``func`` plus the ``name``, ``desc`` and ``args`` schema an LM sees.

    Anything not given is read off ``func`` (as ``dspy.Tool`` does): the name from
    ``__name__``, the description from the docstring, ``args`` (argument name -> JSON schema,
    with ``default`` for optional ones) and ``arg_types`` from the type hints; ``arg_desc``
    adds a ``description`` to an argument's schema. Async functions work too: ``await
    tool.acall(**args)``; calling one with ``tool(**args)`` runs it to completion when no event
    loop is running in this thread.
    """

    prompt_value_type: ClassVar[bool] = True
    """A signature may have a ``Tool`` or ``list[Tool]`` input field (its value: ``str(tool)``)."""

    func: Callable[..., Any]
    name: str
    desc: str
    args: dict[str, Any]
    arg_types: dict[str, Any]
    arg_desc: dict[str, str]
    has_kwargs: bool
    _required: tuple[str, ...]

    def __init__(
        self,
        func: Callable[..., Any],
        name: str | None = None,
        desc: str | None = None,
        *,
        args: dict[str, Any] | None = None,
        arg_types: dict[str, Any] | None = None,
        arg_desc: dict[str, str] | None = None,
    ) -> None:
        if not callable(func):
            raise ConfigurationError(f"a Tool wraps a callable, got {type(func).__name__}")
        if name is not None and (not isinstance(name, str) or not name.isidentifier()):
            raise ConfigurationError(f"a tool name must be an identifier, got {name!r}")
        for label, value in (("args", args), ("arg_types", arg_types), ("arg_desc", arg_desc)):
            if value is not None and not isinstance(value, Mapping):
                raise ConfigurationError(
                    f"Tool {label}= must be a dict of argument name -> value, "
                    f"got {type(value).__name__}"
                )
        self.func = func
        inspected: Any = func
        if not (inspect.isfunction(func) or inspect.ismethod(func)):
            inspected = func.__call__  # type: ignore[operator]
        parameters = _parameters(func, inspected)
        hints = _hints(func, inspected)
        found_args: dict[str, Any] = {}
        found_types: dict[str, Any] = {}
        for param_name, param in parameters.items():
            annotation = hints.get(param_name, Any)
            found_types[param_name] = annotation
            schema = arg_schema(annotation)
            if param.default is not inspect.Parameter.empty:
                schema["default"] = to_jsonable(param.default)
            if arg_desc and param_name in arg_desc:
                schema["description"] = arg_desc[param_name]
            found_args[param_name] = schema
        if "return" in hints:
            found_types["return"] = hints["return"]
        default_name = getattr(func, "__name__", None) or type(func).__name__
        if name is None and not str(default_name).isidentifier():
            raise ConfigurationError(
                f"cannot name a tool after {describe_callable(func)} ({default_name!r} is not an "
                "identifier): pass name="
            )
        doc = getattr(func, "__doc__", None) or getattr(inspected, "__doc__", None) or ""
        self.name = name or str(default_name)
        self.desc = desc if desc else doc
        self.args = dict(args) if args is not None else found_args
        self.arg_types = dict(arg_types) if arg_types is not None else found_types
        self.arg_desc = dict(arg_desc or {})
        self.has_kwargs = any(p.kind is p.VAR_KEYWORD for p in parameters.values())
        self._required = tuple(
            key
            for key, p in parameters.items()
            if p.default is inspect.Parameter.empty
            and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        )

    # -- calling ---------------------------------------------------------------------------

    def parse_args(self, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """The call's arguments checked against ``args`` and read as their annotated types.

        Raises :class:`ToolArgumentError` naming the tool and the argument.
        """
        parsed: dict[str, Any] = {}
        for key, value in kwargs.items():
            if key not in self.args and not self.has_kwargs:
                raise ToolArgumentError(
                    f"tool {self.name!r} has no argument {key!r} (its arguments: {list(self.args)})"
                )
            try:
                parsed[key] = _read_arg(value, self.arg_types.get(key, Any))
            except (CoercionError, ValueError) as exc:
                raise ToolArgumentError(
                    f"tool {self.name!r}: argument {key!r} is invalid: {exc}"
                ) from exc
        missing = [key for key in self._required if key not in parsed]
        if missing:
            raise ToolArgumentError(
                f"tool {self.name!r} is missing argument(s) {missing} (got {sorted(parsed)})"
            )
        return parsed

    def __call__(self, **kwargs: Any) -> Any:
        """Run the tool; an async function is run to completion (not inside a running loop).
        Callbacks' ``on_tool_start``/``end`` hooks run around it, as in DSPy."""
        hook = start_hook("tool", self, {"kwargs": kwargs})
        if hook is None:
            return self._call(kwargs)
        try:
            result = self._call(kwargs)
        except BaseException as exc:
            hook.end(None, exc)
            raise
        hook.end(result, None)
        return result

    async def acall(self, **kwargs: Any) -> Any:
        """``await tool.acall(**args)``: awaits an async function; a plain function runs on a
        worker thread so it never blocks the event loop (between the same hooks)."""
        hook = start_hook("tool", self, {"kwargs": kwargs})
        if hook is None:
            return await self._acall(kwargs)
        try:
            result = await self._acall(kwargs)
        except BaseException as exc:
            hook.end(None, exc)
            raise
        hook.end(result, None)
        return result

    def _call(self, kwargs: dict[str, Any]) -> Any:
        result = self.func(**self.parse_args(kwargs))
        if not inspect.isawaitable(result):
            return result
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(_awaited(result))
        if inspect.iscoroutine(result):
            result.close()
        raise ConfigurationError(
            f"tool {self.name!r} is async and an event loop is running in this thread: "
            f"use `await tool.acall(...)` (or `await module.acall(...)`)"
        )

    async def _acall(self, kwargs: dict[str, Any]) -> Any:
        parsed = self.parse_args(kwargs)
        if inspect.iscoroutinefunction(self.func) or inspect.iscoroutinefunction(
            getattr(self.func, "__call__", None)  # noqa: B004 -- an async __call__ method
        ):
            result = self.func(**parsed)
        else:
            result = await asyncio.to_thread(self.func, **parsed)
        if inspect.isawaitable(result):
            return await result
        return result

    # -- describing ------------------------------------------------------------------------

    def format(self) -> str:
        """The tool as the prompt lists it (``str(tool)``)."""
        return str(self)

    def format_as_litellm_function_call(self) -> dict[str, Any]:
        """The OpenAI ``tools`` entry for this tool (DSPy's name for it)."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.desc,
                "parameters": {
                    "type": "object",
                    "properties": self.args,
                    "required": [k for k in self.args if "default" not in self.args[k]],
                },
            },
        }

    def __str__(self) -> str:
        desc = (
            f", whose description is <desc>{self.desc}</desc>.".replace("\n", "  ")
            if self.desc
            else "."
        )
        return f"{self.name}{desc} It takes arguments {self.args}."

    def __repr__(self) -> str:
        return f"Tool(name={self.name}, desc={self.desc}, args={self.args})"

    def __deepcopy__(self, memo: dict[int, Any]) -> Tool:
        """A copy sharing the function: a program's deep copy must not copy what tools hold
        (clients, connections)."""
        return copy.copy(self)


def _read_arg(value: Any, annotation: Any) -> Any:
    """``value`` as ``annotation``: basic types with ``parse_value``, others (a pydantic model,
    a tuple) with pydantic when it is installed; ``Any`` and unknown types as given."""
    if annotation is Any:
        return value
    if is_checked_type(annotation):
        return parse_value(value, annotation)
    try:
        import pydantic
    except ImportError:
        return value
    try:
        adapter = pydantic.TypeAdapter(annotation)
    except Exception:  # not a type pydantic knows either: as given
        return value
    try:
        return adapter.validate_python(value)
    except pydantic.ValidationError as exc:
        raise ValueError(str(exc)) from None


def _parameters(func: Any, inspected: Any) -> Mapping[str, inspect.Parameter]:
    try:
        return inspect.signature(inspected).parameters
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(
            f"cannot read the arguments of tool {describe_callable(func)}: {exc}"
        ) from exc


def _hints(func: Any, inspected: Any) -> dict[str, Any]:
    try:
        return get_type_hints(inspected)
    except Exception as exc:  # a hint naming something that does not exist
        raise ConfigurationError(
            f"cannot read the type hints of tool {describe_callable(func)}: {exc} "
            "(define the names its hints use, or pass arg_types=)"
        ) from exc


async def _awaited(awaitable: Any) -> Any:
    return await awaitable
