"""``XMLAdapter``: DSPy 3.4.1's XML layout, byte for byte, and its reply parser.

Fields are wrapped in ``<name>`` tags instead of ``[[ ## name ## ]]`` markers. Outputs typed
as a pydantic model, a list or a dict are written as nested XML (``<item>`` per list entry, a
tag per key, ``<entry key="...">`` for keys that are not tag names), and the prompt shows their
nested structure; string outputs escape ``&`` and ``<``. Replies are parsed as XML, each output
read against its type's JSON schema and then validated. On a parse failure the call is repeated
once in JSON mode, as the chat adapter does.
"""

from __future__ import annotations

import logging
import types
import xml.etree.ElementTree as ET
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any, Union, get_args, get_origin, is_typeddict
from xml.sax.saxutils import quoteattr

from dspex_actors._errors import CoercionError
from dspex_actors.adapters._base import parse_error, translate_field_type
from dspex_actors.adapters._chat import STRUCTURE_INTRO, ChatAdapter, complete_outputs
from dspex_actors.signatures import (
    FieldInfo,
    Signature,
    ensure_signature,
    format_value,
    parse_value,
    to_jsonable,
    type_adapter,
)

__all__ = ["XMLAdapter"]

logger = logging.getLogger(__name__)

_ROOT = "dspy_root"
"""The element the reply is wrapped in for parsing (DSPy's name; never shown to the LM)."""

_OWN_PACKAGE = "dspex_actors."
"""Models of this package (``History``) are written as JSON, never as nested XML."""


class XMLAdapter(ChatAdapter):
    """Formats fields as ``<name>...</name>`` and parses XML replies (DSPy's ``XMLAdapter``)."""

    # -- formatting ----------------------------------------------------------------------------

    def format_field_with_value(self, fields: Iterable[tuple[str, FieldInfo, Any]]) -> str:
        """``<name>\\nvalue\\n</name>`` per field (nested XML for structured outputs)."""
        output = []
        for name, field, value in fields:
            if field.is_output and _uses_nested_xml(field.annotation):
                serialized = to_jsonable(value)
                if isinstance(serialized, (dict, list)):
                    output.append(_value_to_xml(serialized, name))
                    continue
            formatted = format_value(value, field.annotation)
            if field.is_output and field.annotation is str:
                formatted = _escape(formatted)
            output.append(f"<{name}>\n{formatted}\n</{name}>")
        return "\n\n".join(output).strip()

    def format_field_structure(self, signature: type[Signature]) -> str:
        """The tags of every field; structured outputs show their nested XML shape."""

        def one(name: str, field: FieldInfo) -> str:
            if field.is_output and _uses_nested_xml(field.annotation):
                return _xml_schema(name, field.annotation)
            return self.format_field_with_value([(name, field, translate_field_type(name, field))])

        groups = (
            "\n\n".join(one(name, field) for name, field in group.items())
            for group in (signature.input_fields, signature.output_fields)
        )
        return "\n\n".join((STRUCTURE_INTRO, *groups))

    def format_user_message_content(
        self,
        signature: type[Signature],
        inputs: Mapping[str, Any],
        prefix: str = "",
        suffix: str = "",
        main_request: bool = False,
    ) -> str:
        """The inputs present in ``inputs`` as tags, plus the output request if main."""
        present = [
            (name, field, inputs[name])
            for name, field in signature.input_fields.items()
            if name in inputs
        ]
        parts = [prefix, self.format_field_with_value(present)]
        if main_request:
            parts.append(self.user_message_output_requirements(signature))
        return "\n\n".join((*parts, suffix)).strip()

    def format_assistant_message_content(
        self,
        signature: type[Signature],
        outputs: Mapping[str, Any],
        missing_field_message: str | None = None,
    ) -> str:
        """The outputs as tags (no completion marker)."""
        return self.format_field_with_value(
            (name, field, outputs.get(name, missing_field_message))
            for name, field in signature.output_fields.items()
        )

    def user_message_output_requirements(self, signature: type[Signature]) -> str:
        """``Respond with the corresponding output fields wrapped in XML tags `<a>`, ...``"""
        fields = ", then ".join(f"`<{name}>`" for name in signature.output_fields)
        schemas = [
            _xml_schema(name, field.annotation)
            for name, field in signature.output_fields.items()
            if _uses_nested_xml(field.annotation)
        ]
        nested = f" Use this nested XML structure: {' '.join(schemas)}" if schemas else ""
        return f"Respond with the corresponding output fields wrapped in XML tags {fields}.{nested}"

    # -- parsing -------------------------------------------------------------------------------

    def parse(self, signature: type[Signature] | str, completion: str) -> dict[str, Any]:
        """The output fields found as top-level tags of the reply, read as their types.

        Raises :class:`AdapterParseError` when the reply is not XML, a field does not fit its
        type, or a required field is missing.
        """
        sig = ensure_signature(signature)
        adapter = type(self).__name__
        try:
            root = ET.fromstring(f"<{_ROOT}>{completion}</{_ROOT}>")
        except ET.ParseError as exc:
            raise parse_error(
                adapter, sig, completion, problem=f"the reply is not well-formed XML: {exc}"
            ) from None
        elements = _group_children(root)
        parsed: dict[str, Any] = {}
        for name, field in sig.output_fields.items():
            if name not in elements:
                continue
            try:
                parsed[name] = _read_field(elements[name], field.annotation)
            except (ValueError, RecursionError) as exc:
                deep = isinstance(exc, RecursionError)  # an LM reply nested thousands deep
                reason = "the value is nested too deeply" if deep else str(exc)
                raise parse_error(
                    adapter,
                    sig,
                    completion,
                    problem=f"field `{name}`: {reason}",
                    parsed=parsed,
                    bad_fields=[name],
                ) from None
        return complete_outputs(adapter, sig, parsed, completion)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;")


def _read_field(elements: list[ET.Element], annotation: Any) -> Any:
    """One output's elements read against its schema (and each ``anyOf`` option in turn)."""
    adapter = type_adapter(annotation)
    schema = adapter.json_schema(by_alias=False)
    definitions = schema.get("$defs", {})
    error: ValueError | None = None
    value: Any = None
    for candidate in [schema, *schema.get("anyOf", [])]:
        try:
            value = _elements_to_value(elements, candidate, definitions)
            try:
                return parse_value(value, annotation)
            except CoercionError:
                return adapter.validate_python(value, by_name=True)
        except ValueError as exc:
            error = exc
    raise ValueError(f"cannot read {value!r}: {error}")


def _uses_nested_xml(annotation: Any) -> bool:
    """Whether an output of this type is written as nested XML (models, lists, dicts)."""
    args = [arg for arg in get_args(annotation) if arg is not type(None)]
    if len(args) == 1 and get_origin(annotation) in (Union, types.UnionType):
        annotation = args[0]
    origin = get_origin(annotation)
    item = get_args(annotation)[0] if origin is list and get_args(annotation) else annotation
    if _is_base_model(item) and item.__module__.startswith(_OWN_PACKAGE):
        return False
    return origin in (list, dict) or is_typeddict(annotation) or _is_base_model(annotation)


def _is_base_model(annotation: Any) -> bool:
    import pydantic

    return isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel)


def _value_to_xml(value: Any, tag: str, key: str | None = None) -> str:
    attrs = f" key={quoteattr(key)}" if key is not None else ""
    if isinstance(value, list):
        children = "".join(_value_to_xml(item, "item") for item in value)
        return f"<{tag}{attrs}>{children}</{tag}>" if children else f"<{tag}{attrs} />"
    if isinstance(value, dict):
        parts = []
        for raw_name, child in value.items():
            name = str(raw_name)
            valid = (name[:1] + name[1:].replace("-", "_").replace(".", "_")).isidentifier()
            parts.append(
                _value_to_xml(child, name) if valid else _value_to_xml(child, "entry", name)
            )
        return f"<{tag}{attrs}>{''.join(parts)}</{tag}>"
    if value is None:
        return f"<{tag}{attrs} />"
    return f"<{tag}{attrs}>{_escape(str(value))}</{tag}>"


def _xml_schema(tag: str, annotation: Any) -> str:
    schema = type_adapter(annotation).json_schema(by_alias=False)
    return _schema_to_xml(tag, schema, schema.get("$defs", {}), frozenset())


def _schema_to_xml(
    tag: str, schema: Mapping[str, Any], definitions: Mapping[str, Any], seen: frozenset[str]
) -> str:
    ref = schema.get("$ref")
    if ref:
        name = ref.rsplit("/", 1)[-1]
        if name in seen:
            return f"<{tag}>...</{tag}>"
        return _schema_to_xml(tag, definitions[name], definitions, seen | {name})
    choices = schema.get("anyOf")
    if choices:
        chosen = next((s for s in choices if s.get("type") != "null"), choices[0])
        return _schema_to_xml(tag, chosen, definitions, seen)
    if schema.get("type") == "array":
        item = _schema_to_xml("item", schema.get("items", {}), definitions, seen)
        return f"<{tag}>{item}</{tag}>"
    children = "".join(
        _schema_to_xml(name, child, definitions, seen)
        for name, child in schema.get("properties", {}).items()
    )
    return f"<{tag}>{children}</{tag}>" if children else f"<{tag}>...</{tag}>"


def _elements_to_value(
    elements: list[ET.Element], schema: Mapping[str, Any], definitions: Mapping[str, Any]
) -> Any:
    schema = definitions.get(schema.get("$ref", "").rsplit("/", 1)[-1], schema)
    choices = schema.get("anyOf")
    if choices:
        first = elements[0]
        if {"type": "null"} in choices and not list(first) and not (first.text or "").strip():
            return None
        choices = [choice for choice in choices if choice.get("type") != "null"]
        schema = choices[0]
        if list(first):
            schema = next((c for c in choices if c.get("type") != "string"), schema)
    if schema.get("type") == "array":
        if len(elements) == 1 and not list(elements[0]):
            text = (elements[0].text or "").strip()
            if not text or text.startswith("["):
                return text or []
        if len(elements) == 1:
            items = _group_children(elements[0]).get("item")
            if items:
                elements = items
        return [_elements_to_value([e], schema.get("items", {}), definitions) for e in elements]
    element = elements[0]
    if schema.get("type") == "string" and list(element):
        inner = "".join(ET.tostring(child, encoding="unicode") for child in element)
        return (element.text or "") + inner
    children = _group_children(element)
    if not children:
        if schema.get("type") == "object" and not (element.text or "").strip():
            return {}
        values = [(e.text or "").strip() for e in elements]
        return values[0] if len(values) == 1 else values
    properties = schema.get("properties", {})
    child_schema = schema.get("additionalProperties", {})
    if not isinstance(child_schema, dict):
        child_schema = {}
    return {
        name: _elements_to_value(items, properties.get(name, child_schema), definitions)
        for name, items in children.items()
    }


def _group_children(element: ET.Element) -> dict[str, list[ET.Element]]:
    children: dict[str, list[ET.Element]] = defaultdict(list)
    for child in element:
        name = child.attrib.get("key", child.tag) if child.tag == "entry" else child.tag
        children[name].append(child)
    return children
