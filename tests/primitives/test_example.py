"""Example: DSPy's data container semantics."""

from __future__ import annotations

import copy
import pickle
from collections.abc import Mapping

import pytest

from dspex_actors.primitives import Example


def test_fields_by_attribute_and_item() -> None:
    ex = Example(question="What is 2 + 3?", answer="5")
    assert ex.question == "What is 2 + 3?"
    assert ex["answer"] == "5"
    ex.answer = "6"
    ex["extra"] = 1
    assert ex.answer == "6"
    assert ex.extra == 1
    with pytest.raises(AttributeError, match="missing"):
        _ = ex.missing
    with pytest.raises(KeyError):
        _ = ex["missing"]


def test_built_from_a_dict_or_an_example_with_overrides() -> None:
    base = Example({"q": "a", "a": "b"}).with_inputs("q")
    copied = Example(base, a="c")
    assert copied.toDict() == {"q": "a", "a": "c"}
    assert copied.inputs().toDict() == {"q": "a"}
    assert Example({"x": 1}, y=2).toDict() == {"x": 1, "y": 2}
    with pytest.raises(TypeError, match="list"):
        Example([("x", 1)])  # type: ignore[arg-type]


def test_mapping_protocol() -> None:
    ex = Example(name="Alice", age=30, dspy_uuid="u1")
    assert ex.keys() == ["name", "age"]
    assert ex.keys(include_dspy=True) == ["name", "age", "dspy_uuid"]
    assert ex.values() == ["Alice", 30]
    assert ex.items() == [("name", "Alice"), ("age", 30)]
    assert ex.get("city", "Unknown") == "Unknown"
    assert "name" in ex
    assert "city" not in ex
    assert len(ex) == 2
    assert list(ex) == ["name", "age", "dspy_uuid"]
    assert isinstance(ex, Mapping)
    assert dict(ex) == {"name": "Alice", "age": 30}
    assert "dspy_uuid" not in repr(ex)


def test_with_inputs_returns_a_copy_and_splits_inputs_and_labels() -> None:
    ex = Example(question="q", answer="a", note="n")
    marked = ex.with_inputs("question")
    assert ex.input_keys is None
    assert marked.input_keys == frozenset({"question"})
    assert marked.inputs().toDict() == {"question": "q"}
    assert marked.labels().toDict() == {"answer": "a", "note": "n"}
    assert isinstance(marked.inputs(), Example)


def test_inputs_without_with_inputs_names_the_example() -> None:
    ex = Example(question="What is 9 * 9?", answer="81")
    with pytest.raises(ValueError, match=r"What is 9 \* 9\?.*with_inputs"):
        ex.inputs()
    with pytest.raises(ValueError, match="with_inputs"):
        ex.labels()


def test_copy_and_without() -> None:
    ex = Example(q="a", a="b", source="web").with_inputs("q")
    changed = ex.copy(a="z")
    assert changed.a == "z"
    assert ex.a == "b"
    assert changed.input_keys == frozenset({"q"})
    trimmed = ex.without("source")
    assert trimmed.keys() == ["q", "a"]
    assert ex.keys() == ["q", "a", "source"]
    with pytest.raises(KeyError):
        ex.without("nope")


def test_equality_and_hash() -> None:
    a = Example(q="x", ctx=["p1", "p2"], meta={"k": [1]})
    b = Example(q="x", ctx=["p1", "p2"], meta={"k": [1]}).with_inputs("q")
    c = Example(q="y")
    assert a == b
    assert a != c
    assert a != {"q": "x"}
    assert hash(a) == hash(b)
    assert len({a, b, c}) == 2


def test_to_dict_is_recursive_and_keeps_internal_keys() -> None:
    inner = Example(x=1)
    ex = Example(q="a", nested=inner, items=[inner, 2], augmented=True, dspy_split="train")
    expected = {
        "q": "a",
        "nested": {"x": 1},
        "items": [{"x": 1}, 2],
        "augmented": True,
        "dspy_split": "train",
    }
    assert ex.toDict() == expected
    assert ex.to_dict() == expected


def test_repr_shows_fields_and_input_keys() -> None:
    ex = Example(q="a", a="b").with_inputs("q")
    assert repr(ex) == "Example({'q': 'a', 'a': 'b'}) (input_keys={'q'})"
    assert str(Example(q=1)) == "Example({'q': 1}) (input_keys=None)"


def test_deepcopy_and_pickle_keep_fields_and_inputs() -> None:
    ex = Example(q="a", ctx=["x"]).with_inputs("q")
    for clone in (copy.deepcopy(ex), pickle.loads(pickle.dumps(ex))):
        assert clone == ex
        assert clone.input_keys == frozenset({"q"})
    deep = copy.deepcopy(ex)
    deep.ctx.append("y")
    assert ex.ctx == ["x"]
