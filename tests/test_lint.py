"""The tree stays clean: notebooks committed without outputs and with the recipe on the page,
no removed Keras APIs, nothing POSIX-only in helpers, no article file numbers shown to readers."""

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import setup

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
TRAINING = [p for p in NOTEBOOKS if p.stem[:2] in ("01", "02", "03", "04", "05")]
# The removed APIs, each written as a split pattern so that this file does not spell out the
# names it forbids (a plain grep of the tree for them stays empty).
REMOVED = re.compile(r"fit_(?:generator)|predict_(?:classes)|ImageData(?:Generator)|layers\.(?:experimental)|\blr(?:=)")
POSIX_ONLY = {"fcntl", "termios", "pwd", "grp", "resource"}  # absent on Windows


def _sources():
    for folder in ("helpers", "notebooks", "benchmarks", "tests"):
        for path in sorted((ROOT / folder).rglob("*")):
            if path.suffix in (".py", ".ipynb") and path != Path(__file__).resolve():
                yield path


def _code(path: Path) -> str:
    return "\n".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code")


def test_there_are_notebooks():
    assert len(NOTEBOOKS) == 7 and len(TRAINING) == 5


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_committed_without_outputs_and_starts_with_parameters(path):
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert "parameters" in code[0].get("metadata", {}).get("tags", []), "first code cell must be tagged"
    dirty = [i for i, c in enumerate(code) if c.get("outputs") or c.get("execution_count")]
    assert not dirty, f"code cells {dirty} have outputs: run nbstripout"
    assert "papermill" not in nb.get("metadata", {}), "papermill metadata left in the notebook"


@pytest.mark.parametrize("path", TRAINING, ids=lambda p: p.stem)
def test_the_recipe_is_on_the_page_in_plain_keras(path):
    code = _code(path)
    for what, pattern in (("a keras.applications base", r"keras\.applications\.[A-Z]\w*\("),
                          ("include_top=False", r"include_top=False"), ("freezing", r"\.trainable\s*=\s*False"),
                          ("the head", r"keras\.layers\.Dense\("), ("compile", r"\.compile\("),
                          ("an optimizer with its learning rate", r"keras\.optimizers\.\w+\(learning_rate="),
                          ("fit", r"\.fit\(")):
        assert re.search(pattern, code), f"{path.stem} lacks {what} in its code cells"
    for name in ("TrainPlan", "run_config", "build_classifier", "apply_strategy"):
        assert name not in code, f"{path.stem} still speaks the old course-only API ({name})"


@pytest.mark.parametrize("stem", ["02_cifar10_resnet50_upsampling_finetune", "03_tf_flowers_unfreezing_strategies"])
def test_the_fine_tuning_notebooks_unfreeze_recompile_and_continue_the_epochs(stem):
    code = _code(ROOT / "notebooks" / f"{stem}.ipynb")
    assert re.search(r"\.trainable\s*=\s*True", code) and "initial_epoch=" in code
    assert len(re.findall(r"\.compile\(", code)) >= 2 or "def compile_for" in code


def test_readers_never_see_an_articles_file_number():
    pattern = re.compile(r"[Aa]rticles? 00[0-4]|\b00[0-4]_[0-9a-f]{6}")
    texts = [*NOTEBOOKS, ROOT / "README.md", ROOT / "data" / "README.md", *sorted((ROOT / "helpers").glob("*.py"))]
    hits = [f"{p.relative_to(ROOT)}: {m.group(0)}" for p in texts for m in pattern.finditer(p.read_text())]
    assert not hits, hits


def test_every_colab_setup_cell_installs_from_the_one_course_repository():
    for path in NOTEBOOKS:
        found = re.findall(r'COURSE_REPO = "([^"]+)"', _code(path))
        assert found == [setup.COURSE_REPO.removeprefix("https://")], path.stem
        assert '%pip install -q "transfer-learning-course @ git+https://{COURSE_REPO}"' in _code(path)
    assert setup.COURSE_REPO in (ROOT / "README.md").read_text()


def test_no_removed_keras_apis():
    hits = []
    for path in _sources():
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if REMOVED.search(line):
                hits.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()[:80]}")
    assert not hits, "removed Keras APIs:\n" + "\n".join(hits)


def test_helpers_import_nothing_posix_only_and_build_paths_with_pathlib():
    hits = []
    for path in sorted((ROOT / "helpers").glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            hits += [f"{path.name}: imports {n}" for n in names if n.split(".")[0] in POSIX_ONLY]
            if isinstance(node, ast.Attribute) and node.attr == "path" and getattr(node.value, "id", "") == "os":
                hits.append(f"{path.name}:{node.lineno}: os.path (use pathlib)")
    assert not hits, hits


def test_helpers_import_where_posix_only_modules_do_not_exist():
    """As on Windows: every helpers module imports with the POSIX-only modules made unimportable."""
    modules = sorted(p.stem for p in (ROOT / "helpers").glob("*.py") if p.stem != "__init__")
    script = ("import sys\n" + "".join(f"sys.modules[{name!r}] = None\n" for name in sorted(POSIX_ONLY))
              + "".join(f"import helpers.{m}\n" for m in modules) + "print('imported', len(sys.modules))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0 and "imported" in done.stdout, done.stderr[-2000:]
