"""Prompt cases with pydantic, dataclass and History field types, and the XML adapter.

Shared by the golden tests and ``golden/record_with_dspy.py`` (which runs them on DSPy 3.4.1).
``build_type_cases(lib)`` takes ``dspex_actors`` or ``dspy`` (both have ``Signature``,
``InputField``, ``OutputField`` and ``History``) and returns the same tuples as
``_golden_cases.build_cases``. ``MODEL_PARSE_CASES`` are replies parsed into these types;
``plain`` turns parse results into JSON data for the goldens.
"""

import dataclasses
import enum
from typing import Any, Optional, Union

import pydantic


class Address(pydantic.BaseModel):
    street: str
    city: str = pydantic.Field(description="the city name")
    zip_code: Optional[str] = None  # noqa: UP045 -- spelled as users do


class Person(pydantic.BaseModel):
    """A person found in the text."""

    name: str
    age: int
    emails: list[str] = []
    address: Optional[Address] = None  # noqa: UP045


@dataclasses.dataclass
class Point:
    x: float
    y: float
    label: str = "origin"


@dataclasses.dataclass
class Route:
    """A route between points."""

    points: list[Point]
    closed: bool = False


def plain(value: Any) -> Any:
    """A parsed value as plain JSON data, tagged with its Enum or model class name."""
    if isinstance(value, enum.Enum):
        return {"enum": type(value).__name__, "value": value.value}
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, pydantic.BaseModel):
        return {"model": type(value).__name__, "value": value.model_dump(mode="json")}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {"model": type(value).__name__, "value": plain(dataclasses.asdict(value))}
    return value


def build_type_cases(lib: Any) -> list[tuple[str, str, Any, list[dict[str, Any]], dict[str, Any]]]:
    """Every typed golden case, built with ``lib``'s signature API."""

    class Extract(lib.Signature):  # type: ignore[misc,name-defined]
        """Extract the person described in the text."""

        text: str = lib.InputField()
        person: Person = lib.OutputField(desc="the person")

    class Plot(lib.Signature):  # type: ignore[misc,name-defined]
        description: str = lib.InputField()
        route: Route = lib.OutputField()
        start: Point = lib.OutputField()

    class Roster(lib.Signature):  # type: ignore[misc,name-defined]
        """Pick the people named in the snippets."""

        snippets: list[str] = lib.InputField()
        people: list[Person] = lib.OutputField()
        lead: Optional[Person] = lib.OutputField()  # noqa: UP045
        by_city: dict[str, Address] = lib.OutputField()
        either: Union[Person, str] = lib.OutputField()  # noqa: UP007

    class Chat(lib.Signature):  # type: ignore[misc,name-defined]
        """Answer the question, keeping the conversation in mind."""

        question: str = lib.InputField()
        history: lib.History = lib.InputField()  # type: ignore[name-defined]
        answer: str = lib.OutputField()

    class Review(lib.Signature):  # type: ignore[misc,name-defined]
        """Decide whether to hire the candidate."""

        candidate: Person = lib.InputField(desc="who applied")
        stops: list[Point] = lib.InputField()
        backup: Optional[Person] = lib.InputField()  # noqa: UP045
        hire: bool = lib.OutputField()

    class QA(lib.Signature):  # type: ignore[misc,name-defined]
        """Answer questions with short factoid answers."""

        question: str = lib.InputField()
        answer: str = lib.OutputField(desc="often between 1 and 5 words")

    class Tagged(lib.Signature):  # type: ignore[misc,name-defined]
        text: str = lib.InputField()
        tags: list[str] = lib.OutputField()
        counts: dict[str, int] = lib.OutputField()
        score: float = lib.OutputField()
        note: str = lib.OutputField()

    ada = Person(
        name="Ada",
        age=36,
        emails=["ada@example.com"],
        address=Address(street="1 Loop Rd", city="London"),
    )
    history = lib.History(
        messages=[
            {"question": "What is the capital of France?", "answer": "Paris"},
            {"question": "And of Germany?", "answer": "Berlin"},
            {"question": "Only a question"},
            {"answer": "Only an answer"},
        ]
    )
    extract_demo = {"text": "Ada, 36, lives at 1 Loop Rd, London.", "person": ada}
    roster_demo = {
        "snippets": ["Ada from London", "Bob"],
        "people": [ada, Person(name="Bob", age=40)],
        "lead": None,
        "by_city": {"London": Address(street="1 Loop Rd", city="London")},
        "either": "nobody",
    }
    qa_demos = [
        {"question": "What is the capital of France?", "answer": "Paris"},
        {"question": "Fish & <chips>?", "answer": "a <dish> & more"},
    ]
    tagged_demo = {
        "text": "t",
        "tags": ["a", "b"],
        "counts": {"a": 1, "b-c": 2},
        "score": 0.5,
        "note": "x < y & z",
    }
    return [
        ("model_output", "chat", Extract, [extract_demo], {"text": "Bob is 40."}),
        (
            "dataclass_output",
            "chat",
            Plot,
            [
                {
                    "description": "a triangle",
                    "route": Route(points=[Point(0, 0), Point(1, 0, "b")], closed=True),
                    "start": Point(0, 0),
                }
            ],
            {"description": "a line"},
        ),
        (
            "list_input_model_output",
            "chat",
            Roster,
            [roster_demo],
            {"snippets": ["Carol from Paris", "line one\nline two"]},
        ),
        (
            "history_input",
            "chat",
            Chat,
            [],
            {"question": "And of Italy?", "history": history},
        ),
        (
            "history_with_demos",
            "chat",
            Chat,
            [{"question": "Capital of Spain?", "answer": "Madrid"}],
            {"question": "And of Italy?", "history": history},
        ),
        (
            "model_input",
            "chat",
            Review,
            [],
            {"candidate": ada, "stops": [Point(0, 0), Point(1.5, 2, "b")], "backup": None},
        ),
        ("json_model_output", "json", Extract, [extract_demo], {"text": "Bob is 40."}),
        ("json_history", "json", Chat, [], {"question": "And of Italy?", "history": history}),
        ("xml_qa", "xml", QA, qa_demos, {"question": "Largest planet?"}),
        ("xml_model_output", "xml", Extract, [extract_demo], {"text": "Bob is 40."}),
        ("xml_roster", "xml", Roster, [roster_demo], {"snippets": ["Carol from Paris"]}),
        ("xml_nested_types", "xml", Tagged, [tagged_demo], {"text": "u"}),
        ("xml_history", "xml", Chat, [], {"question": "And of Italy?", "history": history}),
    ]


# (case name, signature case name in build_type_cases, adapter kind, completion)
MODEL_PARSE_CASES: list[tuple[str, str, str, str]] = [
    (
        "model_ok",
        "model_output",
        "chat",
        '[[ ## person ## ]]\n{"name": "Bob", "age": 40}\n\n[[ ## completed ## ]]',
    ),
    (
        "model_ok_nested",
        "model_output",
        "chat",
        '[[ ## person ## ]]\n{"name": "Bob", "age": "40", "address": '
        '{"street": "2 Main St", "city": "Leeds"}}',
    ),
    ("model_bad_age", "model_output", "chat", '[[ ## person ## ]]\n{"name": "Bob", "age": "old"}'),
    ("model_missing_key", "model_output", "chat", '[[ ## person ## ]]\n{"name": "Bob"}'),
    (
        "dataclass_ok",
        "dataclass_output",
        "chat",
        '[[ ## route ## ]]\n{"points": [{"x": 1, "y": 2}]}\n\n[[ ## start ## ]]\n'
        '{"x": 0, "y": 0, "label": "s"}',
    ),
    (
        "roster_ok",
        "list_input_model_output",
        "chat",
        '[[ ## people ## ]]\n[{"name": "Carol", "age": 30}]\n\n[[ ## lead ## ]]\nNone\n\n'
        '[[ ## by_city ## ]]\n{"Paris": {"street": "3 Rue", "city": "Paris"}}\n\n'
        "[[ ## either ## ]]\nnobody",
    ),
    (
        "json_model_ok",
        "json_model_output",
        "json",
        '{"person": {"name": "Bob", "age": 40, "emails": ["b@x.org"]}}',
    ),
    ("xml_qa_ok", "xml_qa", "xml", "<answer>\nJupiter &amp; more\n</answer>"),
    (
        "xml_model_ok",
        "xml_model_output",
        "xml",
        "<person><name>Bob</name><age>40</age><emails><item>b@x.org</item></emails>"
        "<address><street>2 Main</street><city>Leeds</city></address></person>",
    ),
    (
        "xml_model_json_ok",
        "xml_model_output",
        "xml",
        '<person>\n{"name": "Bob", "age": 40}\n</person>',
    ),
    (
        "xml_nested_ok",
        "xml_nested_types",
        "xml",
        '<tags><item>a</item><item>b</item></tags><counts><a>1</a><entry key="b-c">2</entry>'
        "</counts><score>0.25</score><note>x &lt; y</note>",
    ),
    ("xml_bad", "xml_qa", "xml", "<answer>unclosed"),
    ("xml_missing", "xml_nested_types", "xml", "<tags><item>a</item></tags>"),
]
