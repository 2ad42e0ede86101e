"""asyncio and streaming against any OpenAI-compatible server (vLLM, llama.cpp, Ollama, ...).

Shows, on one event loop and one ActorSystem:

1. ``await dx.Predict(sig).acall(...)`` and ``await dx.ChainOfThought(sig).acall(...)``;
2. ``dx.streamify(...)`` of a ChainOfThought with listeners on ``reasoning`` and
   ``answer``: each ``dx.StreamResponse`` chunk is printed as it arrives, then the final
   ``dx.Prediction``, with the time to each field's first chunk against the time to the
   Prediction, and whether the chunks add up to the parsed fields;
3. ``pred.get_lm_usage()`` (some servers send no usage for a streamed reply: then the
   streamed call reports none);
4. ``await dx.Evaluate(...).acall(program)`` over a handful of arithmetic questions.

The key is read from the environment variable named by ``--api-key-env`` (default
``OPENAI_API_KEY``); a server on loopback (127.0.0.0/8, localhost, ::1) needs none. Small
local models rarely keep to the chat adapter's ``[[ ## answer ## ]]`` markers: the JSON
adapter (the default here) sends ``response_format`` json_object, which llama.cpp's
server turns into a JSON grammar. For example, with llama-cpp-python's server:

    python -m llama_cpp.server --model SmolLM2-135M-Instruct.Q4_1.gguf \\
        --model_alias smollm2 --host 127.0.0.1 --port 8080 --n_ctx 2048
    python examples/openai_compatible_server.py \\
        --api-base http://127.0.0.1:8080/v1 --model openai/smollm2 --adapter json

Exits 0 when every step ran (whatever the model answered); a typed library error
(``dx.LMError``, ``dx.AdapterParseError``, ...) is printed with its class name, exit 1.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from typing import Any

import dspex_actors as dx

QUESTIONS = [
    ("What is 2 + 3?", "5"),
    ("What is 7 + 1?", "8"),
    ("What is 10 - 4?", "6"),
    ("What is 3 * 3?", "9"),
    ("What is 12 / 4?", "3"),
]


class QA(dx.Signature):
    """Answer the arithmetic question with just the number."""

    question: str = dx.InputField()
    answer: str = dx.OutputField(desc="a number, digits only")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line: where the server is, which model, which adapter."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--api-base", required=True, help="e.g. http://127.0.0.1:8080/v1")
    parser.add_argument("--model", required=True, help="openai/<the server's model name>")
    parser.add_argument("--adapter", choices=("json", "chat"), default="json")
    parser.add_argument(
        "--api-key-env",
        default="OPENAI_API_KEY",
        help="environment variable holding the key (unset: no key, for a loopback server)",
    )
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per attempt")
    parser.add_argument("--threads", type=int, default=4, help="Evaluate's num_threads")
    return parser.parse_args(argv)


def _usage(pred: Any) -> str:
    usage = pred.get_lm_usage() if isinstance(pred, dx.Prediction) else None
    return repr(usage or {})


async def run(args: argparse.Namespace) -> None:
    """Every step in turn; a library error propagates to :func:`main`."""
    api_key = os.environ.get(args.api_key_env) or None
    lm = dx.LM(
        args.model,
        api_base=args.api_base,
        api_key=api_key,
        max_tokens=args.max_tokens,
        temperature=0.0,
        timeout=args.timeout,
        num_retries=1,
        cache=False,  # every call reaches the server, so the timings below are real
    )
    adapter = dx.JSONAdapter() if args.adapter == "json" else dx.ChatAdapter()
    # A sync `with` around the awaits: the coroutines find this system from inside the loop;
    # `dx.context` sets the adapter for this task and the tasks it starts.
    with dx.ActorSystem(lm=lm, name="openai-compatible-example"), dx.context(adapter=adapter):
        question = QUESTIONS[0][0]

        t0 = time.perf_counter()
        pred = await dx.Predict(QA).acall(question=question)
        print(f"1. Predict.acall:        answer={pred.answer!r} ({time.perf_counter() - t0:.2f}s)")
        print(f"   usage: {_usage(pred)}")

        t0 = time.perf_counter()
        cot = await dx.ChainOfThought(QA).acall(question=question)
        print(f"   ChainOfThought.acall: reasoning={cot.reasoning!r}")
        print(f"                         answer={cot.answer!r} ({time.perf_counter() - t0:.2f}s)")

        # ChainOfThought streams `reasoning`, then `answer`: both listened to.
        streamed = dx.streamify(
            dx.ChainOfThought(QA),
            stream_listeners=[
                dx.StreamListener(signature_field_name="reasoning"),
                dx.StreamListener(signature_field_name="answer"),
            ],
            async_streaming=True,
        )
        print("2. streamify(ChainOfThought), listening to `reasoning` and `answer`:")
        chunks: dict[str, list[str]] = {"reasoning": [], "answer": []}
        first: dict[str, float] = {}
        final: Any = None
        t0 = time.perf_counter()
        async for item in streamed(question=QUESTIONS[1][0]):
            at = time.perf_counter() - t0
            if isinstance(item, dx.StreamResponse):
                field = item.signature_field_name
                first.setdefault(field, at)
                chunks[field].append(item.chunk)
                last = " (last)" if item.is_last_chunk else ""
                print(f"   +{at:6.3f}s {field:<9} {item.chunk!r}{last}")
            else:
                final = item
        total = time.perf_counter() - t0
        print(f"   +{total:6.3f}s Prediction: answer={getattr(final, 'answer', None)!r}")
        for field, pieces in chunks.items():
            when = f"{first[field]:.3f}s" if field in first else "never"
            same = "".join(pieces) == str(getattr(final, field, None))
            print(
                f"   {field}: {len(pieces)} chunks, first at {when}; joined == Prediction: {same}"
            )
        print(f"   final Prediction at {total:.3f}s")
        print(f"3. streamed usage: {_usage(final)}")

        devset = [dx.Example(question=q, answer=a).with_inputs("question") for q, a in QUESTIONS]
        evaluate = dx.Evaluate(
            devset=devset, metric=dx.answer_exact_match, num_threads=args.threads
        )
        t0 = time.perf_counter()
        result = await evaluate.acall(dx.Predict(QA))
        elapsed = time.perf_counter() - t0
        print(f"4. Evaluate.acall: {len(result.results)} examples in {elapsed:.2f}s")
        print(f"   {result.summary()}")
        for example, prediction, score in result.results:
            answer = prediction.answer if prediction is not None else None
            print(f"   {example.question:<16} -> {answer!r:<8} gold {example.answer:<3} {score}")
    print("OK")


def main(argv: list[str] | None = None) -> int:
    """Run the steps; a typed library error is printed by name (exit 1), not a traceback."""
    args = parse_args(argv)
    try:
        asyncio.run(run(args))
    except dx.DSPexError as exc:
        print(f"FAILED: {type(exc).__name__}: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
