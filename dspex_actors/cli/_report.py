"""Plain-text rendering of what the commands print: demos, scores, system counters."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from dspex_actors._errors import LMConnectionError, LMError, LMHTTPStatusError, LMTimeoutError
from dspex_actors.evaluate import EvaluationResult, ExampleFailure
from dspex_actors.primitives import Module

__all__ = [
    "diagnose_failures",
    "first_tracebacks",
    "format_demos",
    "format_score",
    "format_stats",
    "program_demos",
]

logger = logging.getLogger(__name__)

_MAX_VALUE_CHARS = 80


def _short(value: Any) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= _MAX_VALUE_CHARS else text[: _MAX_VALUE_CHARS - 3] + "..."


def program_demos(program: Module) -> list[tuple[str, list[Any]]]:
    """``[(predictor name, demos)]`` of a program."""
    return [(name, list(predictor.demos)) for name, predictor in program.named_predictors()]


def format_demos(program: Module, indent: str = "  ") -> list[str]:
    """One line per demo: ``1. question: ... -> answer: ...`` (bootstrapped or labeled)."""
    lines: list[str] = []
    for name, demos in program_demos(program):
        predictor = dict(program.named_predictors())[name]
        inputs = list(predictor.signature.input_fields)
        if not demos:
            lines.append(f"{indent}{name}: no demos")
            continue
        lines.append(f"{indent}{name}: {len(demos)} demos")
        for number, demo in enumerate(demos, start=1):
            fields = dict(demo.items()) if hasattr(demo, "items") else dict(demo)
            augmented = bool(fields.pop("augmented", False))
            left = ", ".join(f"{k}: {_short(v)}" for k, v in fields.items() if k in inputs)
            right = ", ".join(f"{k}: {_short(v)}" for k, v in fields.items() if k not in inputs)
            kind = "bootstrapped" if augmented else "labeled"
            lines.append(f"{indent}  {number}. {left} -> {right}  ({kind})")
    return lines


def format_score(result: EvaluationResult) -> str:
    """``85.0% (34 / 40 correct)``, plus failures when there were any."""
    total = sum(float(score) for score in result.scores)
    text = f"{result.score}% ({total:g} / {len(result.results)})"
    if result.failures:
        text += f", {len(result.failures)} failed"
    return text


def _breaker_line(snapshot: Mapping[str, Any]) -> str:
    state = snapshot.get("state", "?")
    fails = snapshot.get("fail_counter", 0)
    limit = snapshot.get("fail_max", "?")
    rejected = snapshot.get("rejections", 0)
    return f"{state} ({fails}/{limit} consecutive failures, {rejected} calls rejected)"


def format_stats(stats: Mapping[str, Any], indent: str = "  ") -> list[str]:
    """The LM client, cache, breaker and restart counters of ``ActorSystem.stats()``."""
    lines: list[str] = []
    clients: Mapping[str, Any] = stats.get("clients") or {}
    for client in clients.values():
        lines.append(f"{indent}LM client {client.get('model')} -> {client.get('endpoint')}")
        if client.get("alive") is False:
            lines.append(f"{indent}  (not running)")
            continue
        lines.append(
            f"{indent}  requests {client.get('requests', 0)}, "
            f"HTTP attempts {client.get('attempts', 0)}, "
            f"retries {client.get('retries', 0)}, "
            f"failures {client.get('failures', 0)}, "
            f"rejected by breaker {client.get('circuit_rejections', 0)}"
        )
        lines.append(
            f"{indent}  most in flight at once {client.get('max_in_flight', 0)} "
            f"(cap {client.get('max_concurrency')}), "
            f"tokens {client.get('total_tokens', 0)}"
        )
    cache: Mapping[str, Any] | None = stats.get("cache")
    if cache:
        lines.append(
            f"{indent}cache: hits {cache.get('hits', 0)}, misses {cache.get('misses', 0)}, "
            f"coalesced {cache.get('coalesced', 0)}, entries {cache.get('size', 0)}"
            + (f", from disk {cache.get('persistent_hits', 0)}" if cache.get("persistent") else "")
        )
    else:
        lines.append(f"{indent}cache: not available")
    breakers: Mapping[str, Any] = stats.get("breakers") or {}
    for endpoint, snapshot in breakers.items():
        where = f" {endpoint}" if len(breakers) > 1 else ""
        lines.append(f"{indent}circuit breaker{where}: {_breaker_line(snapshot)}")
    restarts: Mapping[str, int] = stats.get("restarts") or {}
    restarted = {child: count for child, count in restarts.items() if count}
    if restarted:
        listed = ", ".join(f"{child} x{count}" for child, count in restarted.items())
        lines.append(f"{indent}actor restarts: {listed}")
    else:
        lines.append(f"{indent}actor restarts: none")
    return lines


def _lm_problem(exc: BaseException | None) -> tuple[str, str] | None:
    """``(what happened, where)`` for an LM error a user can act on, else None."""
    endpoint = getattr(exc, "endpoint", None) or "the LM's endpoint"
    if isinstance(exc, LMHTTPStatusError) and exc.status_code in (401, 403):
        return f"authentication failed ({exc.status_code})", f"at {endpoint}: check the API key"
    if isinstance(exc, LMConnectionError):
        return f"cannot connect to {endpoint}", "is the server running, is --api-base right?"
    if isinstance(exc, LMTimeoutError):
        return f"no reply from {endpoint} in time", "raise --timeout or check the server"
    return None


def diagnose_failures(failures: list[ExampleFailure]) -> list[str]:
    """One line per LM problem behind the failures (unreachable server, rejected key...),
    however many examples it failed: said once, not once per example."""
    problems: dict[tuple[str, str], str | None] = {}
    per_endpoint: dict[str | None, int] = {}
    for failure in failures:
        exc = failure.exception
        if isinstance(exc, LMError):  # an open circuit counts for the error that opened it
            per_endpoint[exc.endpoint] = per_endpoint.get(exc.endpoint, 0) + 1
        problem = _lm_problem(exc)
        if problem is not None:
            problems.setdefault(problem, getattr(exc, "endpoint", None))
    lines = []
    for (what, hint), endpoint in problems.items():
        count = per_endpoint.get(endpoint, 0)
        lines.append(f"{what} ({count} example{'s' if count != 1 else ''} failed); {hint}")
    return lines


def first_tracebacks(failures: list[ExampleFailure]) -> list[str]:
    """The traceback of the first failure of each error type (for ``-v``)."""
    seen: dict[str, str] = {}
    for failure in sorted(failures, key=lambda f: f.index):
        if failure.traceback and failure.error_type not in seen:
            seen[failure.error_type] = f"example #{failure.index}:\n{failure.traceback}"
    return list(seen.values())
