"""The notebooks run top to bottom in a real Jupyter kernel against the embedded emulator (and are
committed without outputs): no error, nothing on stderr and no warning in any output cell, as a user
would see them. The quickstart follows the README's notebook recipe: the emulator started in its
own cell, batches in later cells, status and result in others, ``emu.stop()`` last."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

ROOT = Path(__file__).parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
WARNING = re.compile(r"\w*Warning\b|\bWARNING\b|\bwarn(ing)?:", re.IGNORECASE)


def _text(output) -> str:
    """What an output cell shows as text: a stream's text, a result's plain text, a traceback."""
    if output.output_type == "stream":
        return output.text
    if output.output_type == "error":
        return f"{output.ename}: {output.evalue}"
    data = output.get("data", {})
    return str(data.get("text/plain", "")) + str(data.get("text/html", ""))


def _code(source: str) -> list[str]:
    """The statements of a cell or block: comments and blank lines dropped, spaces trimmed."""
    lines = (line.split("  #")[0].split("# ")[0].strip() for line in source.splitlines())
    return [line for line in lines if line]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_top_to_bottom_without_errors_stderr_or_warnings(path, tmp_path, monkeypatch):
    book = nbformat.read(path, as_version=4)
    assert all(not c.get("outputs") for c in book.cells if c.cell_type == "code"), (
        "commit without outputs"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)  # the notebook's own emulator, nothing else
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    monkeypatch.delenv("GOOGLE_GEMINI_BASE_URL", raising=False)
    nbclient.NotebookClient(
        book, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    outputs = [(n, o) for n, c in enumerate(book.cells) if c.cell_type == "code" for o in c.outputs]
    assert outputs, "the notebook showed nothing"
    errors = [(n, _text(o)) for n, o in outputs if o.output_type == "error"]
    assert errors == []
    stderr = [(n, o.text) for n, o in outputs if o.get("name") == "stderr"]
    assert stderr == [], "a notebook shows stderr in red, as an error"
    warnings = [(n, _text(o)[:300]) for n, o in outputs if WARNING.search(_text(o))]
    assert warnings == []


def test_the_quickstart_follows_the_readme_recipe_across_cells():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    recipe = next(
        block
        for block in re.findall(r"```python\n(.*?)```", readme, re.DOTALL)
        if "Emulator().start()" in block
    )
    cells = [
        c.source
        for c in nbformat.read(ROOT / "notebooks" / "quickstart.ipynb", as_version=4).cells
        if c.cell_type == "code"
    ]
    first = _code(cells[0])
    started = [line for line in _code(recipe) if line.startswith(("emu", "os.environ"))]
    assert started and all(line in first for line in started), (recipe, cells[0])
    assert _code(cells[-1]) == ["emu.stop()"]
    middle = "\n".join(cells[1:-1])
    for step in ("batch_generate(", "wait=False", "run.status()", "run.result()"):
        assert step in middle, step
