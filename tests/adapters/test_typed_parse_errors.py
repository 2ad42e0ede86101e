"""Replies that do not fit a model, dataclass or XML layout: typed errors naming the field."""

from __future__ import annotations

import pydantic
import pytest
from _golden_type_cases import Person, Point

import dspex_actors as dx
from dspex_actors.adapters import ChatAdapter, XMLAdapter


class Extract(dx.Signature):
    text: str = dx.InputField()
    person: Person = dx.OutputField()
    where: Point = dx.OutputField()
    extra: dict[str, int] = dx.OutputField()


def test_validation_errors_are_listed_by_location() -> None:
    reply = (
        '[[ ## person ## ]]\n{"name": "Bob", "age": "old", "address": {"street": 1}}\n\n'
        '[[ ## where ## ]]\n{"x": 1, "y": 2}\n\n[[ ## extra ## ]]\n{}'
    )
    with pytest.raises(dx.AdapterParseError) as info:
        ChatAdapter().parse(Extract, reply)
    message = str(info.value)
    assert "field `person`" in message
    assert "age: Input should be a valid integer" in message
    assert "address.street: Input should be a valid string" in message
    assert "address.city: Field required" in message
    assert info.value.missing_fields == ["person"]
    assert set(info.value.parsed) == {"where", "extra"}


def test_a_dataclass_reply_that_is_not_an_object_is_refused() -> None:
    reply = (
        '[[ ## person ## ]]\n{"name": "B", "age": 1}\n\n'
        "[[ ## where ## ]]\nnorth\n\n[[ ## extra ## ]]\n{}"
    )
    with pytest.raises(dx.AdapterParseError, match="field `where`"):
        ChatAdapter().parse(Extract, reply)


@pytest.mark.parametrize("adapter", [ChatAdapter(), XMLAdapter()], ids=["chat", "xml"])
def test_replies_nested_thousands_deep_are_parse_errors(adapter: ChatAdapter) -> None:
    if isinstance(adapter, XMLAdapter):
        deep = "<person>" + "<a>" * 5000 + "</a>" * 5000 + "</person>"
    else:
        deep = "[[ ## person ## ]]\n" + '{"a":' * 5000 + "1" + "}" * 5000
    with pytest.raises(dx.AdapterParseError, match="field `person`") as info:
        adapter.parse(Extract, deep)
    if isinstance(adapter, XMLAdapter):
        assert "nested too deeply" in str(info.value)


def test_xml_that_is_not_well_formed_says_so() -> None:
    with pytest.raises(dx.AdapterParseError, match="not well-formed XML"):
        XMLAdapter().parse(Extract, "<person><name>Bob</person>")


def test_xml_entities_are_not_expanded_from_a_reply() -> None:
    bomb = '<!DOCTYPE x [<!ENTITY a "aaaaaaaa">]><person>&a;</person>'
    with pytest.raises(dx.AdapterParseError, match="not well-formed XML"):
        XMLAdapter().parse(Extract, bomb)


def test_history_is_a_frozen_pydantic_model_like_dspy() -> None:
    history = dx.History(messages=[{"question": "q", "answer": "a"}])
    with pytest.raises(pydantic.ValidationError):
        history.messages = []  # type: ignore[misc]
    with pytest.raises(pydantic.ValidationError):
        dx.History(messages=[], extra=1)  # type: ignore[call-arg]
    with pytest.raises(pydantic.ValidationError):
        dx.History(messages="not a list")  # type: ignore[arg-type]


def test_unsupported_types_are_still_refused_by_name() -> None:
    class Plain:
        pass

    with pytest.raises(dx.SignatureTypeError, match="field `x`: unsupported type 'Plain'"):
        dx.make_signature({"q": (str, dx.InputField()), "x": (Plain, dx.OutputField())})


def test_history_is_a_type_name_in_string_signatures() -> None:
    signature = dx.Signature("question, history: History -> answer")
    assert signature.input_fields["history"].annotation is dx.History
    person = dx.Signature("text -> people: list[Person]", custom_types={"Person": Person})
    assert person.output_fields["people"].annotation == list[Person]
    dotted = dx.make_signature("text, h: dx.History -> a", custom_types={"dx": dx})
    assert dotted.input_fields["h"].annotation is dx.History
