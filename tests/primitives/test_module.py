"""Module: walking predictors with DSPy-style names, copies, state and files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Self

import pytest

from dspex_actors import ProgramLoadError
from dspex_actors.primitives import Example, Module, Parameter


class FakeParam(Parameter):
    """A stand-in predictor: state is a list of demos."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.demos: list[Any] = []
        self.lm: Any = None

    def reset(self) -> None:
        self.demos = []

    def dump_state(self) -> dict[str, Any]:
        return {"tag": self.tag, "demos": [dict(d) for d in self.demos]}

    def check_state(self, state: Any, name: str = "self") -> None:
        if state.get("tag") != self.tag:
            raise ProgramLoadError(f"predictor '{name}' tag mismatch")

    def load_state(self, state: Any) -> Self:
        self.demos = [Example(d) for d in state["demos"]]
        return self


class Inner(Module):
    def __init__(self) -> None:
        super().__init__()
        self.predict = FakeParam("inner")


class Program(Module):
    def __init__(self) -> None:
        super().__init__()
        self.first = FakeParam("first")
        self.steps = [FakeParam("s0"), Inner()]
        self.by_key = {"a": FakeParam("ka")}
        self.alias = self.first
        self.not_a_param = ["text", 3]

    def forward(self, **kwargs: Any) -> Any:
        return {"echo": kwargs}


class NoInit(Module):
    """A subclass that never calls super().__init__() still works."""

    def __init__(self) -> None:
        self.p = FakeParam("p")

    def forward(self, x: int) -> int:
        return x + 1


def test_named_predictors_uses_dspy_names() -> None:
    program = Program()
    names = [name for name, _ in program.named_predictors()]
    assert names == ["first", "steps[0]", "steps[1].predict", "by_key['a']"]
    assert program.predictors()[0] is program.first
    assert len(program.parameters()) == 4


def test_compiled_sub_modules_are_frozen() -> None:
    program = Program()
    program.steps[1]._compiled = True
    assert "steps[1].predict" not in [name for name, _ in program.named_predictors()]


def test_call_runs_forward_and_subclass_without_init() -> None:
    assert Program()(q=1) == {"echo": {"q": 1}}
    module = NoInit()
    assert module(x=1) == 2
    assert [name for name, _ in module.named_predictors()] == ["p"]
    with pytest.raises(NotImplementedError, match="Module"):
        Module()()


def test_callbacks_see_start_and_end() -> None:
    events: list[tuple[str, Any]] = []

    class Recorder:
        def on_module_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
            events.append(("start", inputs))

        def on_module_end(self, call_id: str, outputs: Any, exception: Any) -> None:
            events.append(("end", outputs))

    program = Program()
    program.callbacks = [Recorder()]
    program(q=2)
    assert events == [("start", {"args": (), "kwargs": {"q": 2}}), ("end", {"echo": {"q": 2}})]


def test_deepcopy_and_reset_copy() -> None:
    program = Program()
    program.first.demos = [Example(q="1", a="2")]
    clone = program.deepcopy()
    assert clone.first is not program.first
    assert clone.alias is clone.first
    assert clone.first.demos == program.first.demos
    clone.first.demos.append(Example(q="x"))
    assert len(program.first.demos) == 1
    fresh = program.reset_copy()
    assert fresh.first.demos == []
    assert program.first.demos == [Example(q="1", a="2")]


def test_map_named_predictors_and_set_lm() -> None:
    program = Program()
    del program.alias  # an alias would keep pointing at the replaced predictor
    program.map_named_predictors(lambda p: FakeParam(p.tag + "!"))
    assert [p.tag for p in program.predictors()] == ["first!", "s0!", "inner!", "ka!"]
    program.set_lm("lm-1")
    assert program.get_lm() == "lm-1"
    program.first.lm = "lm-2"
    with pytest.raises(ValueError, match="different"):
        program.get_lm()


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    program = Program()
    program.steps[0].demos = [Example(q="1", a="2", augmented=True)]
    path = tmp_path / "program.json"
    program.save(path)
    saved = json.loads(path.read_text())
    assert list(saved) == ["first", "steps[0]", "steps[1].predict", "by_key['a']", "metadata"]
    assert saved["metadata"]["dependency_versions"]["python"]
    fresh = Program().load(path)
    assert fresh.steps[0].demos == [Example(q="1", a="2", augmented=True)]
    assert isinstance(fresh.steps[0].demos[0], Example)


def test_load_mismatch_names_the_predictor(tmp_path: Path) -> None:
    path = tmp_path / "program.json"
    Program().save(path)
    other = Inner()
    with pytest.raises(ProgramLoadError, match=r"no state for predictor\(s\) \['predict'\]"):
        other.load(path)
    state = json.loads(path.read_text())
    state["steps[0]"]["tag"] = "other"
    path.write_text(json.dumps(state))
    program = Program()
    program.first.demos = [Example(keep="me")]
    with pytest.raises(ProgramLoadError, match="steps\\[0\\]"):
        program.load(path)
    assert program.first.demos == [Example(keep="me")], "a failed load must change nothing"


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "cannot read"), ("{not json", "not valid JSON"), ("[1, 2]", "JSON object")],
)
def test_load_unreadable_files(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "bad.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ProgramLoadError, match=message):
        Program().load(path)


def test_save_rejects_unserialisable_demo_values(tmp_path: Path) -> None:
    program = Program()
    program.first.demos = [Example(q=object())]
    with pytest.raises(TypeError, match="object"):
        program.save(tmp_path / "p.json")
    assert list(tmp_path.iterdir()) == [], "no half-written file is left behind"
