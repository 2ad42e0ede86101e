"""Options shared by the subcommands: which LM to call and how the ActorSystem runs.

API keys come only from the environment (the provider's variable, or the one named by
``--api-key-env``); they are handed to the LM and never printed.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from dspex_actors._errors import ConfigurationError
from dspex_actors.lm import LM
from dspex_actors.lm.providers import get_provider
from dspex_actors.system import ActorSystem

__all__ = [
    "add_lm_options",
    "add_system_options",
    "lm_from_args",
    "non_negative_float",
    "non_negative_int",
    "positive_float",
    "positive_int",
    "system_from_args",
]

logger = logging.getLogger(__name__)


def _parse_number(text: str, kind: type[float], *, minimum: float, strict: bool) -> float:
    """Parse ``text`` as ``kind`` (int or float) above ``minimum`` (``strict``: > not >=)."""
    try:
        value = kind(text)
    except ValueError:
        expected = "a whole number" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if not (value > minimum if strict else value >= minimum):
        bound = f"> {minimum:g}" if strict else f">= {minimum:g}"
        raise argparse.ArgumentTypeError(f"expected a number {bound}, got {text}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an int >= 1."""
    return int(_parse_number(text, int, minimum=1, strict=False))


def non_negative_int(text: str) -> int:
    """argparse type: an int >= 0."""
    return int(_parse_number(text, int, minimum=0, strict=False))


def positive_float(text: str) -> float:
    """argparse type: a number > 0."""
    return _parse_number(text, float, minimum=0, strict=True)


def non_negative_float(text: str) -> float:
    """argparse type: a number >= 0."""
    return _parse_number(text, float, minimum=0, strict=False)


def add_lm_options(parser: argparse.ArgumentParser, *, required: bool) -> None:
    """``--model``, ``--api-base``, ``--api-key-env`` and the LM's request settings."""
    group = parser.add_argument_group("language model")
    group.add_argument(
        "--model",
        required=required,
        metavar="PROVIDER/NAME",
        help="the LM, e.g. openai/gpt-4o-mini (openai/ = any OpenAI-compatible server)",
    )
    group.add_argument(
        "--api-base",
        metavar="URL",
        help="the server's base URL, e.g. http://127.0.0.1:8000/v1 (default: the provider's)",
    )
    group.add_argument(
        "--api-key-env",
        metavar="VAR",
        help="environment variable holding the API key (default: the provider's, e.g. "
        "OPENAI_API_KEY); keys are never taken on the command line",
    )
    group.add_argument("--temperature", type=non_negative_float, default=0.0)
    group.add_argument("--max-tokens", type=positive_int, default=1000)
    group.add_argument(
        "--timeout", type=positive_float, default=60.0, help="seconds per LM request (60)"
    )
    group.add_argument(
        "--num-retries", type=non_negative_int, default=3, help="retries per LM call (3)"
    )
    group.add_argument(
        "--max-concurrency", type=positive_int, help="cap on LM requests in flight at once"
    )
    group.add_argument("--rpm", type=positive_float, help="cap on LM requests started per minute")
    group.add_argument(
        "--no-cache", action="store_true", help="do not cache LM replies for this run"
    )


def add_system_options(parser: argparse.ArgumentParser) -> None:
    """``--cache-dir``: the persistent tier of the Cache actor."""
    parser.add_argument(
        "--cache-dir",
        metavar="DIR",
        help="keep LM replies in a SQLite cache in DIR, reused by later runs",
    )


def lm_from_args(args: argparse.Namespace, *, api_key: str | None = None) -> LM:
    """The LM named by the options; a ConfigurationError says what to fix.

    ``api_key`` (for the local simulation) replaces the key from the environment.
    """
    model: str = args.model
    if "/" not in model:
        raise ConfigurationError(
            f"--model must be PROVIDER/NAME such as openai/gpt-4o-mini, got {model!r}"
        )
    provider = get_provider(model.partition("/")[0])
    if api_key is None and args.api_key_env:
        api_key = os.environ.get(args.api_key_env) or None
        if api_key is None:
            raise ConfigurationError(
                f"--api-key-env {args.api_key_env}: that environment variable is not set"
            )
    elif api_key is None and provider.api_key_env:
        api_key = os.environ.get(provider.api_key_env) or None
    if api_key is None and args.api_base is None and provider.api_key_env:
        raise ConfigurationError(
            f"no API key for {model}: set {provider.api_key_env} (or name another variable "
            "with --api-key-env), or pass --api-base URL for a server that needs no key"
        )
    if api_key is None and args.api_base is not None:
        api_key = ""  # --api-base without a key: a server that needs none (as the help says)
    return LM(
        model,
        api_base=args.api_base,
        api_key=api_key,
        temperature=args.temperature,
        max_tokens=args.max_tokens,
        timeout=args.timeout,
        num_retries=args.num_retries,
        max_concurrency=args.max_concurrency,
        rpm=args.rpm,
        cache=not args.no_cache,
    )


def system_from_args(args: argparse.Namespace, lm: LM) -> ActorSystem:
    """An ActorSystem for ``lm`` with the cache options (not started)."""
    cache_dir: str | None = getattr(args, "cache_dir", None)
    if cache_dir is not None:
        path = Path(cache_dir)
        if path.exists() and not path.is_dir():
            raise ConfigurationError(f"--cache-dir {cache_dir}: exists and is not a directory")
    return ActorSystem(lm=lm, cache_dir=cache_dir, cache_strict=cache_dir is not None)
