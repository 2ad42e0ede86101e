"""What travels between the driver and the Ray workers, and how credentials stay out of it.

Everything (the function with its program and metric, the items, the outcomes, the
worker's system settings) is pickled with Ray's cloudpickle by :func:`dumps`, whose
pickler changes two things:

- An :class:`~dspex_actors.lm.LM` (deliberately unpicklable: it holds a credential)
  travels as its settings without the key, plus a :class:`_EnvKey`: the worker reads the
  key from the same environment variable the driver's LM read it from (the provider's,
  e.g. ``OPENAI_API_KEY``) and checks it against a salted MAC of the driver's key, so a
  worker with another key fails clearly instead of running up another account. An LM
  given ``api_key=`` explicitly is refused unless the run opted in with
  ``RayBackend(ship_api_keys=True)``: then the key travels as a :class:`_ShippedKey`
  through Ray's object store (and never shows in a repr).
- A signature class built at run time (``"question -> answer"``, or defined in
  ``__main__``) travels as its fields and instructions: its frozen class cannot be
  rebuilt attribute by attribute as cloudpickle does.
- An exception travels as its class, ``args`` and attributes, so errors whose
  constructor takes required keyword arguments (``LMHTTPStatusError``) survive the trip.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import io
import os
import secrets
import socket
import sys
from typing import Any

from ray import cloudpickle

from dspex_actors._errors import ConfigurationError
from dspex_actors.adapters import ChatAdapter
from dspex_actors.lm import LM
from dspex_actors.signatures import Signature, make_signature
from dspex_actors.signatures._signature import SignatureMeta
from dspex_actors.system import ActorSystem, current_adapter, current_system
from dspex_actors.system._settings import context_lm

__all__ = ["SystemSpec", "dumps", "fingerprint", "loads", "system_spec"]

_SALT = secrets.token_bytes(16)
"""Per driver process: the MAC of a key proves it is the same key without revealing it."""


def _mac(salt: bytes, key: str) -> str:
    return hmac.new(salt, key.encode(), "sha256").hexdigest()


@dataclasses.dataclass(frozen=True)
class _EnvKey:
    """The key is read from ``env`` in the worker; ``mac`` says which key it must be."""

    env: str
    salt: bytes
    mac: str

    def resolve(self, model: str) -> str:
        value = os.environ.get(self.env) or None
        where = f"the Ray worker on {socket.gethostname()} (pid {os.getpid()})"
        if value is None:
            raise ConfigurationError(
                f"{where} has no {self.env}, which the driver's LM {model!r} reads its key "
                f"from: set {self.env} in the workers' environment"
            )
        if not hmac.compare_digest(_mac(self.salt, value), self.mac):
            raise ConfigurationError(
                f"{self.env} in {where} is not the key the driver's LM {model!r} uses"
            )
        return value


@dataclasses.dataclass(frozen=True)
class _ShippedKey:
    """A key sent through Ray's object store, by the caller's explicit choice."""

    value: str = dataclasses.field(repr=False)

    def resolve(self, model: str) -> str:
        return self.value


def _lm_settings(lm: LM) -> dict[str, Any]:
    return {
        "model": lm.model,
        "api_base": lm.api_base,
        "temperature": lm.temperature,
        "max_tokens": lm.max_tokens,
        "timeout": lm.timeout,
        "num_retries": lm.num_retries,
        "max_concurrency": lm.max_concurrency,
        "rpm": lm.rpm,
        "cache": lm.cache,
        "proxy": lm.proxy,
        "verify": lm.verify,
        "max_response_bytes": lm.max_response_bytes,
        "deadline": lm.deadline,
        "on_circuit_open": lm.on_circuit_open,
        **{k: v for k, v in lm.kwargs.items() if k not in ("temperature", "max_tokens")},
    }


def _key_for(lm: LM, ship_api_keys: bool) -> _EnvKey | _ShippedKey | None:
    key = lm.api_key
    if key is None:
        return None
    env = lm.provider_impl.api_key_env
    if env and os.environ.get(env) == key:
        return _EnvKey(env, _SALT, _mac(_SALT, key))
    if ship_api_keys:
        return _ShippedKey(key)
    hint = f"set {env} and build the LM without api_key=, or " if env else ""
    raise ConfigurationError(
        f"LM {lm.model!r} was given its api_key explicitly, and backend='ray' does not send "
        f"keys to the Ray workers unless asked: {hint}pass "
        "backend=dx.RayBackend(ship_api_keys=True) to send it through Ray's object store"
    )


def _check_proxy(lm: LM, ship_api_keys: bool) -> None:
    proxy = lm.proxy
    if isinstance(proxy, str) and "@" in proxy.partition("://")[2] and not ship_api_keys:
        raise ConfigurationError(
            f"LM {lm.model!r} has a proxy URL with credentials, and backend='ray' does not "
            "send credentials to the Ray workers unless asked: set HTTP(S)_PROXY in the "
            "workers' environment and build the LM with proxy=None, or pass "
            "backend=dx.RayBackend(ship_api_keys=True)"
        )


def _rebuild_lm(settings: dict[str, Any], key: _EnvKey | _ShippedKey | None) -> LM:
    api_key = None if key is None else key.resolve(settings["model"])
    return LM(api_key=api_key, **settings)


def _rebuild_exception(
    cls: type[BaseException], args: tuple[Any, ...], state: dict[str, Any]
) -> BaseException:
    exc = cls.__new__(cls, *args)
    exc.args = args
    exc.__dict__.update(state)
    return exc


def _importable(cls: type) -> bool:
    """Whether ``cls`` is found by its module and name (then it is pickled by reference)."""
    module = sys.modules.get(cls.__module__)
    found: Any = module
    for part in cls.__qualname__.split("."):
        found = getattr(found, part, None)
    return found is cls


def _rebuild_signature(fields: dict[str, Any], instructions: str, name: str) -> type[Signature]:
    return make_signature(fields, instructions, name if name.isidentifier() else "StringSignature")


class _Pickler(cloudpickle.CloudPickler):
    """cloudpickle, with LMs as settings plus a key reference and exceptions by state."""

    def __init__(self, file: io.BytesIO, ship_api_keys: bool) -> None:
        super().__init__(file, protocol=cloudpickle.DEFAULT_PROTOCOL)
        self._ship_api_keys = ship_api_keys

    def reducer_override(self, obj: Any) -> Any:
        if type(obj) is LM:
            _check_proxy(obj, self._ship_api_keys)
            return _rebuild_lm, (_lm_settings(obj), _key_for(obj, self._ship_api_keys))
        if isinstance(obj, SignatureMeta) and not _importable(obj):
            return _rebuild_signature, (dict(obj.fields), obj.instructions, obj.__name__)
        if isinstance(obj, BaseException) and type(obj).__reduce__ is BaseException.__reduce__:
            state = vars(obj).copy()
            if "record" in state:  # what a Client saw of the call: for local telemetry only
                state["record"] = None
            return _rebuild_exception, (type(obj), obj.args, state)
        return super().reducer_override(obj)


def dumps(value: Any, *, ship_api_keys: bool = False) -> bytes:
    """Pickle ``value`` for a Ray worker (or back); LMs travel without their keys."""
    buffer = io.BytesIO()
    _Pickler(buffer, ship_api_keys).dump(value)
    return buffer.getvalue()


def loads(data: bytes) -> Any:
    """The value :func:`dumps` pickled (LM keys resolved here)."""
    return cloudpickle.loads(data)


@dataclasses.dataclass(frozen=True)
class SystemSpec:
    """How a worker builds its ActorSystem: the driver's LM, adapter and options."""

    lm: LM | None
    adapter: ChatAdapter
    options: dict[str, Any]
    redis_url: str | None = dataclasses.field(default=None, repr=False)

    def build(self) -> ActorSystem:
        """A new (unstarted) ActorSystem with these settings."""
        options = dict(self.options)
        if self.redis_url is not None:
            options["redis_url"] = self.redis_url
        return ActorSystem(self.lm, name="dspex-ray-worker", **options)


def system_spec(redis_url: str | None = None) -> SystemSpec:
    """The settings of the driver's current system, for the workers to copy.

    ``redis_url``: the shared state the workers' systems use; None takes the driver
    system's own ``redis_url`` when it has one. The SQLite ``cache_dir`` is a path on the
    driver's machine and is not copied; callbacks stay on the driver.
    """
    system = current_system()
    cache = system.cache_options
    client = system.client_options
    options = {
        "cache_maxsize": cache.maxsize,
        "cache_ttl": cache.ttl,
        "max_restarts": system.max_restarts,
        "max_seconds": system.max_seconds,
        "breaker_fail_max": client.breaker_fail_max,
        "breaker_reset_timeout": client.breaker_reset_timeout,
        "retry_base_delay": client.retry_base_delay,
        "retry_max_delay": client.retry_max_delay,
    }
    url = redis_url if redis_url is not None else getattr(system, "redis_url", None)
    return SystemSpec(context_lm() or system.lm, current_adapter(), options, url)


def fingerprint(data: bytes) -> str:
    """A short digest of pickled settings (which pool of workers fits them)."""
    return hashlib.sha256(data).hexdigest()[:16]
