"""`make reproduce` says what the full profile needs before any training, and stops when
something is missing and cannot be downloaded."""

import nbformat
from conftest import write_cifar_batches, write_image_tree
from nbformat.v4 import new_code_cell, new_notebook

from helpers import preflight, run
from helpers.data import FLOWER_CLASSES


def _marker_notebook(path, marker):
    """A notebook that leaves a file behind if it is ever executed."""
    nb = new_notebook()
    params = new_code_cell('PROFILE = "full"')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, new_code_cell(f"open({str(marker)!r}, 'w').write('ran')")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


def test_reproduce_offline_without_data_stops_before_running_anything(tmp_path, monkeypatch, capsys):
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    marker = tmp_path / "executed"
    for stem in ("01_cifar10_resnet50_vs_mobilenet", "05_cats_vs_dogs_feature_extraction"):
        _marker_notebook(notebooks / f"{stem}.ipynb", marker)
    monkeypatch.setenv("COURSE_ROOT", str(tmp_path))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))

    assert run.main(["--profile", "full", "--no-progress"]) == 1

    out = capsys.readouterr().out
    data = tmp_path / "data"
    assert "[MISS] 01  CIFAR-10" in out
    assert f"put it at {data}/cifar-10-python.tar.gz" in out
    assert "prepare tfds cats_vs_dogs" in out and "cats_and_dogs_filtered.zip" in out and f"into {data}/" in out
    assert "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5" in out
    assert f"into {tmp_path / 'keras' / 'models'}/" in out
    assert "5 thing(s) missing" in out and "data/README.md" in out
    assert "GPU: none found" in out
    assert "[1/" not in out and not marker.exists()  # nothing ran
    assert not list((tmp_path / "reports" / "full").glob("*.ipynb"))


def test_everything_in_place_is_found_and_ready(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    models = tmp_path / "keras" / "models"
    models.mkdir(parents=True)
    for name in ("resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5", "mobilenet_1_0_224_tf_no_top.h5"):
        (models / name).write_bytes(b"weights")
    data_dir = tmp_path / "data"
    write_cifar_batches(data_dir / "cifar-10-batches-py")
    write_image_tree(data_dir / "flower_photos", FLOWER_CLASSES, per_class=2)

    items = preflight.needs(["01_cifar10_resnet50_vs_mobilenet", "03_tf_flowers_unfreezing_strategies"],
                            data_dir)

    assert [(i.notebook[:2], i.what, i.status) for i in items] == [
        ("01", "CIFAR-10", "found"), ("01", "resnet50 ImageNet weights", "found"),
        ("01", "mobilenet ImageNet weights", "found"),
        ("03", "tf_flowers", "found"), ("03", "resnet50 ImageNet weights", "found"),
        ("03", "mobilenet ImageNet weights", "found"),
    ]
    assert items[0].detail == str(data_dir / "cifar-10-batches-py")
    text, ready = preflight.report(["01_cifar10_resnet50_vs_mobilenet"], data_dir)
    assert ready and "MISS" not in text and "missing" not in text


def test_one_missing_weights_file_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    data_dir = tmp_path / "data"
    write_cifar_batches(data_dir / "cifar-10-batches-py")
    text, ready = preflight.report(["02_cifar10_resnet50_upsampling_finetune"], data_dir)
    assert not ready and "What the full profile needs" in text
    assert "[ok  ] 02  CIFAR-10" in text
    assert "[MISS] 02  resnet50 ImageNet weights" in text and "1 thing(s) missing" in text


def test_the_laptop_profile_checks_the_weights_at_its_own_image_size(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    items = preflight.needs(["05_cats_vs_dogs_feature_extraction"], tmp_path, profile="laptop")
    assert items[-1].detail.endswith("mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_160_no_top.h5 into "
                                     f"{tmp_path / 'keras' / 'models'}/")
    text, ready = preflight.report(["05_cats_vs_dogs_feature_extraction"], tmp_path, profile="laptop")
    assert not ready and "What the laptop profile needs" in text and "within 15 minutes per notebook" in text
