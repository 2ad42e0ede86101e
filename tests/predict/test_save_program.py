"""save(dir, save_program=True) writes the whole program with cloudpickle; dx.load reads it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pydantic
import pytest

import dspex_actors as dx
from dspex_actors.system import ActorSystem
from dspex_actors.testing import LocalLMServer, fixed_responder
from tests.predict.conftest import API_KEY, make_lm

SystemFor = Callable[..., tuple[ActorSystem, LocalLMServer]]
ROOT = Path(__file__).resolve().parents[2]
REPLY = '[[ ## reasoning ## ]]\nr\n\n[[ ## verdict ## ]]\n{"label": "true", "confidence": 0.9}'


class Verdict(pydantic.BaseModel):
    label: str
    confidence: float


class Classify(dx.Signature):
    """Classify the claim."""

    claim: str = dx.InputField()
    verdict: Verdict = dx.OutputField()


class Pipeline(dx.Module):
    """Two steps: a ChainOfThought, then a Predict with a pydantic output."""

    def __init__(self) -> None:
        super().__init__()
        self.judge = dx.ChainOfThought("claim -> verdict")
        self.classify = dx.Predict(Classify, temperature=0.2)

    def forward(self, claim: str) -> dx.Prediction:
        first = self.judge(claim=claim)
        return self.classify(claim=f"{claim} / {first.verdict}")


def _program(lm: dx.LM) -> Pipeline:
    program = Pipeline()
    program.judge.predict.demos = [dx.Example(claim="c", reasoning="r", verdict="v")]
    program.classify.lm = lm
    return program


def test_whole_program_round_trip_without_credentials(
    tmp_path: Path, system_for: SystemFor
) -> None:
    _, server = system_for(fixed_responder(REPLY))
    program = _program(make_lm(server))
    target = tmp_path / "saved"
    program.save(target, save_program=True)
    assert sorted(p.name for p in target.iterdir()) == ["metadata.json", "program.pkl"]
    assert API_KEY.encode() not in (target / "program.pkl").read_bytes()
    metadata = json.loads((target / "metadata.json").read_text())
    assert (
        metadata["dependency_versions"]["python"] == f"{sys.version_info[0]}.{sys.version_info[1]}"
    )

    loaded = dx.load(target, allow_pickle=True)
    assert type(loaded) is Pipeline
    assert loaded.judge.predict.demos[0].verdict == "v"
    assert loaded.judge.predict.signature == program.judge.predict.signature
    assert loaded.classify.config == {"temperature": 0.2}
    assert loaded.classify.lm.api_base == server.url
    assert loaded.classify.lm.api_key is None or loaded.classify.lm.api_key != API_KEY
    assert loaded(claim="x").verdict == Verdict(label="true", confidence=0.9)
    assert server.stats().requests_total == 2


def test_credentials_in_proxy_and_api_base_urls_stay_out(tmp_path: Path) -> None:
    lm = dx.LM(
        "openai/m",
        api_base="http://user:base-secret@127.0.0.1:9/v1",
        api_key=API_KEY,
        proxy="http://proxyuser:proxy-secret@127.0.0.1:3128",
    )
    dx.Predict("q -> a", lm=lm).save(tmp_path / "p", save_program=True)
    data = (tmp_path / "p" / "program.pkl").read_bytes()
    for secret in (API_KEY, "base-secret", "proxy-secret", "proxyuser"):
        assert secret.encode() not in data
    loaded = dx.load(tmp_path / "p", allow_pickle=True)
    assert loaded.lm.api_base == "http://127.0.0.1:9/v1"
    assert loaded.lm.proxy is None


def test_load_refuses_without_allow_pickle(tmp_path: Path) -> None:
    dx.Predict("q -> a").save(tmp_path / "p", save_program=True)
    with pytest.raises(dx.ProgramLoadError, match="unpickling runs code from the file"):
        dx.load(tmp_path / "p")
    with pytest.raises(dx.ProgramLoadError, match=r"has no program\.pkl"):
        dx.load(tmp_path, allow_pickle=True)
    with pytest.raises(dx.ProgramLoadError, match="not a saved program directory"):
        dx.load(tmp_path / "missing", allow_pickle=True)


def test_save_program_needs_a_directory_path(tmp_path: Path) -> None:
    with pytest.raises(dx.ConfigurationError, match="must have no suffix"):
        dx.Predict("q -> a").save(tmp_path / "p.json", save_program=True)


def test_json_save_stays_the_default(tmp_path: Path) -> None:
    target = tmp_path / "p.json"
    dx.Predict("q -> a").save(target)
    state = json.loads(target.read_text())
    assert set(state) == {"traces", "train", "demos", "signature", "lm", "metadata"}


def test_a_fresh_interpreter_loads_and_runs_the_program(
    tmp_path: Path, make_lm_server: Callable[..., LocalLMServer]
) -> None:
    server = make_lm_server(fixed_responder("[[ ## reasoning ## ]]\nr\n\n[[ ## answer ## ]]\n42"))
    cot = dx.ChainOfThought("question -> answer: int", lm=make_lm(server))
    cot.save(tmp_path / "cot", save_program=True)
    script = (
        "import sys, dspex_actors as dx\n"
        "p = dx.load(sys.argv[1], allow_pickle=True)\n"
        "with dx.ActorSystem(lm=p.predict.lm):\n"
        "    print(type(p).__name__, repr(p(question='six times seven').answer))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OPENAI_API_KEY": "from-env"}
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "cot")],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ChainOfThought 42"
    assert server.stats().requests_total == 1


def test_a_pkl_path_saves_the_state_with_cloudpickle(tmp_path: Path) -> None:
    qa = dx.Predict("question -> answer")
    qa.demos = [dx.Example(question="1 + 1?", answer="2")]
    qa.signature = qa.signature.with_instructions("Add the numbers.")
    path = tmp_path / "qa.pkl"
    qa.save(path)
    assert not path.read_bytes().startswith(b"{")  # a pickle, not JSON
    with pytest.raises(dx.ProgramLoadError, match="allow_pickle=True"):
        dx.Predict("question -> answer").load(path)
    fresh = dx.Predict("question -> answer").load(path, allow_pickle=True)
    assert fresh.signature.instructions == "Add the numbers."
    assert [dict(d) for d in fresh.demos] == [{"question": "1 + 1?", "answer": "2"}]
