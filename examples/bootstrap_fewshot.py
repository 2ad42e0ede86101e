"""BootstrapFewShot: let the optimizer pick few-shot demos, then save and reload them.

Offline: the local server plays a SIMULATED weak model that gets about 45% of the
arithmetic questions wrong (off by one) without demos and right once its prompt holds a
few. The example evaluates a plain Predict, compiles it with BootstrapFewShot (teacher
runs in parallel), evaluates the compiled program, saves it to JSON and loads it into
a fresh Predict, which scores the same.

    python examples/bootstrap_fewshot.py
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import dspex_actors as dx
from dspex_actors.testing import LocalLMServer, arithmetic_dataset


class Arithmetic(dx.Signature):
    """Answer the arithmetic question with a number."""

    question: str = dx.InputField()
    answer: str = dx.OutputField()


def main() -> int:
    rows = arithmetic_dataset(56, seed=3)
    data = [
        dx.Example(question=row["question"], answer=row["answer"]).with_inputs("question")
        for row in rows
    ]
    trainset, devset = data[:16], data[16:]

    with LocalLMServer("weak", latency=0.02) as server:
        print(f"SIMULATED weak model at {server.url} (not a real LM)")
        lm = dx.LM("openai/weak-sim", api_base=server.url, api_key="local")
        with dx.ActorSystem(lm=lm):
            evaluate = dx.Evaluate(devset=devset, metric=dx.answer_exact_match, num_threads=8)

            student = dx.Predict(Arithmetic)
            before = evaluate(student)
            print(f"before: {before.score}% on {len(devset)} dev questions")

            optimizer = dx.BootstrapFewShot(
                metric=dx.answer_exact_match,
                max_bootstrapped_demos=4,
                max_labeled_demos=4,
                num_threads=8,
            )
            compiled = optimizer.compile(student, trainset=trainset)
            for name, predictor in compiled.named_predictors():
                print(f"demos of {name!r}:")
                for demo in predictor.demos:
                    print(f"  {demo.question} -> {demo.answer}")

            after = evaluate(compiled)
            print(f"after:  {after.score}%")

            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "arithmetic.json"
                compiled.save(path)
                fresh = dx.Predict(Arithmetic)
                fresh.load(path)
                reloaded = evaluate(fresh)
                print(
                    f"saved to {path.name}, reloaded: {reloaded.score}% with "
                    f"{len(fresh.demos)} demos"
                )

    ok = after.score > before.score and reloaded.score == after.score
    print("OK" if ok else "UNEXPECTED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
