"""Signature class and string forms, derivation, equality and immutability."""

from __future__ import annotations

import enum
from typing import Literal, Optional

import pytest

import dspex_actors
from dspex_actors.signatures import (
    FieldInfo,
    InputField,
    OutputField,
    Signature,
    ensure_signature,
    infer_prefix,
    make_signature,
)


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class QA(Signature):
    """Answer questions with short factoid answers."""

    question: str = InputField()
    answer: str = OutputField(desc="often between 1 and 5 words")


def test_class_form_fields_instructions_and_defaults() -> None:
    assert QA.instructions == "Answer questions with short factoid answers."
    assert QA.signature == "question -> answer"
    assert list(QA.input_fields) == ["question"]
    assert list(QA.output_fields) == ["answer"]
    question, answer = QA.fields["question"], QA.fields["answer"]
    assert (question.kind, question.annotation, question.desc, question.prefix) == (
        "input",
        str,
        "${question}",
        "Question:",
    )
    assert (answer.kind, answer.desc, answer.prefix) == (
        "output",
        "often between 1 and 5 words",
        "Answer:",
    )
    assert question.json_schema_extra == {
        "__dspy_field_type": "input",
        "desc": "${question}",
        "prefix": "Question:",
    }


def test_fields_lists_inputs_before_outputs_whatever_the_declaration_order() -> None:
    class Mixed(Signature):
        out1: int = OutputField()
        in1: str = InputField()
        out2: str = OutputField()
        in2: list[str] = InputField()

    assert list(Mixed.fields) == ["in1", "in2", "out1", "out2"]
    assert Mixed.signature == "in1, in2 -> out1, out2"
    assert Mixed.instructions == "Given the fields `in1`, `in2`, produce the fields `out1`, `out2`."


def test_postponed_annotations_resolve_supported_types_and_module_enums() -> None:
    class Typed(Signature):
        """Typed."""

        items: list[str] = InputField()
        color: Color = OutputField()
        maybe: Optional[int] = OutputField()  # noqa: UP045
        choice: Literal["a", "b"] = OutputField()
        either: int | None = OutputField()

    ann = {k: f.annotation for k, f in Typed.fields.items()}
    assert ann["items"] == list[str]
    assert ann["color"] is Color
    assert ann["maybe"] == Optional[int]  # noqa: UP045
    assert ann["choice"] == Literal["a", "b"]
    assert ann["either"] == Optional[int]  # noqa: UP045


def test_unannotated_field_defaults_to_str_and_prefix_is_inferred() -> None:
    namespace = {"__doc__": "Do it.", "camelCaseText": InputField(), "answer": OutputField()}
    sig = type(Signature)("Loose", (Signature,), namespace)
    assert sig.fields["camelCaseText"].annotation is str
    assert sig.fields["camelCaseText"].prefix == "Camel Case Text:"
    assert infer_prefix("HTMLParser") == "HTML Parser"
    assert infer_prefix("text2number") == "Text 2 Number"


def test_string_form_types_and_default_instructions() -> None:
    sig = ensure_signature("context: list[str], question -> answer: int")
    assert sig.signature == "context, question -> answer"
    assert (
        sig.instructions == "Given the fields `context`, `question`, produce the fields `answer`."
    )
    assert sig.fields["context"].annotation == list[str]
    assert sig.fields["question"].annotation is str
    assert sig.fields["answer"].annotation is int
    assert sig.__name__ == "StringSignature"


def test_string_form_with_instructions_and_all_type_spellings() -> None:
    sig = make_signature(
        "a: Optional[int], b: int | None, c: Literal['x', 'y', -1], d: dict[str, list[float]], "
        "e: bool, f: List[str], g: Union[int, str], h: Any, i: Color -> out",
        instructions="  Do the thing.\n  Carefully.",
        custom_types={"Color": Color},
    )
    ann = {k: f.annotation for k, f in sig.fields.items()}
    assert ann["a"] == ann["b"] == Optional[int]  # noqa: UP045
    assert ann["c"] == Literal["x", "y", -1]
    assert ann["d"] == dict[str, list[float]]
    assert ann["f"] == list[str]
    assert ann["i"] is Color
    assert sig.instructions == "Do the thing.\nCarefully."


def test_signature_call_on_base_builds_a_class_like_dspy() -> None:
    sig = Signature("question -> answer", "Be brief.")
    assert sig.instructions == "Be brief."
    assert sig.equals(make_signature("question -> answer", "Be brief."))


def test_ensure_signature_returns_classes_as_is() -> None:
    assert ensure_signature(QA) is QA


def test_equality_and_hash_compare_instructions_and_fields() -> None:
    a = make_signature("question -> answer")
    b = make_signature("question -> answer")
    assert a is not b
    assert a == b
    assert a.equals(b)
    assert hash(a) == hash(b)
    assert len({a, b}) == 1
    assert a != make_signature("question -> answer: int")
    assert a != a.with_instructions("Other.")
    assert a != a.with_updated_fields("answer", desc="the answer")
    assert a != a.with_updated_fields("answer", prefix="Final Answer:")
    assert a != make_signature("q -> answer")
    assert not a.equals("question -> answer")
    assert a != "question -> answer"


def test_derivations_return_new_classes_and_leave_the_original_unchanged() -> None:
    before = (QA.instructions, dict(QA.fields))
    with_instr = QA.with_instructions("New instructions.")
    appended = QA.append("confidence", OutputField(desc="0..1"), type_=float)
    prepended = QA.prepend("reasoning", OutputField(desc="${reasoning}"))
    added_input = QA.prepend("context", InputField())
    deleted = appended.delete("answer")
    updated = QA.with_updated_fields("answer", int, desc="a number")
    more = QA.append_instructions("Be brief.")
    assert (QA.instructions, dict(QA.fields)) == before
    assert with_instr.instructions == "New instructions."
    assert dict(with_instr.fields) == dict(QA.fields)
    assert appended.signature == "question -> answer, confidence"
    assert appended.fields["confidence"].annotation is float
    assert appended.fields["confidence"].prefix == "Confidence:"
    assert prepended.signature == "question -> reasoning, answer"
    assert prepended.fields["reasoning"].annotation is str
    assert added_input.signature == "context, question -> answer"
    assert deleted.signature == "question -> confidence"
    assert QA.delete("nonexistent") == QA
    assert updated.fields["answer"].annotation is int
    assert updated.fields["answer"].desc == "a number"
    assert updated.fields["answer"].prefix == "Answer:"
    assert more.instructions == "Answer questions with short factoid answers.\n\nBe brief."
    assert QA.insert(0, "reasoning", OutputField()) == prepended.with_updated_fields(
        "reasoning", desc="${reasoning}"
    )


def test_signatures_are_immutable() -> None:
    with pytest.raises(dspex_actors.SignatureError, match="immutable"):
        QA.instructions = "changed"  # type: ignore[misc]
    with pytest.raises(dspex_actors.SignatureError, match="immutable"):
        QA.answer = OutputField()
    with pytest.raises(dspex_actors.SignatureError, match="immutable"):
        del QA.with_instructions
    with pytest.raises(TypeError):
        QA.fields["answer"] = OutputField()  # type: ignore[index]
    field = QA.fields["answer"]
    with pytest.raises(AttributeError):
        field.desc = "x"  # type: ignore[misc]
    assert QA.instructions == "Answer questions with short factoid answers."


def test_subclass_inherits_fields_and_instructions() -> None:
    class QAWithContext(QA):
        context: list[str] = InputField()

    assert QAWithContext.signature == "question, context -> answer"
    assert QAWithContext.instructions == QA.instructions
    assert QA.signature == "question -> answer"


def test_class_without_docstring_gets_default_instructions() -> None:
    class NoDoc(Signature):
        text: str = InputField()
        label: str = OutputField()

    assert NoDoc.instructions == "Given the fields `text`, produce the fields `label`."


def test_dump_and_load_state_round_trip() -> None:
    tuned = QA.with_instructions("Tuned.").with_updated_fields("answer", desc="d", prefix="A:")
    state = tuned.dump_state()
    assert state == {
        "instructions": "Tuned.",
        "fields": [
            {"prefix": "Question:", "description": "${question}"},
            {"prefix": "A:", "description": "d"},
        ],
    }
    loaded = QA.load_state(state)
    assert loaded == tuned
    assert tuned != QA


def test_load_state_rejects_a_mismatched_state() -> None:
    state = QA.dump_state()
    state["fields"].append({"prefix": "X:", "description": "x"})
    with pytest.raises(dspex_actors.SignatureError, match="3 fields"):
        QA.load_state(state)
    with pytest.raises(dspex_actors.SignatureError, match="instructions"):
        QA.load_state({"fields": []})


def test_field_info_values() -> None:
    field = OutputField(desc="d", prefix="P:")
    assert isinstance(field, FieldInfo)
    assert field.is_output
    assert not field.is_input
    assert InputField(description="alias").desc == "alias"
    assert field == OutputField(desc="d", prefix="P:")


def test_repr_names_the_fields() -> None:
    text = repr(QA)
    assert text.startswith("QA(question -> answer")
    assert "answer: str = OutputField(desc='often between 1 and 5 words'" in text
