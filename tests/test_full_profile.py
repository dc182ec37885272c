"""The full profile, proven offline: each notebook runs its real configuration (image sizes,
batch sizes, optimizers, both phases, every model and strategy) on miniature data sets stored
in the real formats, with random weights, LIMIT images per split and one epoch per phase."""

import papermill
import pytest
from conftest import write_cifar_batches, write_image_tree

from helpers import config, data, results

ROOT = config.project_root()
DRY_RUN = {"PROFILE": "full", "WEIGHTS": "none", "EPOCHS": 1, "FINE_TUNE_EPOCHS": 1}


@pytest.fixture(scope="module")
def real_formats(tmp_path_factory):
    """Miniature data sets in each source's own format."""
    root = tmp_path_factory.mktemp("real-formats")
    cats_dogs = root / "cats_and_dogs_filtered"
    write_image_tree(cats_dogs / "train", data.CATS_DOGS_CLASSES, 20, seed=1)
    write_image_tree(cats_dogs / "validation", data.CATS_DOGS_CLASSES, 10, seed=2)
    write_image_tree(root / "flowers" / "flower_photos", data.FLOWER_CLASSES, 10, seed=3)
    write_image_tree(root / "animals", ("cat", "cow", "dog", "elephant", "horse"), 10, seed=4)
    write_cifar_batches(root / "cifar" / "cifar-10-batches-py", per_batch=40)
    return root


def dry_run(stem: str, tmp_path, **parameters) -> list[dict]:
    """Execute a notebook headless on the full profile; return the records it wrote."""
    results_dir = tmp_path / "results"
    papermill.execute_notebook(
        str(ROOT / "notebooks" / f"{stem}.ipynb"), str(tmp_path / f"{stem}.ipynb"),
        parameters={**DRY_RUN, "RESULTS_DIR": str(results_dir), **parameters},
        cwd=str(ROOT / "notebooks"), progress_bar=False, kernel_name="python3",
    )
    records, skipped = results.load_records(results_dir)
    assert not skipped
    assert all(r["status"] == "ok" and r["profile"] == "full" and r["weights"] is None for r in records)
    return records


def settings_of(record: dict) -> tuple:
    return (record["model"], record["strategy"], record["image_size"], record["batch_size"],
            record["optimizer"], record["learning_rate"], record["epochs"], record["fine_tune_epochs"])


@pytest.mark.notebook
def test_03_runs_all_fourteen_configurations_at_224(real_formats, tmp_path):
    records = dry_run("03_tf_flowers_unfreezing_strategies", tmp_path,
                      DATA_DIR=str(real_formats / "flowers"), LIMIT=32)
    expected = {
        (model, strategy, 224, 32, "Adam", 1e-3, 1, 0 if strategy == "frozen" else 1)
        for model in ("resnet50", "mobilenet") for strategy in config.ARTICLE_STRATEGIES
    }
    assert {settings_of(r) for r in records} == expected
    for record in records:
        assert record["dataset"] == "tf_flowers"
        article = results.article_result(record["notebook"], record["model"], record["strategy"])
        assert record["trainable_params"] == article["trainable_params"]
        if record["strategy"] != "frozen":
            assert record["fine_tune_learning_rate"] == 1e-5


@pytest.mark.notebook
def test_05_runs_at_160_on_the_cats_and_dogs_tree(real_formats, tmp_path):
    records = dry_run("05_cats_vs_dogs_feature_extraction", tmp_path,
                      DATA_DIR=str(real_formats / "cats_and_dogs_filtered"), LIMIT=32)
    assert [settings_of(r) for r in records] == [
        ("mobilenet_v2", "frozen", 160, 32, "Adam", 1e-4, 1, 0)
    ]
    assert records[0]["trainable_params"] == 1281
