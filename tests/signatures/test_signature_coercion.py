"""parse_value / format_value: reading LM text as field types and writing values into prompts."""

from __future__ import annotations

import dataclasses
import datetime
import enum
from typing import Any, Literal, Optional, Union

import pytest

from dspex_actors import CoercionError
from dspex_actors.signatures import format_value, parse_value


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Level(enum.Enum):
    ONE = 1
    TWO = 2


@pytest.mark.parametrize(
    ("text", "annotation", "expected"),
    [
        ("  kept as is \n", str, "  kept as is \n"),
        (5, str, "5"),
        ("5", int, 5),
        (" 5 ", int, 5),
        ("5.0", int, 5),
        ("-3", int, -3),
        ("true", int, 1),
        ("3.5", float, 3.5),
        ("4", float, 4.0),
        ("true", bool, True),
        ("True", bool, True),
        ("false", bool, False),
        ("False", bool, False),
        ("yes", bool, True),
        ("0", bool, False),
        ('["a", "b"]', list[str], ["a", "b"]),
        ("['a', 'b']", list[str], ["a", "b"]),
        ("```json\n[1, 2]\n```", list[int], [1, 2]),
        ("```\n[1, 2]\n```", list[int], [1, 2]),
        ("[1, 2", list[int], [1, 2]),
        ("[1, 2,]", list[int], [1, 2]),
        ("Here you go: [3, 4]", list[int], [3, 4]),
        ("[]", list[str], []),
        ("[1, 'a']", list, [1, "a"]),
        ('{"a": 1, "b": 2}', dict[str, int], {"a": 1, "b": 2}),
        ("{'a': 1}", dict[str, int], {"a": 1}),
        ('{"a": 1,}', dict[str, int], {"a": 1}),
        ('{"1": "x"}', dict[int, str], {1: "x"}),
        ('{"a": [1, {"b": null}]}', dict[str, Any], {"a": [1, {"b": None}]}),
        ("neg", Literal["pos", "neg"], "neg"),
        ("'pos'", Literal["pos", "neg"], "pos"),
        ('"pos"', Literal["pos", "neg"], "pos"),
        ("Literal[pos]", Literal["pos", "neg"], "pos"),
        (" neg ", Literal["pos", "neg"], "neg"),
        ("2", Literal[1, 2], 2),
        ("red", Color, Color.RED),
        ("RED", Color, Color.RED),
        ("Color.GREEN", Color, Color.GREEN),
        ("'green'", Color, Color.GREEN),
        ("2", Level, Level.TWO),
        ("TWO", Level, Level.TWO),
        ('["red", "GREEN"]', list[Color], [Color.RED, Color.GREEN]),
        ("None", Optional[int], None),  # noqa: UP045
        ("null", Optional[int], None),  # noqa: UP045
        ("7", Optional[int], 7),  # noqa: UP045
        ("null", int | None, None),
        ("None", Optional[str], "None"),  # noqa: UP045 -- DSPy keeps text for str | None
        ("red", Optional[Color], Color.RED),  # noqa: UP045
        ("1", Union[str, int], 1),  # noqa: UP007 -- decoded JSON 1 is an int: exact match wins
        ('"1"', Union[int, str], "1"),  # noqa: UP007
        ("[null, 1]", list[Optional[int]], [None, 1]),  # noqa: UP045
        ("anything", Any, "anything"),
        ("[1]", Any, [1]),
        (7, int, 7),
        (["a"], list[str], ["a"]),
        ({"k": "2"}, dict[str, int], {"k": 2}),
        (None, Optional[int], None),  # noqa: UP045
    ],
)
def test_parse_value_coerces(text: Any, annotation: Any, expected: Any) -> None:
    result = parse_value(text, annotation)
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(
    ("text", "annotation", "fragment"),
    [
        ("five", int, "as int"),
        ("5 apples", int, "as int"),
        ("5.5", int, "fractional"),
        ("", int, "as int"),
        ("abc", float, "as float"),
        ("maybe", bool, "True or False"),
        ("a, b", list[str], "expected a list"),
        ("['a']", list[int], "as list[int]"),
        ('{"a": "x"}', dict[str, int], "as dict[str, int]"),
        ("[1]", dict[str, int], "expected a dict"),
        ("maybe", Literal["pos", "neg"], "one of: pos; neg"),
        ("3", Literal[1, 2], "one of: 1; 2"),
        ("blue", Color, "one of: red; green"),
        ("", Optional[int], "Union[int, NoneType]"),  # noqa: UP045
        ("x", Optional[Color], "Union[Color, NoneType]"),  # noqa: UP045
    ],
)
def test_parse_value_rejects_uncoercible_text(text: str, annotation: Any, fragment: str) -> None:
    with pytest.raises(CoercionError) as info:
        parse_value(text, annotation)
    assert isinstance(info.value, ValueError)
    assert fragment in str(info.value)
    assert info.value.annotation == annotation
    assert info.value.value == text


def test_parse_value_does_not_evaluate_code() -> None:
    with pytest.raises(CoercionError):
        parse_value("__import__('os').getcwd()", list[str])


@dataclasses.dataclass
class Point:
    x: int
    y: int


@pytest.mark.parametrize(
    ("value", "annotation", "expected"),
    [
        ("plain text", str, "plain text"),
        (["only"], str, "«only»"),
        (["a", "b"], str, "[1] «a»\n[2] «b»"),
        ([], str, "N/A"),
        (["multi\nline", "x«y"], str, "[1] «««\n    multi\n    line\n»»»\n[2] «««\n    x«y\n»»»"),
        ([1, Color.RED], str, "[1] «1»\n[2] «red»"),
        (["a", "b"], list[str], '["a", "b"]'),
        ({"k": "ü", "n": None}, dict[str, Any], '{"k": "ü", "n": null}'),
        ((1, 2), Any, "[1, 2]"),
        (Color.GREEN, Color, "green"),
        ([Color.RED], list[Color], '["red"]'),
        (None, str, "None"),
        (True, bool, "True"),
        (3, int, "3"),
        (2.5, float, "2.5"),
        (datetime.date(2024, 1, 2), str, "2024-01-02"),
        (Point(1, 2), Any, '{"x": 1, "y": 2}'),
        ({1: "a"}, dict[int, str], '{"1": "a"}'),
    ],
)
def test_format_value(value: Any, annotation: Any, expected: str) -> None:
    assert format_value(value, annotation) == expected
