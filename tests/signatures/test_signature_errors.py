"""Every bad signature raises a typed error that names the offending text."""

from __future__ import annotations

import pytest

from dspex_actors import SignatureError, SignatureTypeError
from dspex_actors.signatures import (
    RESERVED_FIELD_NAMES,
    InputField,
    OutputField,
    Signature,
    ensure_signature,
    make_signature,
)


@pytest.mark.parametrize(
    ("text", "error", "fragment"),
    [
        ("question answer", SignatureError, "no '->'"),
        ("", SignatureError, "no '->'"),
        ("a -> b -> c", SignatureError, "more than one '->'"),
        (" -> answer", SignatureError, "input side of '->' has no fields"),
        ("question ->   ", SignatureError, "output side of '->' has no fields"),
        ("a, a -> b", SignatureError, "duplicate field 'a'"),
        ("a -> b, b", SignatureError, "duplicate field 'b'"),
        ("question -> question", SignatureError, "question are both input and output"),
        ("a, b -> b, a", SignatureError, "a, b are both input and output"),
        ("a: Foo -> b", SignatureTypeError, "'Foo'"),
        ("a -> b: tuple[int]", SignatureTypeError, "'tuple[int]'"),
        ("a -> b: list[str, int]", SignatureTypeError, "list[...] takes one type"),
        ("a -> b: dict[str]", SignatureTypeError, "dict[...] takes two types"),
        ("a -> b: Optional[int, str]", SignatureTypeError, "Optional[...] takes one type"),
        ("a -> b: Literal[int]", SignatureTypeError, "Literal[...] takes constants only"),
        ("a: os.system -> b", SignatureTypeError, "'os.system'"),
        ("a: __import__('os').system('x') -> b", SignatureTypeError, "__import__"),
        ("a: list[str -> b", SignatureError, "cannot read the input fields"),
        ("a b -> c", SignatureError, "cannot read the input fields 'a b'"),
        ("a=1 -> b", SignatureError, "cannot read the input fields 'a=1'"),
        ("*a -> b", SignatureError, "cannot read the input fields"),
        ("class -> b", SignatureError, "cannot read the input fields 'class'"),
        ("_private -> b", SignatureError, "'_private' is reserved"),
        ("a -> completed", SignatureError, "'completed' is reserved"),
        ("instructions -> b", SignatureError, "'instructions' is reserved"),
        ("demos -> b", SignatureError, "'demos' is reserved"),
        ("a -> fields", SignatureError, "'fields' is reserved"),
    ],
)
def test_bad_signature_strings(text: str, error: type[Exception], fragment: str) -> None:
    with pytest.raises(error) as info:
        make_signature(text)
    assert fragment in str(info.value)
    assert isinstance(info.value, ValueError)
    if error is SignatureTypeError:
        assert isinstance(info.value, TypeError)
        assert repr(text) in str(info.value)


def test_every_reserved_name_is_rejected_in_both_forms() -> None:
    for name in sorted(RESERVED_FIELD_NAMES):
        with pytest.raises(SignatureError, match=repr(name)):
            make_signature(f"{name} -> out")
        with pytest.raises(SignatureError, match=repr(name)):
            type(Signature)("Bad", (Signature,), {name: InputField(), "out": OutputField()})


def test_class_form_with_unsupported_annotation_names_the_field_and_type() -> None:
    with pytest.raises(SignatureTypeError, match=r"signature Bad: field `when`.*'complex'"):

        class Bad(Signature):
            when: complex = InputField()
            out: str = OutputField()


def test_class_form_with_unknown_postponed_type_names_it() -> None:
    with pytest.raises(SignatureTypeError, match="'Undefined'"):

        class Bad(Signature):
            x: Undefined = InputField()  # type: ignore[name-defined]  # noqa: F821
            out: str = OutputField()


def test_class_form_annotation_without_field_is_an_error() -> None:
    with pytest.raises(SignatureError, match="`note` is annotated but not declared"):

        class Bad(Signature):
            note: str
            out: str = OutputField()


def test_class_form_private_field_name_is_reserved() -> None:
    with pytest.raises(SignatureError, match="'_hidden' is reserved"):

        class Bad(Signature):
            _hidden: str = InputField()
            out: str = OutputField()


def test_bad_arguments_to_builders_and_derivations() -> None:
    sig = make_signature("q -> a")
    with pytest.raises(SignatureError, match="got int"):
        make_signature(42)  # type: ignore[arg-type]
    with pytest.raises(SignatureError, match="instructions must be a string"):
        make_signature("q -> a", instructions=3)  # type: ignore[arg-type]
    with pytest.raises(SignatureError, match="only for string signatures"):
        ensure_signature(sig, instructions="x")
    with pytest.raises(SignatureError, match="got None"):
        ensure_signature(None)  # type: ignore[arg-type]
    with pytest.raises(SignatureError, match="already has a field 'a'"):
        sig.append("a", OutputField())
    with pytest.raises(SignatureError, match="out of range"):
        sig.insert(5, "b", OutputField())
    with pytest.raises(SignatureError, match="expected InputField"):
        sig.append("b", "not a field")  # type: ignore[arg-type]
    with pytest.raises(SignatureError, match="'1bad' is not a valid field name"):
        sig.append("1bad", OutputField())
    with pytest.raises(SignatureError, match="has no field 'nope'"):
        sig.with_updated_fields("nope", desc="x")
    with pytest.raises(SignatureTypeError, match="set"):
        sig.with_updated_fields("a", set)
    with pytest.raises(SignatureError, match="must be InputField"):
        make_signature({"a": str})
    with pytest.raises(SignatureError, match="desc= must be a string"):
        InputField(desc=3)  # type: ignore[arg-type]
    with pytest.raises(SignatureError, match="not instantiated"):
        sig()
