"""Predict: one LM call shaped by a signature, with few-shot demos.

A call formats the messages with the chat adapter, sends them through
``current_system()`` (so through the Cache and Client actors of whichever
ActorSystem is current for this thread/context, or the configured default),
parses the reply into a :class:`Prediction` and, while a trace is recorded,
appends ``(predictor, inputs, prediction)`` to it.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn, Self

from dspex_actors._errors import (
    ConfigurationError,
    PredictInputError,
    ProgramLoadError,
    SignatureError,
)
from dspex_actors._turns import take_turn
from dspex_actors._types import LMRequest, LMResponse, Message
from dspex_actors.adapters import ChatAdapter
from dspex_actors.lm import LM
from dspex_actors.predict._sigstring import (
    signature_from_default_instructions,
    signature_to_string,
)
from dspex_actors.predict._trace import current_trace
from dspex_actors.primitives import Example, Module, Parameter, Prediction
from dspex_actors.primitives._module import METADATA_KEY
from dspex_actors.signatures import ensure_signature
from dspex_actors.streaming._session import current_session
from dspex_actors.system import ActorSystem, current_adapter, current_system

__all__ = ["Predict", "check_options"]

logger = logging.getLogger(__name__)

_SHARED_ON_COPY = frozenset({"lm", "init_lm", "adapter", "signature", "callbacks"})
"""Attributes a deep copy shares: immutable values (signature, LM), the adapter and hooks."""

_CALL_ONLY = {
    "demos": "set predictor.demos = [...] after construction, or pass demos=[...] to a call",
    "config": "pass LM parameters as keywords: Predict(sig, temperature=0.7, n=3)",
}
"""Keywords a call takes for itself: at construction they would reach the LM as parameters."""

_N_TEMPERATURE = 0.7
"""DSPy raises a near-zero temperature to this when ``n > 1`` so choices differ."""


@dataclasses.dataclass(frozen=True)
class _PreparedCall:
    """One Predict call, its arguments checked and settled, ready for the adapter."""

    system: ActorSystem
    signature: Any
    demos: Any
    inputs: dict[str, Any]
    params: dict[str, Any]
    lm: Any
    cache: bool
    rollout_id: Any
    record: bool

    def request(self, messages: Sequence[Message], params: Mapping[str, Any]) -> LMRequest:
        """The LMRequest for the adapter's messages and parameters."""
        return LMRequest(
            messages=tuple(messages),
            params=dict(params),
            cache=self.cache,
            rollout_id=self.rollout_id,
        )


class Predict(Module, Parameter):
    """Map a signature's inputs to its outputs with one LM call.

    ``Predict("question -> answer")(question="...")``. ``**config`` are default LM
    request parameters (temperature, max_tokens, n, rollout_id, cache); a call can
    override them with ``config={...}``, its demos with ``demos=[...]`` and its LM with
    ``lm=``. ``lm=`` (or ``predict.lm``) overrides the system's LM for this predictor's
    calls, ``adapter=`` (or ``predict.adapter``) the adapter (a :class:`ChatAdapter`,
    ``JSONAdapter`` or ``XMLAdapter``); both are checked here, not at the first call.
    """

    signature: Any
    config: dict[str, Any]
    lm: Any
    init_lm: Any
    adapter: ChatAdapter | None
    demos: list[Any]
    traces: list[Any]
    train: list[Any]

    def __init__(
        self,
        signature: Any,
        callbacks: list[Any] | None = None,
        *,
        lm: Any = None,
        adapter: Any = None,
        **config: Any,
    ) -> None:
        super().__init__(callbacks=callbacks)
        self.signature = ensure_signature(signature)
        check_options(type(self).__name__, lm, adapter, config)
        self.config = dict(config)
        self.init_lm = lm
        self.adapter = adapter
        self.reset()

    def reset(self) -> None:
        """Forget demos and an LM set after construction (DSPy's reset). An ``lm=`` given
        to the constructor stays: optimizers reset their student, and a compiled program
        must not silently move to another LM."""
        self.lm = self.init_lm
        self.traces = []
        self.train = []
        self.demos = []

    # -- calling -------------------------------------------------------------------

    def __call__(self, *args: Any, **kwargs: Any) -> Prediction:
        if args:
            self._positional(args)
        result: Prediction = super().__call__(**kwargs)
        return result

    def _positional(self, args: tuple[Any, ...]) -> NoReturn:
        names = list(self.signature.input_fields)
        example = ", ".join(f"{name}=..." for name in names) or "..."
        raise PredictInputError(
            f"{self._describe()} takes keyword arguments only (the signature's input "
            f"fields {names}), got {len(args)} positional argument(s); "
            f"call it as predict({example})"
        )

    def forward(self, **kwargs: Any) -> Prediction:
        """Run one prediction: ``inputs`` as keywords plus ``config``/``demos``/``lm``."""
        call = self._prepare(kwargs)
        system = call.system

        def request_fn(messages: Sequence[Message], params: Mapping[str, Any]) -> LMResponse:
            return system.request(call.request(messages, params), lm=call.lm)

        adapter = self._adapter()
        outputs = adapter(request_fn, call.signature, call.demos, call.inputs, call.params)
        return self._finish(call, *outputs)

    async def aforward(self, **kwargs: Any) -> Prediction:
        """:meth:`forward` for ``await predict.acall(...)``: the same prompt, cache and limits,
        never blocking the event loop. Inside ``streamify`` with a listener on this
        predictor, the LM call is streamed. A burst of calls on one loop starts a few per
        turn of the loop (``_turns``), so the loop's other work keeps running."""
        await take_turn()
        call = self._prepare(kwargs)
        system = call.system
        adapter = self._adapter()
        session = current_session()
        stream = session.stream_for(self, adapter) if session is not None else None

        async def arequest_fn(
            messages: Sequence[Message], params: Mapping[str, Any]
        ) -> LMResponse:
            if stream is not None:  # a second request is the adapter's JSON-mode retry
                stream.begin_request(call.signature)
            request = call.request(messages, params)
            return await system.arequest(request, lm=call.lm, sink=stream)

        completions, response = await adapter.acall(
            arequest_fn, call.signature, call.demos, call.inputs, call.params
        )
        if stream is not None:  # inside streamify: the listened fields' last pieces
            stream.finish(response, completions[0] if completions else {})
        return self._finish(call, completions, response)

    async def acall(self, *args: Any, **kwargs: Any) -> Prediction:
        if args:
            self._positional(args)
        result: Prediction = await super().acall(**kwargs)
        return result

    def _adapter(self) -> ChatAdapter:
        """This predictor's adapter if it has one, else the settings' (``dx.context``,
        ``dx.configure``, else ChatAdapter)."""
        return self.adapter if self.adapter is not None else current_adapter()

    def _prepare(self, kwargs: dict[str, Any]) -> _PreparedCall:
        """Check the call's arguments and settle its signature, demos, LM and parameters."""
        signature = self.signature
        override = kwargs.pop("signature", None)
        if override is not None:
            signature = ensure_signature(override)
        demos = kwargs.pop("demos", None)
        if demos is None:
            demos = self.demos
        call_config = kwargs.pop("config", None) or {}
        if not isinstance(call_config, Mapping):
            raise PredictInputError(
                f"{self._describe()}: config= must be a dict of LM parameters, "
                f"got {type(call_config).__name__}"
            )
        config = {**self.config, **call_config}
        lm = kwargs.pop("lm", None)
        if lm is None:
            lm = self.lm
        if lm is not None and not isinstance(lm, LM):
            _check_lm(self._describe(signature), lm)
        record = kwargs.pop("_trace", True)

        missing = [name for name in signature.input_fields if name not in kwargs]
        if missing:
            raise PredictInputError(
                f"{self._describe(signature)} is missing input field(s) {missing}; "
                f"it was called with {sorted(kwargs)}"
            )

        n_given = config.get("n")
        if n_given is not None and (
            not isinstance(n_given, int) or isinstance(n_given, bool) or n_given < 1
        ):
            raise PredictInputError(
                f"{self._describe()}: n must be a positive int, got {n_given!r}"
            )

        system = current_system()
        effective_lm = system.effective_lm(lm)
        lm_kwargs: Mapping[str, Any] = effective_lm.kwargs if effective_lm is not None else {}
        cache = bool(config.pop("cache", True))
        rollout_id = config.pop("rollout_id", None)
        temperature = config.get("temperature", lm_kwargs.get("temperature"))
        n = n_given or lm_kwargs.get("n") or 1
        if effective_lm is not None:
            effective_lm.provider_impl.check_n(effective_lm.model, n)
        if n > 1 and (temperature is None or temperature <= 0.15):
            config["temperature"] = _N_TEMPERATURE
        return _PreparedCall(
            system=system,
            signature=signature,
            demos=demos,
            inputs=kwargs,
            params={**lm_kwargs, **config},
            lm=lm,
            cache=cache,
            rollout_id=rollout_id,
            record=bool(record),
        )

    def _finish(
        self, call: _PreparedCall, completions: list[dict[str, Any]], response: LMResponse
    ) -> Prediction:
        """The Prediction of a call, recorded in the current trace if one is open."""
        pred = Prediction.from_completions(
            completions, call.signature, raw_texts=response.texts
        )  # its usage: set by Module.__call__ from every request the call made
        if call.record:
            trace = current_trace()
            if trace is not None:
                trace.append((self, dict(call.inputs), pred))
        return pred

    def update_config(self, **config: Any) -> None:
        """Merge ``config`` into the default LM parameters."""
        self.config = {**self.config, **config}

    def get_config(self) -> dict[str, Any]:
        """The default LM parameters."""
        return self.config

    # -- copies --------------------------------------------------------------------

    def __deepcopy__(self, memo: dict[int, Any]) -> Self:
        new = type(self).__new__(type(self))
        memo[id(self)] = new
        for attr, value in vars(self).items():
            shared = attr in _SHARED_ON_COPY
            new.__dict__[attr] = value if shared else copy.deepcopy(value, memo)
        return new

    # -- state (DSPy's layout) -------------------------------------------------------

    def dump_state(self) -> dict[str, Any]:
        """Demos as dicts, signature instructions and field prefixes/descriptions, no LM.

        Also what ``save()`` writes for a bare Predict (flat, as DSPy does).
        """
        signature = self.signature
        fields = [
            {"name": name, "prefix": info.prefix, "description": info.desc}
            for name, info in signature.fields.items()
        ]
        return {
            "traces": [],
            "train": [],
            "demos": [_demo_to_dict(demo) for demo in self.demos],
            "signature": {
                "instructions": signature.instructions,
                "fields": fields,
                "string": signature_to_string(signature),
            },
            "lm": None,
        }

    def check_state(self, state: Any, name: str = "self") -> None:
        """Raise :class:`ProgramLoadError` naming the predictor/field if ``state`` does not fit."""
        where = f"saved predictor '{name}'"
        if not isinstance(state, Mapping):
            raise ProgramLoadError(f"{where} must be a JSON object, got {type(state).__name__}")
        sig_state = state.get("signature")
        if not isinstance(sig_state, Mapping):
            raise ProgramLoadError(f"{where} has no 'signature' object (instructions and fields)")
        instructions = sig_state.get("instructions")
        if not isinstance(instructions, str):
            raise ProgramLoadError(f"{where}: signature 'instructions' must be a string")
        saved_fields = sig_state.get("fields")
        if not isinstance(saved_fields, list):
            raise ProgramLoadError(f"{where}: signature 'fields' must be a list")
        names = list(self.signature.fields)
        saved_names = [f.get("name") if isinstance(f, Mapping) else None for f in saved_fields]
        if len(saved_fields) != len(names):
            shown = saved_names if all(saved_names) else f"{len(saved_fields)} fields"
            raise ProgramLoadError(
                f"{where} does not match {self._describe()}: the file has {shown}, "
                f"the program's signature has fields {names}"
            )
        for index, (expected, entry) in enumerate(zip(names, saved_fields, strict=True)):
            if not isinstance(entry, Mapping):
                raise ProgramLoadError(f"{where}: field #{index} must be a JSON object")
            saved_name = entry.get("name")
            if saved_name is not None and saved_name != expected:
                raise ProgramLoadError(
                    f"{where} does not match {self._describe()}: saved field #{index} is "
                    f"'{saved_name}' where the program's signature has field '{expected}'"
                )
            for key in ("prefix", "description"):
                if not isinstance(entry.get(key), str):
                    raise ProgramLoadError(
                        f"{where}: field '{expected}' needs a string '{key}'"
                    )
        demos = state.get("demos", [])
        if not isinstance(demos, list) or not all(isinstance(d, Mapping) for d in demos):
            raise ProgramLoadError(f"{where}: 'demos' must be a list of JSON objects")

    def load_state(self, state: Mapping[str, Any], name: str = "self") -> Self:
        """Apply saved state: demos (as Examples), instructions, prefixes, descriptions.

        Takes a predictor's state, or a whole saved program holding only this predictor
        (flat as DSPy saves a bare Predict, or nested under ``"self"``).
        """
        state = _own_state(state)
        self.check_state(state, name=name)
        sig_state = state["signature"]
        signature = self.signature.with_instructions(sig_state["instructions"])
        for field_name, entry in zip(list(signature.fields), sig_state["fields"], strict=True):
            info = signature.fields[field_name]
            if entry["description"] != info.desc or entry["prefix"] != info.prefix:
                signature = signature.with_updated_fields(
                    field_name, desc=entry["description"], prefix=entry["prefix"]
                )
        self.signature = signature
        self.demos = [Example(demo) for demo in state.get("demos", [])]
        self.traces = list(state.get("traces") or [])
        self.train = list(state.get("train") or [])
        if state.get("lm"):
            logger.warning(
                "%s: the saved file holds LM settings; they are ignored "
                "(configure the LM in code)",
                name,
            )
        return self

    @classmethod
    def from_state(
        cls, state: Mapping[str, Any], name: str = "self", signature: Any = None
    ) -> Predict:
        """Rebuild a predictor from its saved state alone.

        The signature comes from ``signature`` when given, else from the saved signature
        string (written by this library), else -- for a file saved by DSPy, which records
        neither names nor types -- from DSPy's default instructions (``Given the fields
        `a`, produce the fields `b`.``), every field typed ``str``.
        """
        sig_state = state.get("signature") if isinstance(state, Mapping) else None
        if not isinstance(sig_state, Mapping):
            raise ProgramLoadError(f"saved predictor '{name}' has no 'signature' object")
        instructions = sig_state.get("instructions")
        if signature is not None:
            return cls(ensure_signature(signature)).load_state(state, name=name)
        string = sig_state.get("string")
        if not isinstance(string, str) or not string:
            string = signature_from_default_instructions(sig_state)
        if string is None:
            raise ProgramLoadError(
                f"saved predictor '{name}' has no signature string (a file saved by DSPy, "
                "which records neither field names nor types, with instructions of its own): "
                "give the signature -- dspex-actors evaluate --signature 'question -> answer' "
                "or load_program(path, signature=...) -- or build the program in code and "
                "call program.load(path)"
            )
        try:
            rebuilt = ensure_signature(string, instructions=instructions)
        except SignatureError as exc:
            raise ProgramLoadError(
                f"saved predictor '{name}': cannot rebuild its signature {string!r}: {exc}"
            ) from exc
        return cls(rebuilt).load_state(state, name=name)

    # -- display ---------------------------------------------------------------------

    def _describe(self, signature: Any = None) -> str:
        return f"{type(self).__name__}({signature_to_string(signature or self.signature)!r})"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({signature_to_string(self.signature)})"


def check_options(owner: str, lm: Any, adapter: Any, config: Mapping[str, Any]) -> None:
    """Raise :class:`ConfigurationError` saying what to do unless a predictor constructor's
    ``lm=``, ``adapter=`` and LM parameters are usable."""
    for key, advice in _CALL_ONLY.items():
        if key in config:
            raise ConfigurationError(
                f"{owner}(..., {key}=...) is not a construction option "
                f"(it would be sent to the LM as a parameter): {advice}"
            )
    _check_lm(owner, lm)
    _check_adapter(owner, adapter)


def _check_lm(owner: str, lm: Any) -> None:
    if lm is None or isinstance(lm, LM):
        return
    if isinstance(lm, str):
        raise ConfigurationError(
            f"{owner}(..., lm={lm!r}): lm= takes an LM, not a model name; "
            f"write lm=dx.LM({lm!r}, api_base=..., api_key=...)"
        )
    raise ConfigurationError(
        f"{owner}(..., lm=...): lm= takes a dx.LM(...), got {type(lm).__name__}"
    )


def _check_adapter(owner: str, adapter: Any) -> None:
    if adapter is None or isinstance(adapter, ChatAdapter):
        return
    if isinstance(adapter, type) and issubclass(adapter, ChatAdapter):
        raise ConfigurationError(
            f"{owner}(..., adapter={adapter.__name__}): pass an instance, "
            f"adapter={adapter.__name__}()"
        )
    raise ConfigurationError(
        f"{owner}(..., adapter=...): adapter= takes dx.ChatAdapter(), dx.JSONAdapter() or "
        f"dx.XMLAdapter(), got {type(adapter).__name__}"
    )


def _own_state(state: Any) -> Any:
    """The predictor state inside a program file that holds only a bare predictor."""
    if isinstance(state, Mapping) and "signature" not in state:
        predictors = [key for key in state if key != METADATA_KEY]
        if predictors == ["self"]:
            return state["self"]
    return state


def _demo_to_dict(demo: Any) -> dict[str, Any]:
    if isinstance(demo, Example):
        return demo.toDict()
    if isinstance(demo, Mapping):
        return dict(demo)
    raise TypeError(f"a demo must be an Example or a dict, got {type(demo).__name__}")
