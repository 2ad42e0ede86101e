"""``Signature``: a task's typed input and output fields plus instructions, as an immutable class.

Like DSPy, a signature is a class (built by a metaclass) rather than an instance: the class form
declares fields as annotated attributes and the instructions as the docstring; the string form
(``"context: list[str], question -> answer: int"``) is parsed without evaluating code. Signatures
never change once created: every derivation method returns a new class, and two signatures are
equal when their instructions and fields (name, kind, annotation, desc, prefix) are equal.

Reserved field names (rejected with :class:`SignatureError`):

* names starting with ``_`` and names that are not Python identifiers or are keywords;
* names of Signature attributes (``instructions``, ``fields``, ``append``, ...);
* ``completed`` (the chat format's end marker ``[[ ## completed ## ]]``);
* ``config``, ``demos``, ``lm``, ``new_signature`` (keyword arguments a predictor call takes
  for itself, so such an input could never reach the prompt).
"""

from __future__ import annotations

import ast
import inspect
import keyword
import logging
import sys
import types
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar, get_origin

from dspex_actors._errors import SignatureError, SignatureTypeError
from dspex_actors.signatures._field import FieldInfo
from dspex_actors.signatures._types import (
    annotation_from_node,
    annotation_name,
    check_annotation,
    is_enum_type,
    is_model_type,
    parse_annotation,
)

__all__ = [
    "RESERVED_FIELD_NAMES",
    "Signature",
    "SignatureMeta",
    "ensure_signature",
    "make_signature",
    "rebuild_signature",
]

logger = logging.getLogger(__name__)

RESERVED_FIELD_NAMES: frozenset[str] = frozenset(
    {
        "instructions",
        "signature",
        "fields",
        "input_fields",
        "output_fields",
        "with_instructions",
        "append_instructions",
        "with_updated_fields",
        "prepend",
        "append",
        "insert",
        "delete",
        "equals",
        "dump_state",
        "load_state",
        "completed",
        "config",
        "demos",
        "lm",
        "new_signature",
    }
)
"""Field names a signature may not use (besides ``_``-prefixed names and non-identifiers)."""

_DEFAULT_NAME = "StringSignature"


def _default_instructions(fields: Mapping[str, FieldInfo]) -> str:
    inputs = ", ".join(f"`{name}`" for name, f in fields.items() if f.is_input)
    outputs = ", ".join(f"`{name}`" for name, f in fields.items() if f.is_output)
    return f"Given the fields {inputs}, produce the fields {outputs}."


def _check_name(name: Any, where: str) -> str:
    if not isinstance(name, str):
        raise SignatureError(f"{where}: field names must be strings, got {name!r}")
    if not name.isidentifier() or keyword.iskeyword(name):
        raise SignatureError(
            f"{where}: {name!r} is not a valid field name (must be a Python identifier)"
        )
    if name.startswith("_"):
        raise SignatureError(
            f"{where}: field name {name!r} is reserved (names may not start with '_')"
        )
    if name in RESERVED_FIELD_NAMES:
        raise SignatureError(
            f"{where}: field name {name!r} is reserved (it is a Signature attribute, "
            "the chat format's "
            "end marker, or a predictor call option); choose another name"
        )
    return name


def _hashable(annotation: Any) -> Any:
    try:
        hash(annotation)
    except TypeError:
        return repr(annotation)
    return annotation


class SignatureMeta(type):
    """Metaclass of signatures: collects the fields, checks them and freezes the class."""

    _dspex_fields: Mapping[str, FieldInfo]
    _dspex_inputs: Mapping[str, FieldInfo]
    _dspex_outputs: Mapping[str, FieldInfo]
    _dspex_all: Mapping[str, FieldInfo]
    _dspex_instructions: str
    _dspex_key: tuple[Any, ...]
    _dspex_hash: int
    _dspex_cache: dict[Any, Any]

    def __new__(
        mcs, name: str, bases: tuple[type, ...], namespace: dict[str, Any], **kwargs: Any
    ) -> SignatureMeta:
        sig_bases = [b for b in bases if isinstance(b, SignatureMeta)]
        if not sig_bases:  # the Signature base class itself
            cls = super().__new__(mcs, name, bases, namespace, **kwargs)
            mcs._freeze(cls, {}, "")
            return cls
        where = f"signature {name}"
        fields: dict[str, FieldInfo] = {}
        for base in reversed(sig_bases):
            fields.update(base._dspex_fields)
        raw_annotations: dict[str, Any] = dict(namespace.get("__annotations__", {}))
        declared = {k: v for k, v in namespace.items() if isinstance(v, FieldInfo)}
        for attr, annotation in raw_annotations.items():
            if attr in declared or _is_classvar(annotation):
                continue
            raise SignatureError(
                f"{where}: `{attr}` is annotated but not declared with "
                "InputField() or OutputField()"
            )
        for attr, declared_field in declared.items():
            _check_name(attr, where)
            if declared_field.annotation is not None and attr not in raw_annotations:
                annotation = declared_field.annotation
            else:
                annotation = raw_annotations.get(attr, str)
            try:
                if isinstance(annotation, str):
                    enums = _module_enums(namespace.get("__module__"))
                    annotation = parse_annotation(annotation, field=attr, custom_types=enums)
                else:
                    check_annotation(annotation, field=attr)
            except SignatureTypeError as exc:
                raise SignatureTypeError(f"{where}: {exc}") from None
            fields[attr] = declared_field.bind(attr, annotation)
        body = {k: v for k, v in namespace.items() if k not in declared}
        body["__annotations__"] = {k: v for k, v in raw_annotations.items() if k not in declared}
        doc = namespace.get("__doc__")
        if doc is None:
            inherited = next(
                (b._dspex_instructions for b in sig_bases if b._dspex_instructions), None
            )
            doc = inherited if inherited is not None else _default_instructions(fields)
        if not isinstance(doc, str):
            raise SignatureError(
                f"{where}: instructions must be a string, got {type(doc).__name__}"
            )
        body["__doc__"] = doc
        cls = super().__new__(mcs, name, bases, body, **kwargs)
        mcs._freeze(cls, fields, inspect.cleandoc(doc))
        return cls

    @staticmethod
    def _freeze(sig: SignatureMeta, fields: dict[str, FieldInfo], instructions: str) -> None:
        inputs = {k: f for k, f in fields.items() if f.is_input}
        outputs = {k: f for k, f in fields.items() if f.is_output}
        key = (
            instructions,
            tuple(
                (k, f.kind, _hashable(f.annotation), f.desc, f.prefix)
                for k, f in {**inputs, **outputs}.items()
            ),
        )
        values = {
            "_dspex_fields": MappingProxyType(dict(fields)),
            "_dspex_inputs": MappingProxyType(inputs),
            "_dspex_outputs": MappingProxyType(outputs),
            "_dspex_all": MappingProxyType({**inputs, **outputs}),
            "_dspex_instructions": instructions,
            "_dspex_key": key,
            "_dspex_hash": hash(key),
            "_dspex_cache": {},
        }
        for attr, value in values.items():
            type.__setattr__(sig, attr, value)

    # -- immutability, equality ------------------------------------------------------------

    def __setattr__(cls, name: str, value: Any) -> None:
        if name.startswith("__") and name.endswith("__"):
            type.__setattr__(cls, name, value)
            return
        raise SignatureError(
            f"signature {cls.__name__} is immutable: use with_instructions(), append(), prepend(), "
            f"delete() or with_updated_fields() to derive a new one (tried to set {name!r})"
        )

    def __delattr__(cls, name: str) -> None:
        raise SignatureError(f"signature {cls.__name__} is immutable (tried to delete {name!r})")

    def __eq__(cls, other: object) -> bool:
        if not isinstance(other, SignatureMeta):
            return NotImplemented
        return cls is other or cls._dspex_key == other._dspex_key

    def __hash__(cls) -> int:
        return cls._dspex_hash

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        if cls is Signature:
            return make_signature(*args, **kwargs)
        raise SignatureError(
            f"signature {cls.__name__} is a class describing a task and is not instantiated; "
            "pass it to Predict(...) instead"
        )

    def __repr__(cls) -> str:
        if not cls._dspex_all:
            return f"{cls.__name__}()"
        fields = "\n    ".join(
            f"{name}: {annotation_name(f.annotation)} = "
            f"{'InputField' if f.is_input else 'OutputField'}(desc={f.desc!r}, prefix={f.prefix!r})"
            for name, f in cls._dspex_all.items()
        )
        head = f"{cls.__name__}({cls.signature}"
        return f"{head}\n    instructions={cls.instructions!r}\n    {fields}\n)"

    # -- read access ---------------------------------------------------------------------------

    @property
    def instructions(cls) -> str:
        """The task description (the class docstring, or the default instructions)."""
        return cls._dspex_instructions

    @property
    def input_fields(cls) -> Mapping[str, FieldInfo]:
        """Input fields in order (a read-only mapping name -> FieldInfo)."""
        return cls._dspex_inputs

    @property
    def output_fields(cls) -> Mapping[str, FieldInfo]:
        """Output fields in order (a read-only mapping name -> FieldInfo)."""
        return cls._dspex_outputs

    @property
    def fields(cls) -> Mapping[str, FieldInfo]:
        """Input fields then output fields (a read-only mapping name -> FieldInfo)."""
        return cls._dspex_all

    @property
    def signature(cls) -> str:
        """The short string form, e.g. ``"question -> answer"``."""
        return f"{', '.join(cls._dspex_inputs)} -> {', '.join(cls._dspex_outputs)}"


def rebuild_signature(
    name: str, qualname: str, module: str, fields: Mapping[str, FieldInfo], instructions: str
) -> type[Signature]:
    """A signature class from its parts (derivations, and unpickling a saved program)."""
    namespace: dict[str, Any] = {
        "__doc__": instructions,
        "__module__": module,
        "__qualname__": qualname,
        "__annotations__": {key: f.annotation for key, f in fields.items()},
    }
    namespace.update(fields)
    return SignatureMeta(name, (Signature,), namespace)  # type: ignore[return-value]


def _is_classvar(annotation: Any) -> bool:
    if isinstance(annotation, str):
        return annotation.startswith(("ClassVar", "typing.ClassVar"))
    return annotation is ClassVar or get_origin(annotation) is ClassVar


def _module_enums(module_name: Any) -> dict[str, Any]:
    """Enum, model classes and modules visible in the defining module, for string (postponed)
    annotations (``person: Person``, ``history: dx.History``)."""
    module = sys.modules.get(module_name) if isinstance(module_name, str) else None
    if module is None:
        return {}
    return {
        k: v
        for k, v in vars(module).items()
        if is_enum_type(v) or is_model_type(v) or isinstance(v, types.ModuleType)
    }


class Signature(metaclass=SignatureMeta):
    """Base class of signatures. Subclass it, or call ``Signature("a -> b", "instructions")``."""

    @classmethod
    def _derive(cls, fields: Mapping[str, FieldInfo], instructions: str) -> type[Signature]:
        return rebuild_signature(
            cls.__name__, cls.__qualname__, cls.__module__, fields, instructions
        )

    @classmethod
    def with_instructions(cls, instructions: str) -> type[Signature]:
        """A new signature with the same fields and ``instructions``."""
        if not isinstance(instructions, str):
            raise SignatureError(
                f"instructions must be a string, got {type(instructions).__name__}"
            )
        return cls._derive(cls.fields, instructions)

    @classmethod
    def append_instructions(cls, instructions: str) -> type[Signature]:
        """A new signature whose instructions are these plus ``instructions`` after a blank line."""
        if not isinstance(instructions, str):
            raise SignatureError(
                f"instructions must be a string, got {type(instructions).__name__}"
            )
        return cls._derive(cls.fields, f"{cls.instructions}\n\n{instructions}")

    @classmethod
    def with_updated_fields(
        cls, name: str, type_: Any = None, *, desc: str | None = None, prefix: str | None = None
    ) -> type[Signature]:
        """A new signature where field ``name`` has a new type, desc and/or prefix."""
        if name not in cls.fields:
            raise SignatureError(f"signature {cls.signature!r} has no field {name!r}")
        current = cls.fields[name]
        changes: dict[str, Any] = {}
        if desc is not None:
            changes["desc"] = desc
        if prefix is not None:
            changes["prefix"] = prefix
        for label, value in changes.items():
            if not isinstance(value, str):
                raise SignatureError(f"{label}= must be a string, got {type(value).__name__}")
        updated = FieldInfo(
            kind=current.kind,
            desc=changes.get("desc", current.desc),
            prefix=changes.get("prefix", current.prefix),
            annotation=type_ if type_ is not None else current.annotation,
        )
        fields = {k: (updated if k == name else f) for k, f in cls._dspex_fields.items()}
        return cls._derive(fields, cls.instructions)

    @classmethod
    def insert(cls, index: int, name: str, field: FieldInfo, type_: Any = None) -> type[Signature]:
        """A new signature with ``field`` inserted at ``index`` among the inputs or the outputs.

        Negative indices count from the end (``-1`` appends). The type is ``type_``, else the
        field's own annotation, else ``str``.
        """
        if not isinstance(field, FieldInfo):
            raise SignatureError(
                f"insert {name!r}: expected InputField() or OutputField(), "
                f"got {type(field).__name__}"
            )
        _check_name(name, f"signature {cls.__name__}")
        if name in cls.fields:
            raise SignatureError(f"signature {cls.signature!r} already has a field {name!r}")
        annotation = type_ if type_ is not None else field.annotation
        new_field = FieldInfo(
            kind=field.kind,
            desc=field.desc,
            prefix=field.prefix,
            annotation=annotation if annotation is not None else str,
        )
        inputs = list(cls.input_fields.items())
        outputs = list(cls.output_fields.items())
        section = inputs if field.is_input else outputs
        position = index + len(section) + 1 if index < 0 else index
        if position < 0 or position > len(section):
            raise SignatureError(
                f"insert {name!r}: index {index} is out of range "
                f"for {len(section)} {field.kind} fields"
            )
        section.insert(position, (name, new_field))
        return cls._derive(dict(inputs + outputs), cls.instructions)

    @classmethod
    def prepend(cls, name: str, field: FieldInfo, type_: Any = None) -> type[Signature]:
        """A new signature with ``field`` first among the inputs or the outputs."""
        return cls.insert(0, name, field, type_)

    @classmethod
    def append(cls, name: str, field: FieldInfo, type_: Any = None) -> type[Signature]:
        """A new signature with ``field`` last among the inputs or the outputs."""
        return cls.insert(-1, name, field, type_)

    @classmethod
    def delete(cls, name: str) -> type[Signature]:
        """A new signature without field ``name`` (unchanged if there is none, as in DSPy)."""
        fields = {k: f for k, f in cls._dspex_fields.items() if k != name}
        return cls._derive(fields, cls.instructions)

    @classmethod
    def equals(cls, other: Any) -> bool:
        """Whether ``other`` is a signature with equal instructions and fields."""
        return isinstance(other, SignatureMeta) and cls._dspex_key == other._dspex_key

    @classmethod
    def dump_state(cls) -> dict[str, Any]:
        """DSPy's saved form: instructions and, per field in order, its prefix and description."""
        return {
            "instructions": cls.instructions,
            "fields": [{"prefix": f.prefix, "description": f.desc} for f in cls.fields.values()],
        }

    @classmethod
    def load_state(cls, state: Mapping[str, Any]) -> type[Signature]:
        """A new signature with the instructions and field texts of ``dump_state()`` output.

        Raises :class:`SignatureError` when the state does not match this signature's fields.
        """
        if not isinstance(state, Mapping):
            raise SignatureError(f"signature state must be a mapping, got {type(state).__name__}")
        instructions = state.get("instructions")
        saved = state.get("fields")
        if not isinstance(instructions, str) or not isinstance(saved, list):
            raise SignatureError(
                "signature state needs 'instructions' (a string) and 'fields' (a list)"
            )
        if len(saved) != len(cls.fields):
            raise SignatureError(
                f"signature state has {len(saved)} fields "
                f"but {cls.signature!r} has {len(cls.fields)}"
            )
        updated: dict[str, FieldInfo] = {}
        for (name, current), entry in zip(cls.fields.items(), saved, strict=True):
            if not isinstance(entry, Mapping):
                raise SignatureError(f"signature state for field {name!r} must be a mapping")
            desc, prefix = (
                entry.get("description", current.desc),
                entry.get("prefix", current.prefix),
            )
            if not isinstance(desc, str) or not isinstance(prefix, str):
                raise SignatureError(
                    f"signature state for field {name!r}: "
                    "'description' and 'prefix' must be strings"
                )
            updated[name] = FieldInfo(
                kind=current.kind, desc=desc, prefix=prefix, annotation=current.annotation
            )
        return cls._derive(updated, instructions)


# ---------------------------------------------------------------------------------------------
# String form


def _parse_side(
    text: str, side: str, whole: str, custom_types: Mapping[str, Any] | None
) -> list[tuple[str, Any]]:
    if not text.strip():
        raise SignatureError(f"signature {whole!r}: the {side} side of '->' has no fields")
    try:
        tree = ast.parse(f"def f({text}): pass")
    except SyntaxError:
        raise SignatureError(
            f"signature {whole!r}: cannot read the {side} fields {text.strip()!r} "
            "(expected `name` or `name: type`, separated by commas)"
        ) from None
    func = tree.body[0]
    assert isinstance(func, ast.FunctionDef)
    args = func.args
    if args.posonlyargs or args.vararg or args.kwonlyargs or args.kwarg or args.defaults:
        raise SignatureError(
            f"signature {whole!r}: cannot read the {side} fields {text.strip()!r} "
            "(expected `name` or `name: type`, separated by commas)"
        )
    out: list[tuple[str, Any]] = []
    for arg in args.args:
        _check_name(arg.arg, f"signature {whole!r}")
        if any(arg.arg == seen for seen, _ in out):
            raise SignatureError(f"signature {whole!r}: duplicate field {arg.arg!r} in the {side}s")
        if arg.annotation is None:
            annotation: Any = str
        else:
            try:
                annotation = annotation_from_node(
                    arg.annotation, field=arg.arg, custom_types=custom_types
                )
            except SignatureTypeError as exc:
                raise SignatureTypeError(f"signature {whole!r}: {exc}") from None
        out.append((arg.arg, annotation))
    return out


def _parse_signature_string(
    text: str, custom_types: Mapping[str, Any] | None
) -> dict[str, FieldInfo]:
    arrows = text.count("->")
    if arrows == 0:
        raise SignatureError(f"signature {text!r} has no '->' between inputs and outputs")
    if arrows > 1:
        raise SignatureError(f"signature {text!r} has more than one '->'")
    left, right = text.split("->")
    inputs = _parse_side(left, "input", text, custom_types)
    outputs = _parse_side(right, "output", text, custom_types)
    both = sorted({n for n, _ in inputs} & {n for n, _ in outputs})
    if both:
        raise SignatureError(
            f"signature {text!r}: field(s) {', '.join(both)} are both input and output"
        )
    fields: dict[str, FieldInfo] = {}
    for name, annotation in inputs:
        fields[name] = FieldInfo(kind="input", annotation=annotation)
    for name, annotation in outputs:
        fields[name] = FieldInfo(kind="output", annotation=annotation)
    return fields


def _fields_from_mapping(spec: Mapping[Any, Any]) -> dict[str, FieldInfo]:
    fields: dict[str, FieldInfo] = {}
    for name, value in spec.items():
        _check_name(name, "make_signature")
        if isinstance(value, FieldInfo):
            annotation, field = value.annotation, value
        elif isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], FieldInfo):
            annotation, field = value
        else:
            raise SignatureError(
                f"make_signature: field {name!r} must be InputField()/OutputField() or a "
                f"(type, field) tuple, got {value!r}"
            )
        if annotation is None:
            annotation = str
        fields[name] = FieldInfo(
            kind=field.kind, desc=field.desc, prefix=field.prefix, annotation=annotation
        )
    return fields


def make_signature(
    signature: str | Mapping[str, Any],
    instructions: str | None = None,
    signature_name: str = _DEFAULT_NAME,
    custom_types: Mapping[str, Any] | None = None,
) -> type[Signature]:
    """Build a signature class from a string or a mapping ``name -> (type, field)`` / field.

    ``custom_types`` maps names used in the string to Enum, pydantic model or dataclass
    types, or modules (``{"Person": Person}``, ``{"dx": dx}``; no frame inspection, no
    imports, no eval). Without ``instructions`` DSPy's default is used:
    ``"Given the fields `a`, `b`, produce the fields `c`."``.
    """
    if isinstance(signature, str):
        fields = _parse_signature_string(signature, custom_types)
    elif isinstance(signature, Mapping):
        fields = _fields_from_mapping(signature)
    else:
        raise SignatureError(
            f"a signature must be a string like 'question -> answer' or a mapping of fields, "
            f"got {type(signature).__name__}"
        )
    if instructions is not None and not isinstance(instructions, str):
        raise SignatureError(f"instructions must be a string, got {type(instructions).__name__}")
    if not isinstance(signature_name, str) or not signature_name.isidentifier():
        raise SignatureError(f"signature_name must be an identifier, got {signature_name!r}")
    doc = instructions if instructions is not None else _default_instructions(fields)
    return rebuild_signature(signature_name, signature_name, __name__, fields, doc)


def ensure_signature(
    signature: str | type[Signature], instructions: str | None = None
) -> type[Signature]:
    """A signature class from a string (parsed) or a class (returned as is)."""
    if isinstance(signature, str):
        return make_signature(signature, instructions)
    if isinstance(signature, SignatureMeta) and signature is not Signature:
        if instructions is not None:
            raise SignatureError(
                "instructions= is only for string signatures; use Sig.with_instructions(...)"
            )
        return signature
    raise SignatureError(
        "expected a signature string like 'question -> answer' or a Signature subclass, "
        f"got {signature!r}"
    )
