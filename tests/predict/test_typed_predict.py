"""Pydantic, dataclass and History fields, and per-predictor lm=/adapter=, end to end.

Every call goes over HTTP to the local LM server (scripted with ``fixed_responder``).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

import pydantic
import pytest

import dspex_actors as dx
from dspex_actors.system import ActorSystem
from dspex_actors.testing import LocalLMServer, fixed_responder
from tests.predict.conftest import make_lm

SystemFor = Callable[..., tuple[ActorSystem, LocalLMServer]]


class Address(pydantic.BaseModel):
    street: str
    city: str


class Person(pydantic.BaseModel):
    name: str
    age: int
    address: Address | None = None


@dataclasses.dataclass
class Point:
    x: float
    y: float


class Extract(dx.Signature):
    """Extract the person."""

    text: str = dx.InputField()
    person: Person = dx.OutputField()
    where: Point = dx.OutputField()


class Chat(dx.Signature):
    question: str = dx.InputField()
    history: dx.History = dx.InputField()
    answer: str = dx.OutputField()


def reply(**fields: Any) -> str:
    parts = [
        f"[[ ## {name} ## ]]\n{value if isinstance(value, str) else json.dumps(value)}"
        for name, value in fields.items()
    ]
    return "\n\n".join([*parts, "[[ ## completed ## ]]"])


def test_a_model_output_comes_back_as_that_model_validated(system_for: SystemFor) -> None:
    text = reply(
        person={"name": "Bob", "age": "40", "address": {"street": "1 Main", "city": "Leeds"}},
        where={"x": 1, "y": 2.5},
    )
    _, server = system_for(fixed_responder(text))
    pred = dx.Predict(Extract)(text="Bob, 40, of 1 Main, Leeds")
    assert pred.person == Person(name="Bob", age=40, address=Address(street="1 Main", city="Leeds"))
    assert type(pred.person) is Person
    assert pred.where == Point(x=1.0, y=2.5)
    system = server.stats().requests[0]["messages"][0]["content"]
    assert '"title": "Person"' in system
    assert server.stats().requests_total == 1


def test_a_reply_that_does_not_validate_names_the_field_then_json_fallback(
    system_for: SystemFor,
) -> None:
    bad = reply(person={"name": "Bob", "age": "old"}, where={"x": 0, "y": 0})
    good = json.dumps({"person": {"name": "Bob", "age": 41}, "where": {"x": 0, "y": 1}})
    _, server = system_for(fixed_responder(bad, good))
    pred = dx.Predict(Extract)(text="Bob")
    assert pred.person == Person(name="Bob", age=41)
    stats = server.stats()
    assert stats.requests_total == 2
    assert "response_format" in stats.requests[1]


def test_a_reply_that_never_validates_is_an_adapter_parse_error(system_for: SystemFor) -> None:
    bad = reply(person={"name": "Bob", "age": "old"}, where={"x": 0, "y": 0})
    _, server = system_for(fixed_responder(bad))
    with pytest.raises(dx.AdapterParseError) as info:
        dx.Predict(Extract, adapter=dx.ChatAdapter(use_json_adapter_fallback=False))(text="Bob")
    message = str(info.value)
    assert "field `person`" in message
    assert "age: Input should be a valid integer" in message
    assert info.value.missing_fields == ["person"]
    assert server.stats().requests_total == 1


def test_history_input_expands_into_turns(system_for: SystemFor) -> None:
    _, server = system_for(fixed_responder(reply(answer="Rome")))
    history = dx.History(messages=[{"question": "Capital of France?", "answer": "Paris"}])
    pred = dx.Predict(Chat)(question="And of Italy?", history=history)
    assert pred.answer == "Rome"
    roles = [m["role"] for m in server.stats().requests[0]["messages"]]
    assert roles == ["system", "user", "assistant", "user"]
    final = server.stats().requests[0]["messages"][-1]["content"]
    assert "Capital of France?" not in final


def test_a_history_input_of_the_wrong_shape_is_refused(system_for: SystemFor) -> None:
    _, server = system_for(fixed_responder(reply(answer="x")))
    with pytest.raises(dx.PredictInputError, match="input field `history` is a History"):
        dx.Predict(Chat)(question="q", history="earlier we said hi")
    assert server.stats().requests_total == 0


def test_xml_adapter_end_to_end(system_for: SystemFor) -> None:
    text = '<person><name>Ann</name><age>30</age></person>\n<where>\n{"x": 1, "y": 1}\n</where>'
    _, server = system_for(fixed_responder(text))
    pred = dx.Predict(Extract, adapter=dx.XMLAdapter())(text="Ann is 30")
    assert pred.person == Person(name="Ann", age=30)
    assert pred.where == Point(1.0, 1.0)
    user = server.stats().requests[0]["messages"][-1]["content"]
    assert user.startswith("<text>\nAnn is 30\n</text>")


def test_predict_lm_is_used_for_its_calls(
    system_for: SystemFor, make_lm_server: Callable[..., LocalLMServer]
) -> None:
    _, default_server = system_for(fixed_responder(reply(answer="from default")))
    other = make_lm_server(fixed_responder(reply(answer="from other")))
    qa = dx.Predict("question -> answer", lm=make_lm(other), temperature=0.3)
    assert qa(question="q").answer == "from other"
    cot = dx.ChainOfThought("question -> answer", lm=make_lm(other))
    assert cot.predict.lm is not None
    assert default_server.stats().requests_total == 0
    assert other.stats().requests_total == 1
    assert other.stats().requests[0]["temperature"] == 0.3
    assert dx.Predict("question -> answer")(question="q").answer == "from default"
    assert qa.reset_copy().lm is qa.lm  # an optimizer's reset keeps the constructor's LM
    qa.lm = make_lm(default_server)
    qa.reset()
    assert qa.lm is qa.init_lm


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"lm": "openai/gpt-4o-mini"}, r"lm= takes an LM, not a model name; write lm=dx.LM\("),
        ({"lm": object()}, "lm= takes a dx.LM"),
        ({"adapter": dx.JSONAdapter}, r"pass an instance, adapter=JSONAdapter\(\)"),
        ({"adapter": "json"}, "adapter= takes dx.ChatAdapter()"),
        ({"demos": []}, "set predictor.demos"),
        ({"config": {"n": 2}}, "pass LM parameters as keywords"),
    ],
)
def test_bad_constructor_options_are_refused_at_construction(
    kwargs: dict[str, Any], match: str
) -> None:
    with pytest.raises(dx.ConfigurationError, match=match) as info:
        dx.Predict("question -> answer", **kwargs)
    assert str(info.value).startswith("Predict(")
    with pytest.raises(dx.ConfigurationError, match=match) as info:
        dx.ChainOfThought("question -> answer", **kwargs)
    assert str(info.value).startswith("ChainOfThought(")


def test_demos_holding_models_and_dataclasses_save_as_json(tmp_path: Any) -> None:
    predict = dx.Predict(Extract)
    predict.demos = [
        dx.Example(text="t", person=Person(name="Ann", age=3), where=Point(x=1.0, y=2.0))
    ]
    predict.save(tmp_path / "p.json")
    state = json.loads((tmp_path / "p.json").read_text())
    assert state["demos"] == [
        {
            "text": "t",
            "person": {"name": "Ann", "age": 3, "address": None},
            "where": {"x": 1.0, "y": 2.0},
        }
    ]
    fresh = dx.Predict(Extract).load(tmp_path / "p.json")
    before = dx.ChatAdapter().format(Extract, predict.demos, {"text": "u"})
    assert dx.ChatAdapter().format(Extract, fresh.demos, {"text": "u"}) == before


def test_a_json_adapter_per_predictor_asks_for_json(system_for: SystemFor) -> None:
    reply_json = json.dumps({"person": {"name": "Cy", "age": 9}, "where": {"x": 0, "y": 0}})
    _, server = system_for(fixed_responder(reply_json))
    pred = dx.Predict(Extract, adapter=dx.JSONAdapter())(text="Cy is 9")
    assert pred.person == Person(name="Cy", age=9)
    assert server.stats().requests[0]["response_format"] == {"type": "json_object"}


def test_model_outputs_export_as_json_rows(system_for: SystemFor, tmp_path: Any) -> None:
    text = reply(person={"name": "Bob", "age": 40}, where={"x": 1, "y": 2})
    system_for(fixed_responder(text))
    devset = [dx.Example(text="Bob", age=40).with_inputs("text")]
    result = dx.Evaluate(
        devset=devset, metric=lambda ex, pred, trace=None: pred.person.age == ex.age
    )(dx.Predict(Extract))
    assert float(result) == 100.0
    result.save_as_json(tmp_path / "rows.json")
    rows = json.loads((tmp_path / "rows.json").read_text())
    assert rows[0]["person"] == {"name": "Bob", "age": 40, "address": None}
    assert rows[0]["where"] == {"x": 1.0, "y": 2.0}


def test_a_bad_lm_at_call_time_is_refused_before_any_request(system_for: SystemFor) -> None:
    _, server = system_for(fixed_responder(reply(answer="x")))
    qa = dx.Predict("question -> answer")
    with pytest.raises(dx.ConfigurationError, match="lm= takes an LM, not a model name"):
        qa(question="q", lm="openai/gpt-4o-mini")
    qa.lm = "openai/gpt-4o-mini"
    with pytest.raises(dx.ConfigurationError, match="lm= takes an LM"):
        qa(question="q")
    assert server.stats().requests_total == 0
