"""``ChatAdapter``: DSPy 3.4.1's chat-adapter prompt layout, byte for byte, and its reply parser.

The layout (see ``wire-format.md``): a system message with the field list, the
``[[ ## field ## ]]`` structure and the objective; demos as user/assistant turns (incomplete
ones first, marked as such); the final user turn with the inputs and the request for the
outputs in order. Replies are split at the markers and each output is coerced to its type;
on a parse failure the call is repeated once in JSON mode (:class:`JSONAdapter`).
"""

from __future__ import annotations

import logging
import re
import textwrap
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from dspex_actors._errors import AdapterParseError, CoercionError, PredictInputError
from dspex_actors.adapters._base import (
    AsyncRequestFn,
    RequestFn,
    demo_to_dict,
    field_description_string,
    parse_error,
    translate_field_type,
    type_requirement,
)
from dspex_actors.adapters._tools import ToolPlan, plan_tools
from dspex_actors.signatures import (
    FieldInfo,
    History,
    Signature,
    annotation_allows_none,
    ensure_signature,
    format_value,
    parse_value,
)
from dspex_actors.telemetry._callbacks import has_callbacks, start_hook
from dspex_actors.tools import tool_calls_from_reply

if TYPE_CHECKING:
    from dspex_actors._types import LMResponse

__all__ = ["ChatAdapter"]

logger = logging.getLogger(__name__)

FIELD_HEADER = re.compile(r"\[\[ ## (\w+) ## \]\]")
INCOMPLETE_DEMO_PREFIX = (
    "This is an example of the task, though some input or output fields are not supplied."
)
MISSING_IN_DEMO = "Not supplied for this particular example. "
MISSING_IN_COMPLETE_DEMO = "Not supplied for this conversation history message. "
STRUCTURE_INTRO = (
    "All interactions will be structured in the following way, "
    "with the appropriate values filled in."
)


class ChatAdapter:
    """Formats signatures, demos and inputs into chat messages and parses the replies.

    ``use_json_adapter_fallback``: on a parse failure, repeat the call once with
    :class:`JSONAdapter` (DSPy's default). LM and transport errors are never retried here.
    ``use_native_function_calling``: send a ``list[Tool]`` input as the request's ``tools``
    and fill a ``ToolCalls`` output from the reply's tool calls (see ``_tools``);
    ``parallel_tool_calls``: the request's option of that name when native calling is on.
    """

    def __init__(
        self,
        use_json_adapter_fallback: bool = True,
        *,
        use_native_function_calling: bool = False,
        parallel_tool_calls: bool | None = None,
    ) -> None:
        self.use_json_adapter_fallback = use_json_adapter_fallback
        self.use_native_function_calling = use_native_function_calling
        self.parallel_tool_calls = parallel_tool_calls

    def __repr__(self) -> str:
        native = (
            f", use_native_function_calling={self.use_native_function_calling}"
            if self.use_native_function_calling
            else ""
        )
        return (
            f"{type(self).__name__}(use_json_adapter_fallback={self.use_json_adapter_fallback}"
            f"{native})"
        )

    # -- the call ------------------------------------------------------------------------------

    def __call__(
        self,
        request_fn: RequestFn,
        signature: type[Signature] | str,
        demos: Iterable[Any],
        inputs: Mapping[str, Any],
        params: Mapping[str, Any] | None = None,
    ) -> tuple[list[dict[str, Any]], LMResponse]:
        """Format, send through ``request_fn``, parse every choice; one JSON retry on parse failure.

        Returns the parsed outputs (one dict per choice) and the LM response they came from.
        Raises :class:`AdapterParseError` when the retry fails too.
        """
        sig = ensure_signature(signature)
        demo_list = list(demos)
        call_params = self._call_params(params)
        try:
            return self._run(request_fn, sig, demo_list, inputs, call_params)
        except AdapterParseError as first:
            if not self.use_json_adapter_fallback:
                raise
            logger.debug(
                "chat-format parse failed for %s; retrying once in JSON mode", sig.signature
            )
            try:
                return self._json_fallback()(request_fn, sig, demo_list, inputs, call_params)
            except AdapterParseError as second:
                raise _fallback_failed(type(self).__name__, sig, first, second) from second

    async def acall(
        self,
        arequest_fn: AsyncRequestFn,
        signature: type[Signature] | str,
        demos: Iterable[Any],
        inputs: Mapping[str, Any],
        params: Mapping[str, Any] | None = None,
    ) -> tuple[list[dict[str, Any]], LMResponse]:
        """:meth:`__call__` with an awaitable ``arequest_fn``: the same prompt and parsing."""
        sig = ensure_signature(signature)
        demo_list = list(demos)
        call_params = self._call_params(params)
        try:
            plan = self._plan(sig, inputs, call_params)
            messages = self._format_observed(plan.signature, demo_list, inputs)
            response = await arequest_fn(messages, call_params)
            return self._parse_all(plan.signature, response, sig, plan.output_field)
        except AdapterParseError as first:
            if not self.use_json_adapter_fallback:
                raise
            logger.debug(
                "chat-format parse failed for %s; retrying once in JSON mode", sig.signature
            )
            try:
                return await self._json_fallback().acall(
                    arequest_fn, sig, demo_list, inputs, call_params
                )
            except AdapterParseError as second:
                raise _fallback_failed(type(self).__name__, sig, first, second) from second

    def _call_params(self, params: Mapping[str, Any] | None) -> dict[str, Any]:
        """The request parameters of a call (a subclass may add its own)."""
        return dict(params or {})

    def _json_fallback(self) -> ChatAdapter:
        """The adapter of the one JSON-mode retry (same function-calling choice)."""
        from dspex_actors.adapters._json import JSONAdapter

        return JSONAdapter(
            use_native_function_calling=self.use_native_function_calling,
            parallel_tool_calls=self.parallel_tool_calls,
        )

    def _plan(
        self, signature: type[Signature], inputs: Mapping[str, Any], params: dict[str, Any]
    ) -> ToolPlan:
        """The call's tool handling (``params`` gets or loses ``tools`` in place)."""
        return plan_tools(
            signature,
            inputs,
            params,
            native=self.use_native_function_calling,
            parallel_tool_calls=self.parallel_tool_calls,
        )

    def _run(
        self,
        request_fn: RequestFn,
        signature: type[Signature],
        demos: list[Any],
        inputs: Mapping[str, Any],
        params: dict[str, Any],
    ) -> tuple[list[dict[str, Any]], LMResponse]:
        plan = self._plan(signature, inputs, params)
        messages = self._format_observed(plan.signature, demos, inputs)
        response = request_fn(messages, params)
        return self._parse_all(plan.signature, response, signature, plan.output_field)

    def _format_observed(
        self, signature: type[Signature], demos: list[Any], inputs: Mapping[str, Any]
    ) -> list[dict[str, str]]:
        """:meth:`format` between the callbacks' ``on_adapter_format_*`` hooks."""
        if not has_callbacks(self):
            return self.format(signature, demos, inputs)
        hook = start_hook(
            "adapter_format", self, {"signature": signature, "demos": demos, "inputs": inputs}
        )
        if hook is None:
            return self.format(signature, demos, inputs)
        try:
            messages = self.format(signature, demos, inputs)
        except BaseException as exc:
            hook.end(None, exc)
            raise
        hook.end(messages, None)
        return messages

    def _parse_observed(self, signature: type[Signature], completion: str) -> dict[str, Any]:
        """:meth:`parse` between the callbacks' ``on_adapter_parse_*`` hooks."""
        if not has_callbacks(self):
            return self.parse(signature, completion)
        hook = start_hook("adapter_parse", self, {"signature": signature, "completion": completion})
        if hook is None:
            return self.parse(signature, completion)
        try:
            values = self.parse(signature, completion)
        except BaseException as exc:
            hook.end(None, exc)
            raise
        hook.end(values, None)
        return values

    def _parse_all(
        self,
        signature: type[Signature],
        response: LMResponse,
        original: type[Signature] | None = None,
        tool_field: str | None = None,
    ) -> tuple[list[dict[str, Any]], LMResponse]:
        """Every choice of ``response`` parsed (an empty one is a parse error).

        ``signature`` is the one formatted, ``original`` the predictor's (they differ when
        native function calling took fields out); a choice's tool calls fill ``tool_field``,
        and then its text may be missing or unparsable (its fields are None).
        """
        original = original or signature
        values = []
        for index, text in enumerate(response.texts):
            calls = response.tool_calls[index] if index < len(response.tool_calls) else ()
            value: dict[str, Any]
            if tool_field is not None and calls:
                try:
                    value = (
                        self._parse_observed(signature, text)
                        if text and signature.output_fields
                        else {}
                    )
                except AdapterParseError:
                    value = {}
            elif text:
                value = self._parse_observed(signature, text)
            else:
                raise parse_error(
                    type(self).__name__,
                    original,
                    text or "",
                    problem="the LM returned an empty reply",
                )
            if original is not signature or calls:
                value = {name: value.get(name) for name in original.output_fields}
            if tool_field is not None and calls:
                value[tool_field] = tool_calls_from_reply(calls)
            values.append(value)
        return values, response

    # -- formatting ----------------------------------------------------------------------------

    def format(
        self, signature: type[Signature] | str, demos: Iterable[Any], inputs: Mapping[str, Any]
    ) -> list[dict[str, str]]:
        """The messages: system, demo user/assistant pairs, History turns, the final user turn."""
        sig = ensure_signature(signature)
        values = dict(demo_to_dict(inputs))
        messages = [{"role": "system", "content": self.format_system_message(sig)}]
        messages.extend(self.format_demos(sig, demos))
        history_name = next(
            (name for name, f in sig.input_fields.items() if f.annotation is History), None
        )
        if history_name is not None:
            sig = sig.delete(history_name)
            history = values.pop(history_name, None)
            if history is not None:
                messages.extend(
                    self.format_conversation_history(sig, _as_history(history_name, history))
                )
        content = self.format_user_message_content(sig, values, main_request=True)
        if content:
            messages.append({"role": "user", "content": content})
        return messages

    def format_conversation_history(
        self, signature: type[Signature], history: History
    ) -> list[dict[str, str]]:
        """Each History message as a user turn (its inputs, with the output request when it has
        any) and an assistant turn (its outputs); ``signature`` is the one without the field."""
        messages: list[dict[str, str]] = []
        for message in history.messages:
            asks = any(name in message for name in signature.input_fields)
            content = self.format_user_message_content(signature, message, main_request=asks)
            if content:
                messages.append({"role": "user", "content": content})
            reply = self.format_assistant_message_content(signature, message)
            if reply:
                messages.append({"role": "assistant", "content": reply})
        return messages

    def format_system_message(self, signature: type[Signature]) -> str:
        """Field description, structure and objective, joined by newlines (cached per signature)."""
        cache = signature._dspex_cache
        key = ("system", type(self))
        cached = cache.get(key)
        if cached is None:
            cached = (
                f"{self.format_field_description(signature)}\n"
                f"{self.format_field_structure(signature)}\n"
                f"{self.format_task_description(signature)}"
            )
            cache[key] = cached
        return str(cached)

    def format_field_description(self, signature: type[Signature]) -> str:
        """``Your input fields are:`` ... ``Your output fields are:`` ..."""
        return (
            f"Your input fields are:\n{field_description_string(signature.input_fields)}\n"
            f"Your output fields are:\n{field_description_string(signature.output_fields)}"
        )

    def format_field_structure(self, signature: type[Signature]) -> str:
        """The ``[[ ## field ## ]]`` skeleton, ending with ``[[ ## completed ## ]]``."""
        parts = [
            STRUCTURE_INTRO,
            self._placeholders(signature.input_fields),
            self._placeholders(signature.output_fields),
            "[[ ## completed ## ]]\n",
        ]
        return "\n\n".join(parts).strip()

    def _placeholders(self, fields: Mapping[str, FieldInfo]) -> str:
        return self.format_field_with_value(
            [(name, field, translate_field_type(name, field)) for name, field in fields.items()]
        )

    def format_task_description(self, signature: type[Signature]) -> str:
        """``In adhering to this structure, your objective is:`` + the instructions, indented."""
        instructions = textwrap.dedent(signature.instructions)
        objective = ("\n" + " " * 8).join(["", *instructions.splitlines()])
        return f"In adhering to this structure, your objective is: {objective}"

    def format_field_with_value(self, fields: Iterable[tuple[str, FieldInfo, Any]]) -> str:
        """``[[ ## name ## ]]\\nvalue`` per field, joined by blank lines."""
        return "\n\n".join(
            f"[[ ## {name} ## ]]\n{format_value(value, field.annotation)}"
            for name, field, value in fields
        ).strip()

    def format_user_message_content(
        self,
        signature: type[Signature],
        inputs: Mapping[str, Any],
        prefix: str = "",
        suffix: str = "",
        main_request: bool = False,
    ) -> str:
        """The inputs present in ``inputs`` (signature order), plus the output request if main."""
        parts = [prefix]
        for name, field in signature.input_fields.items():
            if name in inputs:
                parts.append(
                    f"[[ ## {name} ## ]]\n{format_value(inputs.get(name), field.annotation)}"
                )
        if main_request:
            parts.append(self.user_message_output_requirements(signature))
        parts.append(suffix)
        return "\n\n".join(parts).strip()

    def user_message_output_requirements(self, signature: type[Signature]) -> str:
        """``Respond with the corresponding output fields, starting with the field ...``"""
        fields = ", then ".join(
            f"`[[ ## {name} ## ]]`{type_requirement(field)}"
            for name, field in signature.output_fields.items()
        )
        return (
            "Respond with the corresponding output fields, starting with the field "
            f"{fields}, and then ending with the marker for `[[ ## completed ## ]]`."
        )

    def format_assistant_message_content(
        self,
        signature: type[Signature],
        outputs: Mapping[str, Any],
        missing_field_message: str | None = None,
    ) -> str:
        """The outputs as the reply would carry them, ending with ``[[ ## completed ## ]]``."""
        content = self.format_field_with_value(
            (name, field, outputs.get(name, missing_field_message))
            for name, field in signature.output_fields.items()
        )
        return content + "\n\n[[ ## completed ## ]]\n"

    def format_demos(
        self, signature: type[Signature], demos: Iterable[Any]
    ) -> list[dict[str, str]]:
        """Demo turns: incomplete demos (marked) first, then complete ones; others dropped."""
        complete: list[dict[str, Any]] = []
        incomplete: list[dict[str, Any]] = []
        for raw in demos:
            demo = demo_to_dict(raw)
            if all(demo.get(k) is not None for k in signature.fields):
                complete.append(demo)
            elif any(k in demo for k in signature.input_fields) and any(
                k in demo for k in signature.output_fields
            ):
                incomplete.append(demo)
        messages: list[dict[str, str]] = []
        for demo in incomplete:
            messages.append(
                {
                    "role": "user",
                    "content": self.format_user_message_content(
                        signature, demo, prefix=INCOMPLETE_DEMO_PREFIX
                    ),
                }
            )
            messages.append(
                {
                    "role": "assistant",
                    "content": self.format_assistant_message_content(
                        signature, demo, missing_field_message=MISSING_IN_DEMO
                    ),
                }
            )
        for demo in complete:
            messages.append(
                {"role": "user", "content": self.format_user_message_content(signature, demo)}
            )
            messages.append(
                {
                    "role": "assistant",
                    "content": self.format_assistant_message_content(
                        signature, demo, missing_field_message=MISSING_IN_COMPLETE_DEMO
                    ),
                }
            )
        return messages

    # -- parsing -------------------------------------------------------------------------------

    def parse(self, signature: type[Signature] | str, completion: str) -> dict[str, Any]:
        """The output fields found at the ``[[ ## name ## ]]`` markers, coerced to their types.

        The first section of each output field wins; text after a marker on its line is kept;
        ``[[ ## completed ## ]]`` is not required. Missing optional fields become None.
        Raises :class:`AdapterParseError` when a field is missing or cannot be coerced.
        """
        sig = ensure_signature(signature)
        sections: list[tuple[str | None, list[str]]] = [(None, [])]
        for line in completion.splitlines():
            match = FIELD_HEADER.match(line.strip())
            if match:
                rest = line.strip()[match.end() :].strip()
                sections.append((match.group(1), [rest] if rest else []))
            else:
                sections[-1][1].append(line)
        raw: dict[str, str] = {}
        for name, lines in sections:
            if name is not None and name not in raw and name in sig.output_fields:
                raw[name] = "\n".join(lines).strip()
        return _coerce_outputs(type(self).__name__, sig, raw, completion)


def _as_history(name: str, value: Any) -> History:
    """A History input value: a History, or its ``{"messages": [...]}`` form."""
    if isinstance(value, History):
        return value
    try:
        return History.model_validate(value)
    except ValueError as exc:
        raise PredictInputError(
            f"input field `{name}` is a History: pass dx.History(messages=[{{...}}, ...]) "
            f"(dicts keyed by the signature's fields), got {type(value).__name__}: {exc}"
        ) from None


def _coerce_outputs(
    adapter: str, signature: type[Signature], raw: Mapping[str, Any], completion: str
) -> dict[str, Any]:
    """Coerce the found fields; missing optional fields become None; all outputs must be there."""
    parsed: dict[str, Any] = {}
    bad: list[str] = []
    problems: list[str] = []
    for name, value in raw.items():
        try:
            parsed[name] = parse_value(value, signature.output_fields[name].annotation)
        except CoercionError as exc:
            bad.append(name)
            problems.append(f"field `{name}`: {exc}")
    if bad:
        raise parse_error(
            adapter,
            signature,
            completion,
            problem="; ".join(problems),
            parsed=parsed,
            bad_fields=bad,
        )
    return complete_outputs(adapter, signature, parsed, completion)


def complete_outputs(
    adapter: str, signature: type[Signature], parsed: Mapping[str, Any], completion: str
) -> dict[str, Any]:
    """The parsed outputs in signature order, missing optional ones as None; a missing
    required one is an :class:`AdapterParseError`."""
    result: dict[str, Any] = {}
    for name, field in signature.output_fields.items():
        if name in parsed:
            result[name] = parsed[name]
        elif annotation_allows_none(field.annotation):
            result[name] = None
    if len(result) != len(signature.output_fields):
        raise parse_error(
            adapter, signature, completion, problem="output fields are missing", parsed=result
        )
    return result


def _fallback_failed(
    adapter: str, signature: type[Signature], first: AdapterParseError, second: AdapterParseError
) -> AdapterParseError:
    """The error when both the adapter's own parse and its JSON-mode retry failed."""
    return AdapterParseError(
        f"{adapter} failed and so did its one JSON-mode retry. First: {first} Retry: {second}",
        signature=signature,
        missing_fields=second.missing_fields,
        lm_response=second.lm_response,
        parsed=second.parsed,
    )
