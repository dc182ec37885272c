"""The full and laptop profiles, proven offline: each notebook runs its real configuration (image
sizes, batch sizes, optimizers, both phases, every model and strategy) on miniature data sets
stored in the real formats, with random weights, LIMIT images per split and one epoch per phase;
without data or ImageNet weights, the laptop profile stops at once with one sentence."""

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


@pytest.mark.notebook
def test_04_runs_both_backbones_at_224_on_a_class_folder(real_formats, tmp_path):
    records = dry_run("04_animals_mobilenetv2_vs_efficientnetv2", tmp_path,
                      DATA_DIR=str(real_formats / "animals"), LIMIT=32)
    assert {settings_of(r) for r in records} == {
        ("mobilenet_v2", "frozen", 224, 32, "Adam", 1e-3, 1, 0),
        ("efficientnetv2_b0", "frozen", 224, 32, "Adam", 1e-3, 1, 0),
    }
    assert all(r["trainable_params"] == 1280 * 5 + 5 and r["model_size_mb"] > 5 for r in records)
    assert {r["dataset"] for r in records} == {"animals"}


@pytest.mark.notebook
def test_01_runs_both_backbones_at_32_on_the_official_cifar_batches(real_formats, tmp_path):
    records = dry_run("01_cifar10_resnet50_vs_mobilenet", tmp_path,
                      DATA_DIR=str(real_formats / "cifar"), LIMIT=100)
    assert {settings_of(r) + (r["variant"],) for r in records} == {
        ("resnet50", "all", 32, 100, "SGD(momentum=0.9)", 1e-3, 1, 0, None),
        ("mobilenet", "all", 32, 100, "SGD(momentum=0.9)", 1e-3, 1, 0, None),
        # the head on the frozen base first: 1 epoch of the 1 (a quarter, at least one)
        ("mobilenet", "all", 32, 100, "SGD(momentum=0.9)", 1e-3, 1, 0, "head-first"),
    }
    assert {r["dataset"] for r in records} == {"CIFAR-10"}
    assert all(r["model_file"] for r in records)


@pytest.mark.notebook
def test_02_upsamples_to_224_and_fine_tunes_from_layer_100(real_formats, tmp_path):
    records = dry_run("02_cifar10_resnet50_upsampling_finetune", tmp_path,
                      DATA_DIR=str(real_formats / "cifar"), LIMIT=20)
    assert [settings_of(r) for r in records] == [
        ("resnet50", "from:100", 224, 20, "RMSprop", 1e-4, 1, 1)
    ]
    assert records[0]["fine_tune_learning_rate"] == 1e-5
    assert records[0]["trainable_params"] == 19_473_418  # layers 100-174 and the head
    # phase 1 trained the head on cached features, phase 2 the part above layer 100 on its cached inputs
    assert [p["inputs"] for p in records[0]["phases"]][0] == [[2048]]
    assert records[0]["phases"][1]["trainable_params"] == 19_473_418


@pytest.mark.notebook
def test_the_laptop_profile_without_data_or_weights_stops_at_once_with_one_sentence(real_formats, tmp_path):
    with pytest.raises(papermill.PapermillExecutionError) as error:
        dry_run("05_cats_vs_dogs_feature_extraction", tmp_path, PROFILE="laptop", WEIGHTS=None)
    assert error.value.ename == "DataError" and "cats_and_dogs_filtered.zip" in error.value.evalue
    with pytest.raises(papermill.PapermillExecutionError) as error:
        dry_run("05_cats_vs_dogs_feature_extraction", tmp_path, PROFILE="laptop", WEIGHTS=None,
                DATA_DIR=str(real_formats / "cats_and_dogs_filtered"))
    assert error.value.ename == "CourseError" and "ImageNet weights of MobileNetV2" in error.value.evalue
    assert "WEIGHTS = 'standin' or None" in error.value.evalue
