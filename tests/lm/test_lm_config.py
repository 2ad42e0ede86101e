"""LM is an immutable, validated configuration value that never shows its key."""

from __future__ import annotations

import copy
import pickle

import pytest

from dspex_actors import ConfigurationError
from dspex_actors.lm import LM, LMRequest
from dspex_actors.lm._retry import backoff_delay, is_retryable, parse_retry_after
from dspex_actors.lm.providers import OpenAIProvider, get_provider

SECRET = "sk-test-SECRET-0123456789"


def test_model_provider_and_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ConfigurationError, match="OPENAI_API_KEY"):
        LM("openai/gpt-4o-mini")  # a remote endpoint needs a key; a loopback one does not
    assert LM("openai/x", api_base="http://127.0.0.1:8000/v1").api_key is None
    lm = LM("openai/gpt-4o-mini", api_key=SECRET)
    assert (lm.provider, lm.model_name, lm.model) == ("openai", "gpt-4o-mini", "openai/gpt-4o-mini")
    assert lm.api_base == "https://api.openai.com/v1"
    assert lm.endpoint == "https://api.openai.com/v1/chat/completions"
    assert lm.kwargs == {"temperature": 0.0, "max_tokens": 1000}
    assert (lm.timeout, lm.num_retries, lm.max_concurrency, lm.rpm, lm.cache) == (
        60.0,
        3,
        None,
        None,
        True,
    )
    assert lm.api_key == SECRET


def test_model_name_may_contain_slashes() -> None:
    lm = LM("openai/meta-llama/Llama-3-8B", api_base="http://127.0.0.1:8000/v1/")
    assert lm.model_name == "meta-llama/Llama-3-8B"
    assert lm.api_base == "http://127.0.0.1:8000/v1"


def test_api_key_defaults_to_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    assert LM("openai/x").api_key == SECRET
    assert LM("openai/x", api_key="other").api_key == "other"


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"model": "gpt-4o-mini"}, "'<provider>/<model>'"),
        ({"model": "nosuch/model"}, "unknown LM provider 'nosuch'"),
        ({"model": "openai/"}, "names no model"),
        ({"model": "openai/x", "api_base": "localhost:8000"}, "http(s) URL"),
        ({"model": "openai/x", "timeout": 0}, "timeout must be > 0"),
        ({"model": "openai/x", "num_retries": -1}, "num_retries must be >= 0"),
        ({"model": "openai/x", "max_concurrency": 0}, "max_concurrency must be >= 1"),
        ({"model": "openai/x", "rpm": 0}, "rpm must be > 0"),
        ({"model": "openai/x", "max_tokens": "many"}, "max_tokens must be an int"),
        ({"model": "openai/x", "cache": "yes"}, "cache must be True or False"),
        ({"model": "openai/x", "messages": []}, "'messages' is set by the LM"),
        ({"model": "openai/x", "stop": object()}, "JSON values"),
    ],
)
def test_bad_configuration_is_a_clear_error(kwargs: dict[str, object], fragment: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        LM(**kwargs)  # type: ignore[arg-type]
    assert fragment in str(info.value)


def test_immutable_and_copy() -> None:
    lm = LM("openai/x", api_key=SECRET, temperature=0.5, top_p=0.9)
    with pytest.raises(AttributeError):
        lm.temperature = 1.0  # type: ignore[misc]
    hotter = lm.copy(temperature=1.0)
    assert hotter.temperature == 1.0 and lm.temperature == 0.5
    assert hotter.kwargs["top_p"] == 0.9
    assert copy.deepcopy(lm) is lm


def test_config_id_is_stable_and_secret_free() -> None:
    a = LM("openai/x", api_base="http://127.0.0.1:1/v1", api_key=SECRET)
    b = LM("openai/x", api_base="http://127.0.0.1:1/v1", api_key=SECRET)
    assert a.config_id == b.config_id and a == b and hash(a) == hash(b)
    assert SECRET not in a.config_id
    assert LM("openai/x", api_base="http://127.0.0.1:1/v1", api_key="k2").config_id != a.config_id
    assert a.copy(temperature=0.7).config_id != a.config_id
    assert a.copy(max_concurrency=4).config_id != a.config_id


def test_key_never_in_repr_or_pickle() -> None:
    lm = LM("openai/x", api_key=SECRET)
    assert SECRET not in repr(lm) and SECRET not in str(lm)
    assert "api_key=***" in repr(lm)
    with pytest.raises(TypeError):
        pickle.dumps(lm)


def test_make_request_merges_params_and_overrides() -> None:
    lm = LM("openai/x", api_key=SECRET, temperature=0.2, stop=["\n"])
    request = lm.make_request("hi", temperature=0.9, n=2, rollout_id=3, cache=False)
    assert request == LMRequest(
        messages=({"role": "user", "content": "hi"},),
        params={"temperature": 0.9, "max_tokens": 1000, "stop": ["\n"], "n": 2},
        cache=False,
        rollout_id=3,
    )
    with pytest.raises(ConfigurationError):
        lm.make_request()
    with pytest.raises(ConfigurationError):
        lm.make_request(messages=[{"content": "no role"}])
    assert not LM("openai/x", api_key=SECRET, cache=False).make_request("hi", cache=True).cache


def test_openai_provider_wire_format() -> None:
    provider = get_provider("openai")
    assert isinstance(provider, OpenAIProvider)
    request = LMRequest(messages=({"role": "user", "content": "hi"},), params={"n": 2})
    assert provider.body("m", request) == {
        "n": 2,
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
    }
    assert provider.headers(SECRET)["Authorization"] == f"Bearer {SECRET}"
    assert "Authorization" not in provider.headers(None)
    response = provider.parse(
        {
            "model": "m",
            "choices": [
                {"message": {"content": "a"}, "finish_reason": "stop"},
                {"message": {"content": None}, "finish_reason": "length"},
            ],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
        },
        model="openai/m",
        endpoint="e",
    )
    assert response.texts == ("a", "")
    assert response.finish_reasons == ("stop", "length")
    assert response.usage == {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}


def test_retry_policy() -> None:
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after("0.25") == 0.25
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
    for retry in range(1, 6):
        delay = backoff_delay(retry, base=0.5, maximum=4.0)
        ceiling = min(4.0, 0.5 * 2 ** (retry - 1))
        assert ceiling / 2 <= delay <= ceiling
    assert backoff_delay(1, base=0.01, maximum=1.0, retry_after=2.0) == 2.0
    assert not is_retryable(ValueError("x"))
