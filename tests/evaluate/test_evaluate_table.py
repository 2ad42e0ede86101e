"""Evaluate(display_table=...) prints a plain-text table; float(result) is the score."""

from __future__ import annotations

from collections.abc import Callable

import pytest

import dspex_actors as dx
from dspex_actors.evaluate import Evaluate, answer_exact_match
from dspex_actors.primitives import Example
from dspex_actors.testing import LocalLMServer, arithmetic_dataset

MakeServer = Callable[..., LocalLMServer]


def _devset(n: int) -> list[Example]:
    rows = arithmetic_dataset(n, seed=11)
    devset = [
        Example(question=r["question"], answer=r["answer"]).with_inputs("question") for r in rows
    ]
    devset[1] = Example(question=rows[1]["question"], answer="wrong").with_inputs("question")
    return devset


@pytest.fixture
def lm(make_lm_server: MakeServer) -> dx.LM:
    server = make_lm_server(latency=0.0)
    return dx.LM("openai/local-model", api_base=server.url, api_key="test", num_retries=0)


def test_display_table_true_prints_every_row(lm: dx.LM, capsys: pytest.CaptureFixture[str]) -> None:
    devset = _devset(5)
    with dx.ActorSystem(lm=lm):
        result = Evaluate(devset=devset, metric=answer_exact_match, display_table=True)(
            dx.Predict("question -> answer")
        )
    assert float(result) == result.score == 80.0
    out = capsys.readouterr().out
    lines = out.rstrip("\n").splitlines()
    header = lines[0].split()
    assert header == ["index", "question", "example_answer", "pred_answer", "answer_exact_match"]
    assert set(lines[1]) <= {"-", " "}
    assert len(lines) == 2 + 5
    assert lines[2].split()[0] == "0"
    assert lines[2].endswith("✔️ [True]")
    assert "wrong" in lines[3] and lines[3].endswith("✔️ [False]")
    assert "more rows not displayed" not in out


def test_display_table_n_prints_n_rows_and_says_how_many_more(
    lm: dx.LM, capsys: pytest.CaptureFixture[str]
) -> None:
    with dx.ActorSystem(lm=lm):
        result = Evaluate(devset=_devset(6), metric=answer_exact_match)(
            dx.Predict("question -> answer"), display_table=2
        )
    lines = capsys.readouterr().out.rstrip("\n").splitlines()
    assert len(lines) == 2 + 2 + 1
    assert lines[-1] == "... 4 more rows not displayed ..."
    assert result.table(1).splitlines()[-1] == "... 5 more rows not displayed ..."


def test_no_table_by_default_and_a_bad_value_is_refused(
    lm: dx.LM, capsys: pytest.CaptureFixture[str]
) -> None:
    with dx.ActorSystem(lm=lm):
        Evaluate(devset=_devset(2), metric=answer_exact_match)(dx.Predict("question -> answer"))
    assert capsys.readouterr().out == ""
    with pytest.raises(dx.ConfigurationError, match="display_table takes True, False or"):
        Evaluate(devset=_devset(2), metric=answer_exact_match, display_table=-1)


def test_failed_rows_show_their_error_and_long_cells_are_cut() -> None:
    from dspex_actors.evaluate._table import format_table

    rows = [
        {"index": 0, "question": "word " * 30, "m": 0.5, "error_type": None, "error": None},
        {"index": 1, "question": "q", "m": 0.0, "error_type": "LMTimeoutError", "error": "late"},
    ]
    lines = format_table(rows, "m").splitlines()
    assert lines[0].split() == ["index", "question", "error_type", "error", "m"]
    assert "..." in lines[2] and lines[2].endswith("✔️ [0.500]")
    assert "LMTimeoutError" in lines[3]
