"""After os.fork(): the child gets a fresh default system, never the parent's threads.

Each case runs as a script in its own process (forking pytest itself would copy the test
runner), against the local server of the test.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from dspex_actors.testing import LocalLMServer

REPO_ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 60.0


def _run(script: str, server: LocalLMServer) -> list[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env["LM_URL"] = server.url
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.splitlines()


def test_a_forked_child_starts_its_own_default_system(lm_server: LocalLMServer) -> None:
    lines = _run(
        """
        import os, sys
        import dspex_actors as dx
        dx.configure(lm=dx.LM("openai/local-model", api_base=os.environ["LM_URL"]))
        qa = dx.Predict("question -> answer")
        print("parent", qa(question="What is 2 + 3?").answer, flush=True)
        pid = os.fork()
        if pid == 0:
            print("child", qa(question="What is 4 + 4?").answer, flush=True)
            sys.exit(0)  # a normal exit: atexit runs and must not wait on the parent's threads
        _, status = os.waitpid(pid, 0)
        print("child exit", os.waitstatus_to_exitcode(status))
        print("parent again", qa(question="What is 1 + 1?").answer)
        """,
        lm_server,
    )
    assert lines == ["parent 5", "child 8", "child exit 0", "parent again 2"]
    assert lm_server.stats().requests_total == 3


def test_a_multiprocessing_fork_pool_works(lm_server: LocalLMServer) -> None:
    lines = _run(
        """
        import multiprocessing, os
        import dspex_actors as dx
        dx.configure(lm=dx.LM("openai/local-model", api_base=os.environ["LM_URL"]))
        qa = dx.Predict("question -> answer")

        def ask(i):
            return qa(question=f"What is {i} + 10?").answer

        if __name__ == "__main__":
            print(qa(question="What is 0 + 1?").answer)
            with multiprocessing.get_context("fork").Pool(2) as pool:
                print(pool.map(ask, range(6), chunksize=1))
        """,
        lm_server,
    )
    assert lines == ["1", str([str(i + 10) for i in range(6)])]


def test_an_explicit_system_used_in_a_child_says_to_start_one_there(
    lm_server: LocalLMServer,
) -> None:
    lines = _run(
        """
        import os, sys
        import dspex_actors as dx
        lm = dx.LM("openai/local-model", api_base=os.environ["LM_URL"])
        qa = dx.Predict("question -> answer")
        with dx.ActorSystem(lm=lm):
            print("parent", qa(question="What is 2 + 2?").answer, flush=True)
            pid = os.fork()
            if pid == 0:
                try:
                    qa(question="What is 3 + 3?")
                except dx.LMUnavailableError as exc:
                    print("child error:", exc, flush=True)
                with dx.ActorSystem(lm=lm):  # one of its own works
                    print("child", qa(question="What is 3 + 3?").answer, flush=True)
                sys.exit(0)
            _, status = os.waitpid(pid, 0)
            print("child exit", os.waitstatus_to_exitcode(status))
        """,
        lm_server,
    )
    assert lines[0] == "parent 4"
    assert lines[1].startswith("child error:") and "start an ActorSystem in the child" in lines[1]
    assert lines[2:] == ["child 6", "child exit 0"]
