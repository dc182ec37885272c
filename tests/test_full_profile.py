"""The full and laptop profiles, proven offline: each notebook runs its real configuration (image
sizes, batch sizes, optimizers, both phases, every model and strategy) on miniature data sets
stored in the real formats, with random weights, LIMIT images per split and one epoch per phase;
without data or ImageNet weights, the laptop profile stops at once with one sentence."""

import re

import papermill
import pytest
from conftest import write_cifar_batches, write_image_tree

from helpers import articles, records, settings
from helpers.sources import CATS_DOGS_CLASSES, CATS_DOGS_URL, FLOWER_CLASSES

ROOT = settings.project_root()
# Every notebook's parameters cell has these; FINE_TUNE_EPOCHS only 03 and 04 (the others refuse it).
DRY_RUN = {"PROFILE": "full", "WEIGHTS": "none", "EPOCHS": 1}
CATS_DOGS = "01_cats_vs_dogs_feature_extraction"


@pytest.fixture(scope="module")
def real_formats(tmp_path_factory):
    """Miniature data sets in each source's own format."""
    root = tmp_path_factory.mktemp("real-formats")
    cats_dogs = root / "cats_and_dogs_filtered"
    write_image_tree(cats_dogs / "train", CATS_DOGS_CLASSES, 20, seed=1)
    write_image_tree(cats_dogs / "validation", CATS_DOGS_CLASSES, 20, seed=2)  # 8 test images
    write_image_tree(root / "flowers" / "flower_photos", FLOWER_CLASSES, 10, seed=3)
    write_image_tree(root / "animals", ("cat", "cow", "dog", "elephant", "horse"), 10, seed=4)
    write_cifar_batches(root / "cifar" / "cifar-10-batches-py", per_batch=40)
    return root


def execute(stem: str, tmp_path, **parameters) -> list[dict]:
    """Execute a notebook headless; return the records it wrote."""
    results_dir = tmp_path / "results"
    papermill.execute_notebook(
        str(ROOT / "notebooks" / f"{stem}.ipynb"), str(tmp_path / f"{stem}.ipynb"),
        parameters={**DRY_RUN, "RESULTS_DIR": str(results_dir), **parameters},
        cwd=str(ROOT / "notebooks"), progress_bar=False, kernel_name="python3",
    )
    found, skipped = records.load_records(results_dir)
    assert not skipped
    return found


def dry_run(stem: str, tmp_path, **parameters) -> list[dict]:
    """The full profile with random weights: every record complete, made as asked."""
    found = execute(stem, tmp_path, **parameters)
    assert found
    for r in found:
        assert r["status"] == "ok" and r["profile"] == "full" and r["weights"] is None
        assert r["limit"] == parameters["LIMIT"] and r["notebook"] == stem
        assert r["resumed_epochs"] == 0, (r["title"], r["phases"])  # one uninterrupted run
    return found


def settings_of(record: dict) -> tuple:
    return (record["model"], record["strategy"], record["image_size"], record["batch_size"],
            record["optimizer"], record["learning_rate"], record["epochs"], record["fine_tune_epochs"])


@pytest.mark.notebook
def test_04_runs_all_fourteen_configurations_at_224(real_formats, tmp_path):
    found = dry_run("04_tf_flowers_unfreezing_strategies", tmp_path,
                    DATA_DIR=str(real_formats / "flowers"), LIMIT=32, FINE_TUNE_EPOCHS=1)
    expected = {
        (model, strategy, 224, 32, "Adam", 1e-3, 1, 0 if strategy == "frozen" else 1)
        for model in ("resnet50", "mobilenet") for strategy in settings.ARTICLE_STRATEGIES
    }
    assert len(found) == 14 and {settings_of(r) for r in found} == expected
    for record in found:
        assert record["dataset"] == "tf_flowers"
        article = articles.article_result(record["notebook"], record["model"], record["strategy"])
        assert record["trainable_params"] == article["trainable_params"]
        if record["strategy"] != "frozen":
            assert record["fine_tune_learning_rate"] == 1e-5


@pytest.mark.notebook
def test_01_runs_at_160_on_the_cats_and_dogs_tree(real_formats, tmp_path):
    found = dry_run(CATS_DOGS, tmp_path, DATA_DIR=str(real_formats / "cats_and_dogs_filtered"), LIMIT=32)
    assert [settings_of(r) for r in found] == [
        ("mobilenet_v2", "frozen", 160, 32, "Adam", 1e-4, 1, 0)
    ]
    assert found[0]["trainable_params"] == 1281  # one logit on 1,280 pooled features
    assert found[0]["dataset"] == "cats vs dogs" and found[0]["model_file"]


@pytest.mark.notebook
def test_01_runs_on_a_test_set_of_fewer_than_eight_images(real_formats, tmp_path):
    found = dry_run(CATS_DOGS, tmp_path, DATA_DIR=str(real_formats / "cats_and_dogs_filtered"), LIMIT=3,
                    BATCH_SIZE=3)
    assert [(r["batch_size"], r["limit"]) for r in found] == [(3, 3)]


@pytest.mark.notebook
def test_02_runs_both_backbones_at_224_on_a_class_folder(real_formats, tmp_path):
    found = dry_run("02_animals_mobilenetv2_vs_efficientnetv2", tmp_path,
                    DATA_DIR=str(real_formats / "animals"), LIMIT=32)
    assert {settings_of(r) for r in found} == {
        ("mobilenet_v2", "frozen", 224, 32, "Adam", 1e-3, 1, 0),
        ("efficientnetv2_b0", "frozen", 224, 32, "Adam", 1e-3, 1, 0),
    }
    assert all(r["trainable_params"] == 1280 * 5 + 5 and r["model_size_mb"] > 5 for r in found)
    assert {r["dataset"] for r in found} == {"animals"}
    assert len({r["split_fingerprint"] for r in found}) == 1


@pytest.mark.notebook
def test_05_runs_both_backbones_at_32_on_the_official_cifar_batches(real_formats, tmp_path):
    # two MobileNet epochs, so that its head-first variant has both phases (a quarter, at least one)
    found = dry_run("05_cifar10_resnet50_vs_mobilenet", tmp_path, DATA_DIR=str(real_formats / "cifar"),
                    LIMIT=100, EPOCHS={"resnet50": 1, "mobilenet": 2})
    assert {settings_of(r) + (r["variant"],) for r in found} == {
        ("resnet50", "all", 32, 100, "SGD(momentum=0.9)", 1e-3, 1, 0, None),
        ("mobilenet", "all", 32, 100, "SGD(momentum=0.9)", 1e-3, 2, 0, None),
        ("mobilenet", "all", 32, 100, "SGD(momentum=0.9)", 1e-3, 1, 1, "head-first"),
    }
    assert {r["dataset"] for r in found} == {"CIFAR-10"}
    assert all(r["model_file"] for r in found)
    plain = next(r for r in found if r["model"] == "mobilenet" and r["variant"] is None)
    head_first = next(r for r in found if r["variant"] == "head-first")
    # the head alone (Dense 1024, 512, 256, 128 and 10 on MobileNet's 1x1x1024 output), then everything
    head = (1024 * 1024 + 1024) + (1024 * 512 + 512) + (512 * 256 + 256) + (256 * 128 + 128) + (128 * 10 + 10)
    assert [p["trainable_params"] for p in head_first["phases"]] == [head, plain["trainable_params"]]
    assert head_first["fine_tune_learning_rate"] == 1e-3 and head_first["trainable_params"] == plain["trainable_params"]


@pytest.mark.notebook
def test_03_upsamples_to_224_and_fine_tunes_from_layer_100(real_formats, tmp_path):
    found = dry_run("03_cifar10_resnet50_upsampling_finetune", tmp_path, DATA_DIR=str(real_formats / "cifar"),
                    LIMIT=20, FINE_TUNE_EPOCHS=1)
    assert [settings_of(r) for r in found] == [
        ("resnet50", "from:100", 224, 20, "RMSprop", 1e-4, 1, 1)
    ]
    record = found[0]
    assert record["fine_tune_learning_rate"] == 1e-5 and record["dataset"] == "CIFAR-10"
    # layers 100-174 without their BatchNorm layers (Fix A keeps them frozen: 36,864 scales and
    # offsets fewer than with them), and the head's 2048 x 10 + 10
    assert record["trainable_params"] == 19_436_554
    # phase 1 the head alone, phase 2 from layer 100; both on the 32x32 images, upsampled inside
    assert [p["trainable_params"] for p in record["phases"]] == [20_490, 19_436_554]
    assert [p["inputs"] for p in record["phases"]] == [[[32, 32, 3]], [[32, 32, 3]]]


def _one_sentence(error) -> str:
    """The error's message, checked to be shown as one line that is one sentence."""
    assert len(error.traceback) == 1 and error.traceback[0].startswith(f"{error.ename}: ")
    assert error.evalue.endswith(".") and not re.search(r"\.\s+[A-Z]", error.evalue)  # no second sentence
    return error.evalue


@pytest.fixture
def bare_laptop(tmp_path, monkeypatch):
    """A machine with no data in the course's data/ folder and no Keras downloads (and offline)."""
    monkeypatch.setenv("COURSE_ROOT", str(tmp_path / "course"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    return tmp_path


@pytest.mark.notebook
def test_the_laptop_profile_without_imagenet_weights_stops_in_the_setup_with_one_sentence(
        real_formats, bare_laptop):
    with pytest.raises(papermill.PapermillExecutionError) as error:
        execute(CATS_DOGS, bare_laptop, PROFILE="laptop", WEIGHTS=None,
                DATA_DIR=str(real_formats / "cats_and_dogs_filtered"))
    message = _one_sentence(error.value)
    assert error.value.ename == "CourseError" and "setup.start(" in error.value.source
    assert message.startswith("The ImageNet weights of MobileNetV2 are not in "
                              f"{bare_laptop / 'keras' / 'models'}")
    assert "WEIGHTS = 'standin' or 'none'" in message
    assert not list((bare_laptop / "results").rglob("*.json"))


@pytest.mark.notebook
def test_the_laptop_profile_without_data_stops_at_the_data_with_one_sentence(bare_laptop, tmp_path):
    from helpers import backbones

    # where Keras keeps MobileNetV2's ImageNet weights at 160: present, so the data is asked for next
    # (the run stops before any model is built, so the file is never read)
    cached = bare_laptop / "keras" / "models" / backbones.get("mobilenet_v2").weights_file(160)
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"")
    with pytest.raises(papermill.PapermillExecutionError) as error:
        execute(CATS_DOGS, bare_laptop, PROFILE="laptop", WEIGHTS=None)
    message = _one_sentence(error.value)
    assert error.value.ename == "DataError" and "datasets.cats_vs_dogs(" in error.value.source
    assert message.startswith(f"Cats vs dogs is neither prepared by tensorflow_datasets in "
                              f"{tmp_path / 'tensorflow_datasets'}")
    for named in (CATS_DOGS_URL, "cats_and_dogs_filtered.zip", str(bare_laptop / "course" / "data")):
        assert named in message
    assert not list((bare_laptop / "results").rglob("*.json"))
