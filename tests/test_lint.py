"""The tree stays clean: notebooks committed without outputs, typed parameters and the recipe on the
page; no removed Keras APIs; helpers small, without import cycles, POSIX-only modules or the course's
commands; no article file numbers shown to readers."""

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
    for folder in ("helpers", "course", "notebooks", "benchmarks", "tests"):
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


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_parameter_is_typed_commented_and_a_raw_value(path):
    import papermill

    cell = "".join(json.loads(path.read_text())["cells"][1]["source"])
    assignments = [line for line in cell.splitlines() if re.match(r"^[A-Z_]+\s*[:=]", line)]
    assert assignments, path.stem
    for line in assignments:
        match = re.match(r"^([A-Z_]+): [A-Za-z\[\], ]+ = (.+?)\s+# \S", line)
        assert match, f"{path.stem}: {line!r} is not `NAME: type = value  # comment`"
        ast.literal_eval(match.group(2))  # a raw value, not an expression
    listed = papermill.inspect_notebook(str(path))
    assert len(listed) == len(assignments) and "Unknown type" not in str(listed)


@pytest.mark.parametrize("path", TRAINING, ids=lambda p: p.stem)
def test_the_recipe_is_on_the_page_in_plain_keras(path):
    code = _code(path)
    for what, pattern in (("a keras.applications base", r"keras\.applications\.[A-Z]\w*\("),
                          ("include_top=False", r"include_top=False"), ("freezing", r"\.trainable\s*=\s*False"),
                          ("the head", r"keras\.layers\.Dense\("), ("compile", r"\.compile\("),
                          ("an optimizer with its learning rate", r"keras\.optimizers\.\w+\(learning_rate="),
                          ("fit on the image model", r"\bmodel\.fit\(|\bhistory = model\.fit\("),
                          ("evaluate", r"\.evaluate\(test_ds"), ("predict", r"\.predict\(test_ds")):
        assert re.search(pattern, code), f"{path.stem} lacks {what} in its code cells"
    for bookkeeping in ("strategy.scope()", "jit_compile=", "settings.epochs_for", "settings.verbose"):
        assert bookkeeping not in code, f"{path.stem} puts {bookkeeping} in the lesson"


@pytest.mark.parametrize("stem", ["03_cifar10_resnet50_upsampling_finetune", "04_tf_flowers_unfreezing_strategies"])
def test_the_fine_tuning_notebooks_unfreeze_recompile_and_continue_the_epochs(stem):
    code = _code(ROOT / "notebooks" / f"{stem}.ipynb")
    assert re.search(r"\.trainable\s*=\s*True", code) and "initial_epoch=" in code
    assert len(re.findall(r"\.compile\(", code)) >= 2 or "def compile_at" in code


def test_pages_no_longer_explain_their_number():
    assert not [p.stem for p in NOTEBOOKS if "simplest first" in p.read_text()]


def test_readers_never_see_an_articles_file_number():
    pattern = re.compile(r"[Aa]rticles? 00[0-4]|\b00[0-4]_[0-9a-f]{6}")
    texts = [*NOTEBOOKS, ROOT / "README.md", ROOT / "data" / "README.md", *sorted((ROOT / "helpers").glob("*.py")),
             *sorted((ROOT / "course").glob("*.py"))]
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


HELPERS = sorted((ROOT / "helpers").glob("*.py"))


def _imports(path: Path) -> set[str]:
    """The helpers modules a module imports, at its top or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module == "helpers":
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("helpers."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("helpers.")}
    return found


def test_helpers_have_no_import_cycle_and_never_import_the_commands():
    graph = {p.stem: _imports(p) - {p.stem} for p in HELPERS}
    state: dict[str, int] = {}

    def visit(module, path):
        if state.get(module) == 1:
            raise AssertionError(f"import cycle: {' -> '.join([*path, module])}")
        if state.get(module) != 2:
            state[module] = 1
            for other in sorted(graph.get(module, ())):
                visit(other, [*path, module])
            state[module] = 2

    for module in graph:
        visit(module, [])
    assert not [p.name for p in HELPERS if re.search(r"^\s*(from|import) course\b", p.read_text(), re.M)]


def test_helpers_modules_are_small_with_one_base_error_class():
    sizes = {p.name: len(p.read_text().splitlines()) for p in HELPERS}
    assert max(sizes.values()) <= 400, sizes
    classes = [(p.name, node) for p in HELPERS for node in ast.walk(ast.parse(p.read_text()))
               if isinstance(node, ast.ClassDef) and any("Error" in ast.unparse(b) or "Exception" in ast.unparse(b)
                                                          for b in node.bases)]
    assert {name for name, _ in classes} == {"errors.py"}, "error classes outside helpers/errors.py"
    bases = {node.name: [ast.unparse(b) for b in node.bases] for _, node in classes}
    assert bases.pop("CourseError") == ["Exception"] and all("CourseError" in b for b in bases.values()), bases


def test_private_keras_attributes_are_read_in_one_module_only():
    """An attribute `x._name` that no course module defines is someone else's private one (Keras's):
    only helpers/keras_private.py may touch those, so a Keras upgrade has one place to check."""
    modules = [*HELPERS, *sorted((ROOT / "course").glob("*.py"))]
    trees = {p: ast.parse(p.read_text()) for p in modules}
    own = {n.name for t in trees.values() for n in ast.walk(t) if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    own |= {n.attr for t in trees.values() for n in ast.walk(t)  # self._name = ...: the course's own
            if isinstance(n, ast.Attribute) and isinstance(n.ctx, ast.Store) and ast.unparse(n.value) == "self"}
    foreign = {(p.name, n.attr) for p, t in trees.items() for n in ast.walk(t)
               if isinstance(n, ast.Attribute) and n.attr.startswith("_") and not n.attr.startswith("__")
               and n.attr not in own and p.name != "keras_private.py"}
    foreign |= {(p.name, n.value) for p, t in trees.items() for n in ast.walk(t) if p.name != "keras_private.py"
                and isinstance(n, ast.Constant) and n.value in ("_seed_generators", "_keras_history", "_initial_epoch")}
    # IPython's, in the custom-exception handler that shows a course error as one line (setup.start)
    assert foreign == {("setup.py", "_showtraceback")}, sorted(foreign)


def test_every_public_helper_says_where_the_course_uses_it():
    """Each module's docstring names the notebooks or the section that use it (d2l's habit)."""
    for path in HELPERS:
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        assert re.search(r"notebook|every notebook|Setup|section", doc, re.I), f"{path.name}: {doc[:80]!r}"


def test_helpers_import_where_posix_only_modules_do_not_exist():
    """As on Windows: every helpers module imports with the POSIX-only modules made unimportable."""
    modules = sorted(p.stem for p in (ROOT / "helpers").glob("*.py") if p.stem != "__init__")
    script = ("import sys\n" + "".join(f"sys.modules[{name!r}] = None\n" for name in sorted(POSIX_ONLY))
              + "".join(f"import helpers.{m}\n" for m in modules) + "print('imported', len(sys.modules))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0 and "imported" in done.stdout, done.stderr[-2000:]
