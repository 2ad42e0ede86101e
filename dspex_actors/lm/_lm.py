"""``LM``: an immutable language-model configuration.

An LM holds no connection and no state: the ActorSystem starts one long-lived Client
actor per distinct configuration (``config_id``) and routes calls through it. The API
key is kept out of ``repr``, ``config_id``, cache keys and every message.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import logging
import os
import secrets
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

from dspex_actors._errors import ConfigurationError
from dspex_actors._runtime import current_runtime
from dspex_actors._types import LMRequest, Message
from dspex_actors._validate import check_number
from dspex_actors.lm._history import DEFAULT_HISTORY_SIZE, History
from dspex_actors.lm._proxy import check_proxy_url
from dspex_actors.lm._redact import redact_url, url_secrets
from dspex_actors.lm.providers import Provider, get_provider

__all__ = ["LM"]

logger = logging.getLogger(__name__)

_KEY_SALT = secrets.token_bytes(16)
"""Per-process salt: LMs with different keys get different ids, yet no id reveals a key."""

_LM_FIELDS = (
    "model",
    "provider",
    "model_name",
    "api_base",
    "temperature",
    "max_tokens",
    "timeout",
    "num_retries",
    "max_concurrency",
    "rpm",
    "tpm",
    "cache",
    "verify",
    "max_response_bytes",
    "deadline",
    "api_version",
    "input_cost_per_million",
    "output_cost_per_million",
    "on_circuit_open",
)

DEFAULT_MAX_RESPONSE_BYTES = 32 * 2**20

CIRCUIT_POLICIES = ("fail", "wait", None)
"""``LM(on_circuit_open=...)``: None waits in batches (Evaluate, optimizers), fails otherwise."""


def _price(value: float | None) -> float | None:
    return None if value is None else float(value)


def _fits_a_header(value: str) -> bool:
    """Whether ``value`` can be an HTTP header value as is (visible ASCII and spaces)."""
    return value.isascii() and value.isprintable() and value == value.strip()


class LM:
    """A language model: ``LM("openai/gpt-4o-mini", api_base=..., api_key=..., ...)``.

    ``model`` is ``"<provider>/<model name>"``; ``openai/`` speaks the OpenAI
    chat-completions protocol to any compatible server. Extra keyword arguments are
    request parameters (``top_p``, ``stop``, ``n``, ...) sent with every call.
    ``max_concurrency`` caps requests in flight and ``rpm`` caps requests started per
    minute, both enforced by the LM's Client actor; ``tpm`` caps tokens per minute (a call
    waits while the key's recent usage is over it). ``timeout`` bounds each whole HTTP
    attempt and ``deadline`` a whole call across its retries; ``max_response_bytes`` caps
    a reply's decoded size. ``proxy`` is a URL, False for none, or None to follow
    ``HTTP(S)_PROXY``/``NO_PROXY``; ``verify`` is True (system CAs), False, or a CA bundle
    path. ``on_circuit_open`` says what a call does while the endpoint's circuit is open:
    ``"fail"`` at once, ``"wait"`` once for the half-open trial, or None (the default):
    wait inside Evaluate and optimizers, fail for interactive calls. Calling the LM
    (``lm("hi")`` or ``lm(messages=[...])``) goes through the current ActorSystem and
    returns one text per choice, as in DSPy.

    Providers: ``openai/`` (any OpenAI-compatible server), ``anthropic/`` (Messages API),
    ``gemini/`` (generateContent) and ``azure/<deployment>`` (``api_version`` in its URL;
    ``api_base`` or ``AZURE_OPENAI_ENDPOINT``). The key comes from ``api_key`` or the
    provider's variable (``OPENAI_API_KEY``, ``ANTHROPIC_API_KEY``, ``GEMINI_API_KEY`` or
    ``GOOGLE_API_KEY``, ``AZURE_OPENAI_API_KEY``); without one, ``LM(...)`` raises, except
    for ``openai/`` at a loopback ``api_base``. ``history_size`` bounds :attr:`history`
    (0: none kept); ``input_cost_per_million``/``output_cost_per_million`` (USD) add a
    cost to usage and to the Client's stats.
    """

    __slots__ = (
        "_api_base_secret",
        "_api_key",
        "_config_id",
        "_endpoint",
        "_extra",
        "_history",
        "_provider_impl",
        "_proxy",
        "api_base",
        "api_version",
        "cache",
        "deadline",
        "input_cost_per_million",
        "max_concurrency",
        "max_response_bytes",
        "max_tokens",
        "model",
        "model_name",
        "num_retries",
        "on_circuit_open",
        "output_cost_per_million",
        "provider",
        "rpm",
        "temperature",
        "timeout",
        "tpm",
        "verify",
    )

    model: str
    provider: str
    model_name: str
    api_base: str
    temperature: float
    max_tokens: int
    timeout: float
    num_retries: int
    max_concurrency: int | None
    rpm: float | None
    tpm: float | None
    cache: bool
    verify: bool | str
    max_response_bytes: int
    deadline: float | None
    on_circuit_open: str | None
    api_version: str | None
    input_cost_per_million: float | None
    output_cost_per_million: float | None
    _history: History
    _proxy: str | bool | None
    _api_key: str | None
    _api_base_secret: str | None
    _extra: dict[str, Any]
    _provider_impl: Provider
    _config_id: str
    _endpoint: str

    def __init__(
        self,
        model: str,
        *,
        api_base: str | None = None,
        api_key: str | None = None,
        temperature: float = 0.0,
        max_tokens: int = 1000,
        timeout: float = 60.0,
        num_retries: int = 3,
        max_concurrency: int | None = None,
        rpm: float | None = None,
        tpm: float | None = None,
        cache: bool = True,
        proxy: str | bool | None = None,
        verify: bool | str = True,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        deadline: float | None = None,
        on_circuit_open: str | None = None,
        api_version: str | None = None,
        history_size: int = DEFAULT_HISTORY_SIZE,
        input_cost_per_million: float | None = None,
        output_cost_per_million: float | None = None,
        **kwargs: Any,
    ) -> None:
        if not isinstance(model, str) or "/" not in model:
            raise ConfigurationError(
                f"LM model must be '<provider>/<model>' such as 'openai/gpt-4o-mini', got {model!r}"
            )
        provider_name, _, model_name = model.partition("/")
        if not model_name:
            raise ConfigurationError(f"LM model {model!r} names no model after the provider")
        provider = get_provider(provider_name)
        if api_base is not None and (
            not isinstance(api_base, str) or not api_base.startswith(("http://", "https://"))
        ):
            raise ConfigurationError(f"LM api_base must be an http(s) URL, got {api_base!r}")
        if api_key is not None and not isinstance(api_key, str):
            raise ConfigurationError("LM api_key must be a string")
        check = functools.partial(check_number, "LM")
        check("temperature", temperature, minimum=0.0, strict=False, integer=False)
        check("max_tokens", max_tokens, minimum=1, strict=False, integer=True)
        check("timeout", timeout, minimum=0.0, strict=True, integer=False)
        check("num_retries", num_retries, minimum=0, strict=False, integer=True)
        if max_concurrency is not None:
            check("max_concurrency", max_concurrency, minimum=1, strict=False, integer=True)
        if rpm is not None:
            check("rpm", rpm, minimum=0.0, strict=True, integer=False)
        if tpm is not None:
            check("tpm", tpm, minimum=0.0, strict=True, integer=False)
        if not isinstance(cache, bool):
            raise ConfigurationError(f"LM cache must be True or False, got {cache!r}")
        if proxy is True or not isinstance(proxy, (str, bool, type(None))):
            raise ConfigurationError(
                "LM proxy must be a proxy URL, False (no proxy) or None (from the environment)"
            )
        if isinstance(proxy, str):
            check_proxy_url(proxy if "://" in proxy else "http://" + proxy, source="LM proxy")
        if not isinstance(verify, (bool, str)) or verify == "":
            raise ConfigurationError(
                f"LM verify must be True, False or a CA bundle path, got {verify!r}"
            )
        if isinstance(verify, str) and not os.path.exists(verify):
            raise ConfigurationError(f"LM verify: no CA bundle at {verify!r}")
        check("max_response_bytes", max_response_bytes, minimum=1, strict=False, integer=True)
        if deadline is not None:
            check("deadline", deadline, minimum=0.0, strict=True, integer=False)
        if on_circuit_open not in CIRCUIT_POLICIES:
            raise ConfigurationError(
                "LM on_circuit_open must be 'fail' (fail fast), 'wait' (wait once for the "
                "half-open trial) or None (wait in batches, fail otherwise), "
                f"got {on_circuit_open!r}"
            )
        check("history_size", history_size, minimum=0, strict=False, integer=True)
        for price_name, price in (
            ("input_cost_per_million", input_cost_per_million),
            ("output_cost_per_million", output_cost_per_million),
        ):
            if price is not None:
                check(price_name, price, minimum=0.0, strict=False, integer=False)
        if api_version is not None and (not isinstance(api_version, str) or not api_version):
            raise ConfigurationError(
                f"LM api_version must be a non-empty string, got {api_version!r}"
            )
        for reserved in ("model", "messages"):
            if reserved in kwargs:
                raise ConfigurationError(f"LM parameter {reserved!r} is set by the LM itself")
        try:
            json.dumps(kwargs, sort_keys=True)
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(f"LM request parameters must be JSON values: {exc}") from None

        if api_base is None and provider.api_base_env:
            api_base = os.environ.get(provider.api_base_env) or None
        api_base = api_base or provider.default_api_base
        if not api_base:
            raise ConfigurationError(
                f"LM {model!r} needs api_base=... (the resource endpoint) or the "
                f"{provider.api_base_env} environment variable"
            )
        if api_version is None and provider.api_version_env:
            api_version = os.environ.get(provider.api_version_env) or None
        api_version = api_version or provider.default_api_version
        if api_key is None:
            api_key = next(
                (os.environ[env] for env in provider.api_key_envs if os.environ.get(env)), None
            )
        if api_key is None and provider.needs_key(api_base) and redact_url(api_base) == api_base:
            names = " or ".join(provider.api_key_envs)
            raise ConfigurationError(
                f"no API key for {model} at {api_base}: pass api_key=..., set {names}, "
                "or pass api_key='' for a server that needs none"
            )
        if api_key is not None and not _fits_a_header(api_key):
            raise ConfigurationError(
                "LM api_key cannot be sent in an HTTP header: it must be printable ASCII "
                "with no line breaks (check for a stray newline or a pasted character)"
            )
        base = api_base.rstrip("/")
        shown_base = redact_url(base)
        provider.check_n(model, kwargs.get("n"))
        values: dict[str, Any] = {
            "model": model,
            "provider": provider_name,
            "model_name": model_name,
            "api_base": shown_base,
            "_api_base_secret": None if shown_base == base else base,
            "temperature": float(temperature),
            "max_tokens": max_tokens,
            "timeout": float(timeout),
            "num_retries": num_retries,
            "max_concurrency": max_concurrency,
            "rpm": None if rpm is None else float(rpm),
            "tpm": None if tpm is None else float(tpm),
            "cache": cache,
            "verify": verify,
            "max_response_bytes": max_response_bytes,
            "deadline": None if deadline is None else float(deadline),
            "on_circuit_open": on_circuit_open,
            "api_version": api_version,
            "input_cost_per_million": _price(input_cost_per_million),
            "output_cost_per_million": _price(output_cost_per_million),
            "_history": History(history_size),
            "_proxy": proxy,
            "_api_key": api_key,
            "_extra": dict(kwargs),
            "_provider_impl": provider,
        }
        for name, value in values.items():
            object.__setattr__(self, name, value)
        object.__setattr__(self, "_config_id", self._compute_config_id())
        object.__setattr__(self, "_endpoint", self._url(self.api_base))

    def _compute_config_id(self) -> str:
        """Hash every setting that changes how calls are made; the key only via a salted MAC."""
        settings = {name: getattr(self, name) for name in _LM_FIELDS}
        settings["extra"] = self._extra
        digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
        if self._api_key:
            digest.update(hmac.new(_KEY_SALT, self._api_key.encode(), "sha256").digest())
        if self._api_base_secret:  # credentials in the URL: in through the salted MAC only
            secret = self._api_base_secret.encode()
            digest.update(b"base" + hmac.new(_KEY_SALT, secret, "sha256").digest())
        # The proxy may carry credentials: it goes in through the salted MAC too.
        proxy = json.dumps(self._proxy).encode()
        digest.update(b"proxy" + hmac.new(_KEY_SALT, proxy, "sha256").digest())
        return digest.hexdigest()[:16]

    def __setattr__(self, name: str, value: Any) -> NoReturn:
        raise AttributeError(f"LM is immutable; use lm.copy({name}=...) to change {name!r}")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError("LM is immutable")

    @property
    def kwargs(self) -> dict[str, Any]:
        """The request parameters sent with every call (a fresh dict)."""
        return {"temperature": self.temperature, "max_tokens": self.max_tokens, **self._extra}

    @property
    def config_id(self) -> str:
        """A stable, secret-free id of this configuration (one Client actor per id)."""
        return self._config_id

    @property
    def endpoint(self) -> str:
        """The URL calls are POSTed to, as shown (credentials in it replaced by ``***``)."""
        return self._endpoint

    @property
    def stream_endpoint(self) -> str:
        """The URL streamed calls are POSTed to (the same as :attr:`endpoint` for most)."""
        return self._url(self.api_base, stream=True)

    def request_url(self, *, stream: bool = False) -> str:
        """The URL calls are really POSTed to, credentials included: for the Client only."""
        return self._url(self._api_base_secret or self.api_base, stream=stream)

    def _url(self, base: str, *, stream: bool = False) -> str:
        """The provider's URL for ``base``, keeping a query of ``base`` at the end."""
        base, mark, query = base.partition("?")
        url = self._provider_impl.url(
            base.rstrip("/"), self.model_name, stream=stream, api_version=self.api_version
        )
        if not mark:
            return url
        return url + ("&" if "?" in url else "?") + query

    @property
    def secrets(self) -> list[str]:
        """Every credential of this LM (key, URL credentials), to scrub from any text."""
        found = url_secrets(self._api_base_secret) if self._api_base_secret else []
        return [self._api_key, *found] if self._api_key else found

    @property
    def credential_id(self) -> str:
        """Which credential calls carry, as a salted MAC (never the key): breakers and rate
        limits are per endpoint and credential, so one tenant's failures spare another's."""
        if not self._api_key:
            return "none"
        return hmac.new(_KEY_SALT, self._api_key.encode(), "sha256").hexdigest()[:16]

    @property
    def history(self) -> History:
        """The last calls of this LM, oldest first (bounded: ``history_size`` entries)."""
        return self._history

    @property
    def history_size(self) -> int:
        """How many calls :attr:`history` keeps (0: none)."""
        return self._history.maxlen

    @property
    def prices(self) -> tuple[float, float] | None:
        """(input, output) USD per million tokens when either was given, else None."""
        if self.input_cost_per_million is None and self.output_cost_per_million is None:
            return None
        return (self.input_cost_per_million or 0.0, self.output_cost_per_million or 0.0)

    @property
    def provider_impl(self) -> Provider:
        """The wire protocol of this LM."""
        return self._provider_impl

    @property
    def proxy(self) -> str | bool | None:
        """The ``proxy`` setting as given (a URL, False, or None: from the environment)."""
        return self._proxy

    @property
    def api_key(self) -> str | None:
        """The API key, for the Client actor only; never printed."""
        return self._api_key

    def copy(self, **changes: Any) -> LM:
        """A new LM with some settings or request parameters changed."""
        secrets = {"api_base": self._api_base_secret or self.api_base, "api_key": self._api_key}
        return LM(**{**self.settings(), **secrets, **changes})

    def settings(self) -> dict[str, Any]:
        """The constructor arguments that rebuild this LM, without the API key (a saved
        program holds these; its LM takes the key from the environment when loaded)."""
        return {
            "model": self.model,
            "api_base": self.api_base,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "timeout": self.timeout,
            "num_retries": self.num_retries,
            "max_concurrency": self.max_concurrency,
            "rpm": self.rpm,
            "tpm": self.tpm,
            "cache": self.cache,
            "proxy": self._proxy,
            "verify": self.verify,
            "max_response_bytes": self.max_response_bytes,
            "deadline": self.deadline,
            "on_circuit_open": self.on_circuit_open,
            "api_version": self.api_version,
            "history_size": self.history_size,
            "input_cost_per_million": self.input_cost_per_million,
            "output_cost_per_million": self.output_cost_per_million,
            **self._extra,
        }

    def make_request(
        self,
        prompt: str | None = None,
        messages: Sequence[Mapping[str, str]] | None = None,
        **overrides: Any,
    ) -> LMRequest:
        """Build the LMRequest for a call; ``cache`` and ``rollout_id`` may be overridden."""
        if (prompt is None) == (messages is None):
            raise ConfigurationError("pass exactly one of prompt= or messages= to the LM")
        if prompt is not None:
            chat: tuple[Message, ...] = ({"role": "user", "content": prompt},)
        else:
            assert messages is not None
            chat = tuple(dict(message) for message in messages)
            for index, message in enumerate(chat):
                if not isinstance(message.get("role"), str) or "content" not in message:
                    raise ConfigurationError(f"message {index} needs 'role' and 'content' keys")
        cache = overrides.pop("cache", self.cache)
        rollout_id = overrides.pop("rollout_id", None)
        params = {**self.kwargs, **overrides}
        self._provider_impl.check_n(self.model, params.get("n"))
        return LMRequest(
            messages=chat,
            params=params,
            cache=bool(cache) and self.cache,
            rollout_id=rollout_id,
        )

    def __call__(
        self,
        prompt: str | None = None,
        messages: Sequence[Mapping[str, str]] | None = None,
        **overrides: Any,
    ) -> list[str]:
        """Call the LM through the current ActorSystem; one text per choice."""
        request = self.make_request(prompt, messages, **overrides)
        return list(current_runtime().request(request, lm=self).texts)

    async def acall(
        self,
        prompt: str | None = None,
        messages: Sequence[Mapping[str, str]] | None = None,
        **overrides: Any,
    ) -> list[str]:
        """``await lm.acall(...)``: :meth:`__call__` without blocking the event loop."""
        request = self.make_request(prompt, messages, **overrides)
        return list((await current_runtime().arequest(request, lm=self)).texts)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LM):
            return NotImplemented
        return self._config_id == other._config_id

    def __hash__(self) -> int:
        return hash(self._config_id)

    def __repr__(self) -> str:
        parts = [repr(self.model)]
        if self.api_base != self._provider_impl.default_api_base:
            parts.append(f"api_base={self.api_base!r}")
        parts.append(f"api_key={'***' if self._api_key else None}")
        parts.extend(
            f"{name}={getattr(self, name)!r}"
            for name in ("temperature", "max_tokens", "timeout", "num_retries")
        )
        for name in ("max_concurrency", "rpm", "tpm"):
            if getattr(self, name) is not None:
                parts.append(f"{name}={getattr(self, name)!r}")
        if not self.cache:
            parts.append("cache=False")
        if self._proxy is not None:
            proxy = self._proxy
            parts.append(f"proxy={redact_url(proxy) if isinstance(proxy, str) else proxy!r}")
        if self.verify is not True:
            parts.append(f"verify={self.verify!r}")
        if self.max_response_bytes != DEFAULT_MAX_RESPONSE_BYTES:
            parts.append(f"max_response_bytes={self.max_response_bytes!r}")
        optional = (
            "deadline",
            "on_circuit_open",
            "api_version",
            "input_cost_per_million",
            "output_cost_per_million",
        )
        for name in optional:
            if getattr(self, name) is not None:
                parts.append(f"{name}={getattr(self, name)!r}")
        parts.extend(f"{key}={value!r}" for key, value in sorted(self._extra.items()))
        return f"LM({', '.join(parts)})"

    def __copy__(self) -> LM:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> LM:
        return self

    def __reduce__(self) -> NoReturn:
        raise TypeError("LM holds a credential and is not picklable; pass its settings instead")
