"""ChatAdapter/JSONAdapter: parsing, the call through request_fn, and the one JSON-mode retry."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any, Literal

import pytest

from dspex_actors import AdapterParseError, LMConnectionError
from dspex_actors._types import LMResponse
from dspex_actors.adapters import ChatAdapter, JSONAdapter, demo_to_dict
from dspex_actors.signatures import InputField, OutputField, Signature, make_signature


class Classify(Signature):
    """Classify the text."""

    text: str = InputField()
    label: Literal["spam", "ham"] = OutputField()
    score: int = OutputField()


class FakeLM:
    """A request_fn that replies with scripted texts and records what it was sent."""

    def __init__(self, *replies: tuple[str, ...] | Exception) -> None:
        self.replies = list(replies)
        self.calls: list[tuple[list[dict[str, str]], dict[str, Any]]] = []

    def __call__(self, messages: list[dict[str, str]], params: dict[str, Any]) -> LMResponse:
        self.calls.append((messages, dict(params)))
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return LMResponse(texts=reply, usage={"total_tokens": 3}, model="fake")


CHAT_OK = "[[ ## label ## ]]\nspam\n\n[[ ## score ## ]]\n7\n\n[[ ## completed ## ]]"


def test_call_formats_sends_and_parses_every_choice() -> None:
    lm = FakeLM((CHAT_OK, "[[ ## label ## ]]\nham\n[[ ## score ## ]]\n1"))
    values, response = ChatAdapter()(
        lm, Classify, [], {"text": "buy now"}, {"temperature": 0.0, "n": 2}
    )
    assert values == [{"label": "spam", "score": 7}, {"label": "ham", "score": 1}]
    assert response.texts[0] == CHAT_OK
    assert len(lm.calls) == 1
    messages, params = lm.calls[0]
    assert params == {"temperature": 0.0, "n": 2}
    assert messages == ChatAdapter().format(Classify, [], {"text": "buy now"})


def test_call_accepts_a_signature_string() -> None:
    lm = FakeLM(("[[ ## answer ## ]]\n5",))
    values, _ = ChatAdapter()(lm, "question -> answer: int", [], {"question": "2+3?"})
    assert values == [{"answer": 5}]


def test_parse_failure_retries_once_in_json_mode() -> None:
    lm = FakeLM(("label: spam, score: 7",), ('```json\n{"label": "spam", "score": "7"}\n```',))
    values, response = ChatAdapter()(lm, Classify, [], {"text": "buy now"}, {"temperature": 0.5})
    assert values == [{"label": "spam", "score": 7}]
    assert response.texts == ('```json\n{"label": "spam", "score": "7"}\n```',)
    assert len(lm.calls) == 2
    (_, first_params), (json_messages, json_params) = lm.calls
    assert "response_format" not in first_params
    assert json_params == {"temperature": 0.5, "response_format": {"type": "json_object"}}
    assert json_messages == JSONAdapter().format(Classify, [], {"text": "buy now"})
    assert json_messages[-1]["content"].endswith(
        "Respond with a JSON object in the following order of fields: `label` (must be formatted "
        "as a valid Python Literal['spam', 'ham']), then `score` (must be formatted as a valid "
        "Python int)."
    )


def test_uncoercible_value_also_triggers_the_retry() -> None:
    lm = FakeLM(
        ("[[ ## label ## ]]\nphishing\n[[ ## score ## ]]\n7",), ('{"label": "ham", "score": 2}',)
    )
    values, _ = ChatAdapter()(lm, Classify, [], {"text": "x"})
    assert values == [{"label": "ham", "score": 2}]
    assert len(lm.calls) == 2


def test_failed_retry_raises_adapter_parse_error_with_signature_fields_and_text() -> None:
    lm = FakeLM(("no markers here",), ('{"label": "spam"}',))
    with pytest.raises(AdapterParseError) as info:
        ChatAdapter()(lm, Classify, [], {"text": "x"})
    error = info.value
    assert error.signature is Classify
    assert error.missing_fields == ["score"]
    assert error.lm_response == '{"label": "spam"}'
    assert error.parsed == {"label": "spam"}
    assert "JSON-mode retry" in str(error)
    assert "text -> label, score" in str(error)
    assert isinstance(error.__cause__, AdapterParseError)
    assert len(lm.calls) == 2


def test_no_retry_when_the_fallback_is_disabled() -> None:
    lm = FakeLM(("garbage",))
    with pytest.raises(AdapterParseError) as info:
        ChatAdapter(use_json_adapter_fallback=False)(lm, Classify, [], {"text": "x"})
    assert info.value.missing_fields == ["label", "score"]
    assert info.value.lm_response == "garbage"
    assert len(lm.calls) == 1


def test_lm_errors_are_not_retried() -> None:
    lm = FakeLM(LMConnectionError("connection refused", model="fake"), (CHAT_OK,))
    with pytest.raises(LMConnectionError):
        ChatAdapter()(lm, Classify, [], {"text": "x"})
    assert len(lm.calls) == 1


def test_empty_reply_is_a_parse_error_and_retried() -> None:
    lm = FakeLM(("",), ("",))
    with pytest.raises(AdapterParseError, match="empty reply"):
        ChatAdapter()(lm, Classify, [], {"text": "x"})
    assert len(lm.calls) == 2


def test_one_bad_choice_fails_the_call_like_dspy() -> None:
    lm = FakeLM((CHAT_OK, "bad"), ('{"label": "ham", "score": 1}', '{"label": "spam", "score": 2}'))
    values, _ = ChatAdapter()(lm, Classify, [], {"text": "x"}, {"n": 2})
    assert values == [{"label": "ham", "score": 1}, {"label": "spam", "score": 2}]


def test_json_adapter_called_directly_sets_response_format_and_never_falls_back() -> None:
    lm = FakeLM(("not json",))
    with pytest.raises(AdapterParseError, match="not a JSON object"):
        JSONAdapter()(lm, Classify, [], {"text": "x"}, {"response_format": {"type": "text"}})
    assert lm.calls[0][1] == {"response_format": {"type": "json_object"}}
    assert len(lm.calls) == 1


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ('{"label": "spam", "score": 3}', {"label": "spam", "score": 3}),
        ('Sure: {"score": "4", "label": "ham", "extra": 1} done', {"label": "ham", "score": 4}),
        ("{'label': 'spam', 'score': 5}", {"label": "spam", "score": 5}),
        ('{"label": "spam", "score": 6', {"label": "spam", "score": 6}),
    ],
)
def test_json_parse_is_tolerant(reply: str, expected: dict[str, Any]) -> None:
    assert JSONAdapter().parse(Classify, reply) == expected


def test_chat_parse_details() -> None:
    sig = make_signature("q -> a, b: list[str], c: int | None")
    text = (
        "preamble\n  [[ ## a ## ]] same line\nmore\n[[ ## b ## ]]\n['x']\n"
        "[[ ## a ## ]]\nignored\n[[ ## zz ## ]]\n?"
    )
    assert ChatAdapter().parse(sig, text) == {"a": "same line\nmore", "b": ["x"], "c": None}


def test_chat_parse_error_lists_missing_and_bad_fields() -> None:
    with pytest.raises(AdapterParseError) as info:
        ChatAdapter().parse(Classify, "[[ ## label ## ]]\nmaybe")
    assert info.value.missing_fields == ["label", "score"]
    assert "field `label`" in str(info.value)
    assert "one of: spam; ham" in str(info.value)


class ExampleLike:
    """An Example-shaped demo: keys()/items()/get()/[]/in, not a dict."""

    def __init__(self, **fields: Any) -> None:
        self._fields = fields

    def keys(self) -> list[str]:
        return list(self._fields)

    def items(self) -> list[tuple[str, Any]]:
        return list(self._fields.items())

    def get(self, key: str, default: Any = None) -> Any:
        return self._fields.get(key, default)

    def __getitem__(self, key: str) -> Any:
        return self._fields[key]

    def __contains__(self, key: object) -> bool:
        return key in self._fields

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields)


def test_example_like_demos_format_like_dicts() -> None:
    demos_dicts = [{"text": "a", "label": "spam", "score": 1}, {"text": "b", "label": "ham"}]
    demos_objects = [ExampleLike(**d) for d in demos_dicts]
    adapter = ChatAdapter()
    expected = adapter.format(Classify, demos_dicts, {"text": "c"})
    assert adapter.format(Classify, demos_objects, {"text": "c"}) == expected
    assert len(expected) == 6
    assert expected[1]["content"].startswith("This is an example of the task")
    assert demo_to_dict(ExampleLike(a=1)) == {"a": 1}
    with pytest.raises(TypeError, match="mapping or an Example"):
        demo_to_dict(42)


def test_real_example_demos_are_accepted() -> None:
    primitives = pytest.importorskip("dspex_actors.primitives")
    demo = primitives.Example(text="a", label="spam", score=1).with_inputs("text")
    messages = ChatAdapter().format(Classify, [demo], {"text": "c"})
    assert messages[2]["content"] == (
        "[[ ## label ## ]]\nspam\n\n[[ ## score ## ]]\n1\n\n[[ ## completed ## ]]\n"
    )


def test_system_message_is_cached_per_signature_and_adapter() -> None:
    chat, js = ChatAdapter(), JSONAdapter()
    first = chat.format_system_message(Classify)
    assert chat.format_system_message(Classify) is first
    assert js.format_system_message(Classify) != first
    assert "Outputs will be a JSON object" in js.format_system_message(Classify)


def test_messages_are_json_serialisable_strings() -> None:
    messages = ChatAdapter().format(
        Classify, [{"text": "t", "label": "ham", "score": 0}], {"text": "u"}
    )
    assert all(isinstance(m, Mapping) and set(m) == {"role", "content"} for m in messages)
    assert json.loads(json.dumps(messages)) == messages
