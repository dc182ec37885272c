"""The recipe lifts out: the cells of notebooks 01 and 03 tagged `recipe`, run in order in a fresh
kernel where the course's package cannot be imported, build, train, evaluate, predict, save the model
to MODEL_PATH and load it back, given only the names a learner would define themselves."""

import json
from pathlib import Path

import nbformat
import pytest
from conftest import write_image_tree
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_notebook

ROOT = Path(__file__).resolve().parent.parent
GIVEN = ["train_ds", "val_ds", "test_ds", "class_names", "IMAGE_SIZE", "EPOCHS", "FINE_TUNE_EPOCHS", "WEIGHTS",
         "callbacks", "MODEL_PATH"]
NO_HELPERS = """
import sys
sys.modules["helpers"] = None  # `import helpers` (or anything from it) now fails
sys.modules["course"] = None
"""


def recipe_cells(stem: str) -> list[str]:
    cells = json.loads((ROOT / "notebooks" / f"{stem}.ipynb").read_text())["cells"]
    return ["".join(c["source"]) for c in cells if "recipe" in c.get("metadata", {}).get("tags", [])]


def run_lifted(tmp_path: Path, setup: str, cells: list[str], check: str) -> None:
    notebook = new_notebook(cells=[new_code_cell(NO_HELPERS), new_code_cell(setup), *map(new_code_cell, cells),
                                   new_code_cell(check)])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    client = NotebookClient(notebook, timeout=900, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError, with the cell and its traceback, if any cell fails
    nbformat.write(notebook, tmp_path / "lifted.ipynb")


@pytest.mark.parametrize("stem", ["01_cats_vs_dogs_feature_extraction", "03_cifar10_resnet50_upsampling_finetune"])
def test_the_recipe_cells_use_only_what_a_learner_defines(stem):
    cells = recipe_cells(stem)
    assert len(cells) >= 6, f"{stem} has {len(cells)} cells tagged recipe"
    code = "\n".join(cells)
    for name in ("helpers", "settings", "log.", "logbook", "datasets.", "plots."):
        assert name not in code, f"{stem}'s recipe refers to {name!r}"
    for needed in ("keras.applications.", ".trainable = False", "model.compile(", "model.fit(", "model.evaluate(",
                   "model.predict(", "history.history", "model.save(MODEL_PATH)", "keras.saving.load_model(MODEL_PATH)"):
        assert needed in code, f"{stem}'s recipe lacks {needed}"


def test_the_cats_vs_dogs_recipe_runs_alone_on_a_clean_folder(tmp_path):
    """Notebook 01's recipe on a folder read with keras.utils.image_dataset_from_directory."""
    folder = tmp_path / "photos"
    for split, count in (("train", 12), ("validation", 6), ("test", 6)):
        write_image_tree(folder / split, ("cats", "dogs"), count, seed=len(split))
    setup = f"""
import keras
from pathlib import Path
IMAGE_SIZE, EPOCHS, FINE_TUNE_EPOCHS, WEIGHTS = 32, 1, 0, None
read = lambda split, shuffle: keras.utils.image_dataset_from_directory(
    Path({str(folder)!r}) / split, image_size=(IMAGE_SIZE, IMAGE_SIZE), batch_size=8, shuffle=shuffle, seed=1)
train_ds, val_ds, test_ds = read("train", True), read("validation", False), read("test", False)
class_names = train_ds.class_names
callbacks, MODEL_PATH = [], Path({str(tmp_path / "model.keras")!r})
"""
    check = f"""
assert [n for n in {GIVEN!r} if n not in globals()] == []
assert len(history.history["loss"]) == EPOCHS and 0 <= test_accuracy <= 1
assert test_logits.shape == (12, 1) and MODEL_PATH.exists() and same
"""
    run_lifted(tmp_path, setup, recipe_cells("01_cats_vs_dogs_feature_extraction"), check)


def test_the_cifar10_fine_tuning_recipe_runs_alone_on_arrays(tmp_path):
    """Notebook 03's recipe (freeze, train, unfreeze from layer 100, recompile, train on) on
    CIFAR-10-shaped arrays."""
    setup = f"""
import numpy as np
import tensorflow as tf
from pathlib import Path
IMAGE_SIZE, EPOCHS, FINE_TUNE_EPOCHS, WEIGHTS = 32, 1, 1, None
rng = np.random.default_rng(0)
def split(count):
    labels = np.arange(count) % 10
    images = rng.integers(0, 256, (count, 32, 32, 3)).astype("uint8")
    return tf.data.Dataset.from_tensor_slices((images, labels)).batch(10)
train_ds, val_ds, test_ds = split(40), split(20), split(20)
class_names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
callbacks, MODEL_PATH = [], Path({str(tmp_path / "model.keras")!r})
"""
    check = """
assert len(history.history["loss"]) == EPOCHS and len(history_fine.history["loss"]) == FINE_TUNE_EPOCHS
assert [l.name for l in base.layers if l.trainable] == [
    l.name for l in base.layers[100:] if not isinstance(l, keras.layers.BatchNormalization)]
assert test_logits.shape == (20, 10) and MODEL_PATH.exists() and same
"""
    run_lifted(tmp_path, setup, recipe_cells("03_cifar10_resnet50_upsampling_finetune"), check)
