"""Refine's feedback step: DSPy 3.4.1's ``OfferFeedback`` signature and the text it is given.

After an attempt below the threshold, an LM is shown the program (its code and each
predictor's fields and instructions), the attempt's inputs, trajectory and outputs, and the
reward function with its value, and asked for advice per predictor. Non-text values are
given as indented JSON (values JSON cannot hold become ``<non-serializable: Type>``).
"""

from __future__ import annotations

import inspect
import json
import textwrap
from collections.abc import Mapping
from typing import Any

from dspex_actors.adapters import field_description_string
from dspex_actors.modules._attempts import as_dict
from dspex_actors.predict._trace import TraceEntry
from dspex_actors.primitives import Module
from dspex_actors.signatures import InputField, OutputField, Signature

__all__ = ["OfferFeedback", "feedback_inputs", "inspect_modules", "source_of"]


class OfferFeedback(Signature):
    """
    In the discussion, assign blame to each module that contributed to the final reward being below the threshold, if
    any. Then, prescribe concrete advice of how the module should act on its future input when we retry the process, if
    it were to receive the same or similar inputs. If a module is not to blame, the advice should be N/A.
    The module will not see its own history, so it needs to rely on entirely concrete and actionable advice from you
    to avoid the same mistake on the same or similar inputs.
    """  # noqa: E501 -- DSPy's text, line breaks included

    program_code: str = InputField(desc="The code of the program that we are analyzing")
    modules_defn: str = InputField(
        desc="The definition of each module in the program, including its I/O"
    )
    program_inputs: str = InputField(desc="The inputs to the program that we are analyzing")
    program_trajectory: str = InputField(
        desc="The trajectory of the program's execution, showing each module's I/O"
    )
    program_outputs: str = InputField(desc="The outputs of the program that we are analyzing")
    reward_code: str = InputField(desc="The code of the reward function that we are analyzing")
    target_threshold: float = InputField(desc="The target threshold for the reward function")
    reward_value: float = InputField(desc="The reward value assigned to the program's outputs")
    module_names: list[str] = InputField(
        desc="The names of the modules in the program, for which we seek advice"
    )
    discussion: str = OutputField(
        desc="Discussing blame of where each module went wrong, if it did"
    )
    advice: dict[str, str] = OutputField(
        desc="For each module, describe very concretely, in this order: the specific scenarios "
        "in which it has made mistakes in the past and what each mistake was, followed by what "
        "it should do differently in that kind ofscenario in the future. If the module is not "
        "to blame, write N/A."
    )


def source_of(obj: Any) -> str:
    """The source of a function or class (of its class for a callable object), or a note."""
    for target in (obj, type(obj)):
        try:
            return inspect.getsource(target)
        except (OSError, TypeError):
            continue
    return f"<source of {getattr(obj, '__qualname__', type(obj).__qualname__)} not available>"


def inspect_modules(program: Module) -> str:
    """Each predictor's name, input and output fields and instructions (DSPy's layout)."""
    separator = "-" * 80
    output = [separator]
    indent = "\n" + "\t" * 2
    for name, predictor in program.named_predictors():
        signature = predictor.signature
        instructions = indent.join(["", *textwrap.dedent(signature.instructions).splitlines()])
        inputs = field_description_string(signature.input_fields).splitlines()
        outputs = field_description_string(signature.output_fields).splitlines()
        output.append(f"Module {name}")
        output.append("\n\tInput Fields:")
        output.append(indent.join(["", *inputs]))
        output.append("\tOutput Fields:")
        output.append(indent.join(["", *outputs]))
        output.append(f"\tOriginal Instructions: {instructions}")
        output.append(separator)
    return "\n".join(o.strip("\n") for o in output)


def feedback_inputs(
    *,
    program: Module,
    program_code: str,
    reward_code: str,
    inputs: Mapping[str, Any],
    trace: list[TraceEntry],
    outputs: Any,
    threshold: float | None,
    reward: Any,
) -> dict[str, str]:
    """The ``OfferFeedback`` inputs for one attempt, every value as text."""
    names = {id(predictor): name for name, predictor in program.named_predictors()}
    trajectory = [
        {
            "module_name": names.get(id(predictor), type(predictor).__name__),
            "inputs": dict(step_inputs),
            "outputs": as_dict(prediction),
        }
        for predictor, step_inputs, prediction in trace
    ]
    values: dict[str, Any] = {
        "program_code": program_code,
        "modules_defn": inspect_modules(program),
        "program_inputs": dict(inputs),
        "program_trajectory": trajectory,
        "program_outputs": as_dict(outputs),
        "reward_code": reward_code,
        "target_threshold": threshold,
        "reward_value": reward,
        "module_names": [name for name, _ in program.named_predictors()],
    }
    return {k: v if isinstance(v, str) else _dumps(v) for k, v in values.items()}


def _dumps(value: Any) -> str:
    return json.dumps(_mask(value), indent=2, ensure_ascii=False)


def _mask(value: Any) -> Any:
    """``value`` with every part JSON cannot hold replaced by a placeholder."""
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        pass
    else:
        return value
    if isinstance(value, Mapping):
        return {k: _mask(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_mask(v) for v in value]
    return f"<non-serializable: {type(value).__name__}>"
