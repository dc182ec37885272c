"""`make reproduce` says what the full profile needs before any training, and stops when
something is missing and cannot be downloaded; on the laptop profile it estimates each notebook's
minutes on this machine from a calibration against a reference machine."""

import json
import sys

import nbformat
import pytest
import tensorflow as tf
from conftest import write_cifar_batches, write_image_tree
from nbformat.v4 import new_code_cell, new_notebook

from benchmarks import calibration
from course import preflight, run
from helpers.settings import CPU_HOURS, NOTEBOOKS
from helpers.sources import FLOWER_CLASSES

CATS_DOGS = "01_cats_vs_dogs_feature_extraction"
UPSAMPLING = "03_cifar10_resnet50_upsampling_finetune"
FLOWERS = "04_tf_flowers_unfreezing_strategies"
CIFAR = "05_cifar10_resnet50_vs_mobilenet"


@pytest.fixture
def gpus(monkeypatch):
    """The GPUs TensorFlow reports: none unless a test says otherwise (the same text on any machine)."""
    found = []
    monkeypatch.setattr(tf.config, "list_physical_devices",
                        lambda kind=None: list(found) if kind == "GPU" else [])
    return found


REFERENCE = {"name": "a quiet test machine", "calibration_gflops": 100.0,
             "minutes": {CATS_DOGS: 3.0, CIFAR: 8.0}}


@pytest.fixture
def calibrated(tmp_path, monkeypatch):
    """A stored reference and this machine's calibration, both faked: set `machine["calibration_gflops"]`."""
    path = tmp_path / "laptop_reference.json"
    path.write_text(json.dumps({"references": [REFERENCE]}))
    monkeypatch.setattr(calibration, "REFERENCE_FILE", path)
    machine = {"calibration_gflops": 100.0, "calibration_library": "numpy", "calibration_n": 2048, "load_average": 0.5}
    monkeypatch.setattr(calibration, "measure", lambda: dict(machine))
    return machine


def _marker_notebook(path, marker):
    """A notebook that leaves a file behind if it is ever executed."""
    nb = new_notebook()
    params = new_code_cell('PROFILE: str = "full"')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, new_code_cell(f"open({str(marker)!r}, 'w').write('ran')")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


def test_reproduce_offline_without_data_stops_before_running_anything(tmp_path, monkeypatch, capsys, gpus):
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    marker = tmp_path / "executed"
    for stem in (CIFAR, CATS_DOGS):
        _marker_notebook(notebooks / f"{stem}.ipynb", marker)
    monkeypatch.setenv("COURSE_ROOT", str(tmp_path))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))

    assert run.main(["--profile", "full", "--no-progress"]) == 1

    out = capsys.readouterr().out
    data = tmp_path / "data"
    assert "[MISS] 05  CIFAR-10" in out
    assert f"put it at {data}/cifar-10-python.tar.gz" in out
    assert "[MISS] 01  cats vs dogs" in out
    assert "prepare tfds cats_vs_dogs" in out and "cats_and_dogs_filtered.zip" in out and f"into {data}/" in out
    assert "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5" in out
    assert "mobilenet_1_0_224_tf_no_top.h5" in out  # notebook 05's 32x32 images use 224's weights
    assert "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_160_no_top.h5" in out  # notebook 01's size
    assert f"into {tmp_path / 'keras' / 'models'}/" in out
    assert "5 thing(s) missing" in out and "data/README.md" in out
    assert "GPU: none found" in out
    assert "Rough time: 01 ~2 h, 05 ~60 h; about 62 h in all" in out  # on this CPU
    assert "[1/" not in out and not marker.exists()  # nothing ran
    assert not list((tmp_path / "reports" / "full").glob("*.ipynb"))


def test_check_only_prints_the_checklist_and_runs_nothing(tmp_path, monkeypatch, capsys, gpus):
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    marker = tmp_path / "executed"
    _marker_notebook(notebooks / f"{UPSAMPLING}.ipynb", marker)
    monkeypatch.setenv("COURSE_ROOT", str(tmp_path))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    (tmp_path / "keras" / "models").mkdir(parents=True)
    (tmp_path / "keras" / "models" / "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5").write_bytes(b"w")
    write_cifar_batches(tmp_path / "data" / "cifar-10-batches-py")

    assert run.main(["--profile", "full", "--check-only", "--no-progress"]) == 0

    out = capsys.readouterr().out
    assert "[ok  ] 03  CIFAR-10" in out and "MISS" not in out
    assert not marker.exists()


def test_everything_in_place_is_found_and_ready(tmp_path, monkeypatch, gpus):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    models = tmp_path / "keras" / "models"
    models.mkdir(parents=True)
    for name in ("resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5", "mobilenet_1_0_224_tf_no_top.h5"):
        (models / name).write_bytes(b"weights")
    data_dir = tmp_path / "data"
    write_cifar_batches(data_dir / "cifar-10-batches-py")
    write_image_tree(data_dir / "flower_photos", FLOWER_CLASSES, per_class=2)

    items = preflight.needs([CIFAR, FLOWERS], data_dir)

    assert [(i.notebook[:2], i.what, i.status) for i in items] == [
        ("05", "CIFAR-10", "found"), ("05", "resnet50 ImageNet weights", "found"),
        ("05", "mobilenet ImageNet weights", "found"),
        ("04", "tf_flowers", "found"), ("04", "resnet50 ImageNet weights", "found"),
        ("04", "mobilenet ImageNet weights", "found"),
    ]
    assert items[0].detail == str(data_dir / "cifar-10-batches-py")
    assert items[1].detail == str(models / "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5")
    text, ready = preflight.report([CIFAR], data_dir)
    assert ready and "MISS" not in text and "missing" not in text


def test_the_notebooks_that_train_nothing_need_only_records(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    items = preflight.needs(["06_results_summary", "07_light_models_on_device"], tmp_path)
    assert [(i.notebook[:2], i.what, i.status) for i in items] == [("06", "result records", "found"),
                                                                   ("07", "result records", "found")]


def test_one_missing_weights_file_is_named(tmp_path, monkeypatch, gpus):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    data_dir = tmp_path / "data"
    write_cifar_batches(data_dir / "cifar-10-batches-py")
    text, ready = preflight.report([UPSAMPLING], data_dir)
    assert not ready and "What the full profile needs" in text
    assert "[ok  ] 03  CIFAR-10" in text
    assert "[MISS] 03  resnet50 ImageNet weights" in text and "1 thing(s) missing" in text


def test_the_laptop_profile_checks_the_weights_at_its_own_image_size(tmp_path, monkeypatch, gpus, calibrated):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    items = preflight.needs([CATS_DOGS], tmp_path, profile="laptop")
    assert items[-1].detail.endswith("mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_160_no_top.h5 into "
                                     f"{tmp_path / 'keras' / 'models'}/")
    text, ready = preflight.report([CATS_DOGS], tmp_path, profile="laptop")
    assert not ready and "What the laptop profile needs" in text
    assert "Rough time: 01" not in text and "01  about 3 min on this machine" in text  # not the full profile's hours


def test_the_laptop_checklist_gives_minutes_on_this_machine_and_names_the_reference(tmp_path, monkeypatch, gpus,
                                                                                   calibrated):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    text, _ = preflight.report([CATS_DOGS, CIFAR, "06_results_summary", "07_light_models_on_device"], tmp_path,
                               profile="laptop")
    assert "float32 matmul runs at 100 GFLOP/s now (numpy, n=2048, load average 0.5)" in text
    assert "01  about 3 min on this machine (scaled from 'a quiet test machine': 3 min at 100 GFLOP/s)" in text
    assert "05  about 8 min on this machine (scaled from 'a quiet test machine': 8 min at 100 GFLOP/s)" in text
    assert "about 11 min in all" in text
    assert "no reference has measured 07" in text and "06" not in text.split("GPU:")[1]  # 06 trains nothing


def test_a_machine_half_as_fast_doubles_every_estimate(tmp_path, monkeypatch, gpus, calibrated):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    before = calibration.estimates([CATS_DOGS, CIFAR], calibrated["calibration_gflops"])
    calibrated["calibration_gflops"] = 50.0
    text, _ = preflight.report([CATS_DOGS, CIFAR], tmp_path, profile="laptop")
    after = calibration.estimates([CATS_DOGS, CIFAR], 50.0)
    assert {n: 2 * e["minutes"] for n, e in before.items()} == {n: e["minutes"] for n, e in after.items()}
    assert "01  about 6 min on this machine" in text and "05  about 16 min on this machine" in text


def test_each_notebook_is_scaled_from_the_first_reference_that_measured_it(tmp_path, monkeypatch, calibrated):
    newer = {"name": "newer", "calibration_gflops": {CIFAR: 200.0}, "minutes": {CIFAR: 5.0}}
    calibration.REFERENCE_FILE.write_text(json.dumps({"references": [newer, REFERENCE]}))
    found = calibration.estimates([CATS_DOGS, CIFAR, UPSAMPLING], 100.0)
    assert found[CIFAR] == {"minutes": 10.0, "reference": "newer", "reference_minutes": 5.0, "reference_gflops": 200.0}
    assert found[CATS_DOGS]["reference"] == "a quiet test machine" and UPSAMPLING not in found


def test_a_saved_reference_comes_first_and_a_later_run_of_other_notebooks_adds_to_it(calibrated):
    calibration.save_reference("here", {CIFAR: 50.0}, {CIFAR: 20.0}, {"commit": "abc"})
    calibration.save_reference("here", {UPSAMPLING: 40.0}, {UPSAMPLING: 30.0}, {"commit": "def"})
    first, second = calibration.references()
    assert first == {"name": "here", "commit": "def", "calibration_gflops": {CIFAR: 50.0, UPSAMPLING: 40.0},
                     "minutes": {CIFAR: 20.0, UPSAMPLING: 30.0}}
    assert second == REFERENCE
    assert calibration.estimates([CIFAR], 100.0)[CIFAR]["minutes"] == 10.0


def test_without_the_benchmarks_the_laptop_checklist_gives_the_profiles_aim(tmp_path, monkeypatch, gpus):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setitem(sys.modules, "benchmarks", None)  # not importable, as in a pip-installed course
    text, _ = preflight.report([CATS_DOGS], tmp_path, profile="laptop")
    assert "Rough time: within 15 minutes per notebook on two CPU cores" in text


def test_the_rough_time_on_a_gpu_comes_from_gpu_hours(tmp_path, monkeypatch, gpus):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    gpus.append("GPU:0")
    text, _ = preflight.report([CATS_DOGS, UPSAMPLING, "06_results_summary"], tmp_path)
    assert "GPU: 1 found" in text
    assert "Rough time: 01 ~0.1 h, 03 ~2.5 h; about 2.6 h in all" in text


def test_the_hours_cover_the_notebooks_that_train_and_rank_them_alike():
    """Both tables are keyed by the renumbered notebooks: the longest run on a GPU is the longest on
    a CPU (a table zipped against the old order would break this)."""
    trainers = [n for n in NOTEBOOKS if n not in ("06_results_summary", "07_light_models_on_device")]
    assert list(preflight.GPU_HOURS) == trainers and list(CPU_HOURS) == trainers
    assert sorted(trainers, key=preflight.GPU_HOURS.get) == sorted(trainers, key=CPU_HOURS.get)
    assert max(trainers, key=CPU_HOURS.get) == UPSAMPLING  # ResNet50 on CIFAR-10 upsampled to 224
    assert min(trainers, key=CPU_HOURS.get) == CATS_DOGS  # one frozen MobileNetV2
