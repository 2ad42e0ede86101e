"""Write the program files in this directory with DSPy 3.4.1 itself (not part of the test run).

    /tmp/dspyvenv/bin/python tests/cli/dspy_programs/record_with_dspy.py

They are what ``program.save("x.json")`` writes in DSPy: no signature string and no types, so
``dspex-actors evaluate`` has to rebuild the signature from the instructions or be told it.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import dspy

HERE = Path(__file__).resolve().parent
warnings.filterwarnings("ignore")


class QA(dspy.Signature):
    """Answer the arithmetic question with a number only."""

    question: str = dspy.InputField()
    answer: str = dspy.OutputField(desc="just the number")


def main() -> None:
    assert dspy.__version__ == "3.4.1", dspy.__version__
    predict = dspy.Predict("question -> answer")
    predict.demos = [
        dspy.Example(question="What is 1 + 1?", answer="2").with_inputs("question"),
        dspy.Example(question="What is 3 times 4?", answer="12", augmented=True),
    ]
    predict.save(str(HERE / "predict.json"))
    cot = dspy.ChainOfThought("question -> answer: int")
    cot.predict.demos = [
        dspy.Example(
            question="What is 2 + 2?", reasoning="2 plus 2 is 4.", answer=4, augmented=True
        )
    ]
    cot.save(str(HERE / "cot_typed.json"))
    custom = dspy.Predict(QA)
    custom.save(str(HERE / "custom_instructions.json"))


if __name__ == "__main__":
    main()
