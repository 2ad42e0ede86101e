"""Signatures, Predict and ChainOfThought: the basics, offline.

Runs against the local OpenAI-compatible test server from ``dspex_actors.testing``
(a deterministic stand-in that solves arithmetic), so no API key is needed.
Pass ``--model openai/gpt-4o-mini`` (with OPENAI_API_KEY set) to ask a real model.

    python examples/qa_predict.py
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator

import dspex_actors as dx
from dspex_actors.testing import LocalLMServer


class QA(dx.Signature):
    """Answer questions with short factoid answers."""

    question: str = dx.InputField()
    answer: str = dx.OutputField(desc="often between 1 and 5 words")


@contextlib.contextmanager
def language_model(model: str | None, api_base: str | None) -> Iterator[dx.LM]:
    """A real LM when ``model`` is given, else one served by a local test server."""
    if model is not None:
        yield dx.LM(model, api_base=api_base)
        return
    with LocalLMServer() as server:
        print(f"(offline: a local test model at {server.url} plays the LM)")
        yield dx.LM("openai/local-model", api_base=server.url, api_key="local")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="e.g. openai/gpt-4o-mini (default: offline test model)")
    parser.add_argument("--api-base", help="the server's base URL")
    args = parser.parse_args()

    with language_model(args.model, args.api_base) as lm:
        # DSPy style: configure once; the actor system starts on first use and
        # stops by itself when the script ends.
        dx.configure(lm=lm)

        # 1. A class signature: the docstring is the instruction, fields are typed.
        qa = dx.Predict(QA)
        pred = qa(question="What is 2 + 3?")
        print(f"Predict(QA):        answer={pred.answer!r}")

        # 2. The same from a string signature, with a typed output.
        add = dx.Predict("question -> answer: int")
        pred = add(question="What is 12 times 7?")
        print(f"Predict(str):       answer={pred.answer!r} ({type(pred.answer).__name__})")

        # 3. ChainOfThought adds a `reasoning` output before the answer.
        cot = dx.ChainOfThought("question -> answer: int")
        pred = cot(question="What is 144 divided by 12?")
        print(f"ChainOfThought:     reasoning={pred.reasoning!r}")
        print(f"                    answer={pred.answer!r}")

        # 4. Predictors are thread-safe to share: calls from many threads run concurrently
        #    through one Client actor; identical calls are answered once (single flight).
        from concurrent.futures import ThreadPoolExecutor

        questions = [f"What is {n} + {n}?" for n in range(1, 9)]
        with ThreadPoolExecutor(max_workers=8) as pool:
            answers = list(pool.map(lambda q: add(question=q).answer, questions))
        print(f"8 concurrent calls: {answers}")

        # 5. What the actors counted.
        stats = dx.current_system().stats()
        client = next(iter(stats["clients"].values()))
        print(
            f"LM requests: {client['requests']}, cache hits: {stats['cache']['hits']}, "
            f"breaker: {client['breaker']['state']}"
        )
        ok = pred.answer == 12 and answers == [2 * n for n in range(1, 9)]
    print("OK" if ok else "UNEXPECTED ANSWERS")
    return 0 if ok or args.model else 1


if __name__ == "__main__":
    raise SystemExit(main())
