"""Notebooks are committed clean, and no removed Keras APIs creep back in."""

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
# The removed APIs, each written as a split pattern so that this file does not spell out the
# names it forbids (a plain grep of the tree for them stays empty).
REMOVED = re.compile(r"fit_(?:generator)|predict_(?:classes)|ImageData(?:Generator)|layers\.(?:experimental)|\blr(?:=)")


def _sources():
    for folder in ("helpers", "notebooks", "benchmarks", "tests"):
        for path in sorted((ROOT / folder).rglob("*")):
            if path.suffix in (".py", ".ipynb") and path != Path(__file__).resolve():
                yield path


def test_there_are_notebooks():
    assert NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_committed_without_outputs_and_starts_with_parameters(path):
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert "parameters" in code[0].get("metadata", {}).get("tags", []), "first code cell must be tagged"
    dirty = [i for i, c in enumerate(code) if c.get("outputs") or c.get("execution_count")]
    assert not dirty, f"code cells {dirty} have outputs: run nbstripout"
    assert "papermill" not in nb.get("metadata", {}), "papermill metadata left in the notebook"


def test_no_removed_keras_apis():
    hits = []
    for path in _sources():
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if REMOVED.search(line):
                hits.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()[:80]}")
    assert not hits, "removed Keras APIs:\n" + "\n".join(hits)
