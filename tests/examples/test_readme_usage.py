"""The README's usage example runs offline as printed: it keeps the README true."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 120.0


def _block(heading: str) -> str:
    """The first python block after ``heading`` in the README."""
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index(heading) :]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, f"README's {heading!r} section has no python block"
    return match.group(1)


def _run(code: str, tmp_path: Path) -> list[str]:
    """Run ``code`` as a script in ``tmp_path`` (no API key); its output lines."""
    script = tmp_path / "readme_example.py"
    script.write_text(code, encoding="utf-8")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env.pop("OPENAI_API_KEY", None)
    result = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_readme_usage_example_runs(tmp_path: Path) -> None:
    lines = _run(_block("## Usage"), tmp_path)
    assert lines[0] == "7"
    before = float(lines[1].removeprefix("before: "))
    after = float(lines[2].removeprefix("after: "))
    assert before < after == 100.0
    saved = json.loads((tmp_path / "qa.json").read_text(encoding="utf-8"))
    assert "api_base" not in json.dumps(saved)
    assert len(saved["demos"]) >= 1


def test_readme_async_example_runs(tmp_path: Path) -> None:
    lines = _run(_block("## asyncio and streaming"), tmp_path)
    assert lines[0] == "5"
    assert "100 answers" in lines
    assert "score: 100.0" in lines
    assert lines[-1] == "prediction: 42"
    pieces = [line for line in lines if line.startswith("piece:")]
    assert pieces and pieces[-1].endswith("True")


def test_readme_settings_example_runs(tmp_path: Path) -> None:
    lines = _run(_block("## Settings, callbacks and telemetry"), tmp_path)
    answers = [line for line in lines if not line.startswith("lm call done")]
    assert answers[:3] == ["3", "4", "6"]
    assert lines.count("lm call done: 1 choice(s) ") == 3  # the callback saw every LM call
    assert answers[3] == "small {'type': 'json_object'} 3"  # swapped in place, one cache
