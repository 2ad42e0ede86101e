"""Tools and composite modules: ReAct, BestOfN/Refine, Parallel and majority, offline.

Runs against the local OpenAI-compatible test server from ``dspex_actors.testing``: its
deterministic model plays a ReAct agent (it calls the tool named in the question, then
finishes, and answers from the tool's observation) and solves arithmetic otherwise.

    python examples/agent_tools.py
"""

from __future__ import annotations

import dspex_actors as dx
from dspex_actors.testing import LocalLMServer

CAPITALS = {"freedonia": "Fredville", "sylvania": "Sylvan City"}


def lookup_capital(country: str) -> str:
    """Look up the capital city of a country."""
    for name, capital in CAPITALS.items():
        if name in country.lower():
            return capital
    return "unknown"


def population(city: str) -> int:
    """The population of a city."""
    return 1234


def main() -> int:
    with LocalLMServer() as server:
        lm = dx.LM("openai/local-model", api_base=server.url, api_key="local")
        with dx.ActorSystem(lm=lm):
            # 1. ReAct: the agent calls a tool, then extracts the answer from what it saw.
            agent = dx.ReAct("question -> answer", tools=[lookup_capital, population])
            pred = agent(question="lookup_capital: what is the capital of Freedonia?")
            steps = [k for k in pred.trajectory if k.startswith("tool_name_")]
            print(f"ReAct answer:  {pred.answer!r} after {len(steps)} steps")
            print(f"  tools used:  {[pred.trajectory[k] for k in steps]}")

            # 2. Refine: retry (temperature 1.0, a rollout id each) until the reward is met.
            def one_word(args: dict[str, object], pred: dx.Prediction) -> float:
                return 1.0 if len(str(pred.answer).split()) == 1 else 0.0

            refine = dx.Refine(
                dx.Predict("question -> answer"), N=3, reward_fn=one_word, threshold=1.0
            )
            print(f"Refine answer: {refine(question='What is 6 * 7?').answer!r}")

            # 3. Parallel / batch: many calls on a bounded pool of worker actors.
            add = dx.Predict("question -> answer: int")
            examples = [
                dx.Example(question=f"What is {i} + {i}?").with_inputs("question") for i in range(8)
            ]
            results = add.batch(examples, num_threads=4, disable_progress_bar=True)
            print(f"batch answers: {[r.answer for r in results]}")

            # 4. majority: the most common answer among several completions.
            votes = [{"answer": "Paris"}, {"answer": "paris."}, {"answer": "Lyon"}]
            print(f"majority:      {dx.majority(votes).answer!r}")
    print("OK")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
