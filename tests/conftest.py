"""Shared fixtures: tests run offline, results go to temporary folders."""

import io
import os
import zlib

os.environ["COURSE_OFFLINE"] = "1"
# The unit tests build full-profile settings without training them; the full profile's stop on a
# machine without a GPU is tested on its own, with this unset.
os.environ["COURSE_FULL_ON_CPU"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from helpers import settings  # noqa: E402


def pytest_collection_modifyitems(config, items):
    """The tests that execute notebooks first: with `--dist worksteal` the two workers of `make test` share
    out the longest ones at the start, and an idle worker takes queued tests from the busy one."""
    items.sort(key=lambda item: item.get_closest_marker("notebook") is None)  # a stable sort


@pytest.fixture(autouse=True)
def _no_local_tfds(tmp_path, monkeypatch):
    """Tests never read a developer's ~/tensorflow_datasets (cats vs dogs looks there first)."""
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tensorflow_datasets"))


@pytest.fixture
def make_settings(tmp_path):
    """settings = make_settings("01_cats_vs_dogs_feature_extraction", profile="smoke", ...)"""

    def make(notebook="01_cats_vs_dogs_feature_extraction", **values):
        values.setdefault("profile", "smoke")
        values.setdefault("results_dir", tmp_path / "results")
        return settings.resolve(notebook, **values)

    return make


def write_jpeg(path, colour, size=(40, 30), mode="RGB", quality=90):
    """A JPEG of `colour` with noise unique to its path (so every image differs)."""
    rng = np.random.default_rng(zlib.crc32(str(path).encode()))
    noise = rng.integers(-25, 26, size=(size[1], size[0], 3))
    image = Image.fromarray((np.array(colour) + noise).clip(0, 255).astype(np.uint8))
    if mode != "RGB":
        image = image.convert(mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, quality=quality)


def jpeg_bytes(colour=(200, 30, 30), size=(48, 40)):
    buffer = io.BytesIO()
    rng = np.random.default_rng(0)
    array = (np.array(colour) + rng.integers(-20, 20, size=(size[1], size[0], 3))).clip(0, 255)
    Image.fromarray(array.astype(np.uint8)).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


@pytest.fixture
def class_folder(tmp_path):
    """A two-class folder (red, blue) with n good JPEGs per class."""

    def make(root=None, classes=("blue", "red"), per_class=6):
        root = root or tmp_path / "images"
        for k, name in enumerate(classes):
            for i in range(per_class):
                write_jpeg(root / name / f"{name}_{i}.jpg", (30, 30, 200) if k == 0 else (200, 30, 30),
                           size=(40 + i, 30 + 2 * i))
        return root

    return make


def write_cifar_batches(folder, per_batch=20):
    """A miniature CIFAR-10 in the official python format: five pickled training batches,
    a test batch and batches.meta, images stored as rows of 3x32x32 uint8."""
    import pickle

    from helpers.sources import CIFAR10_CLASSES

    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        labels = list(np.arange(per_batch) % 10)
        images = np.stack([np.full((3, 32, 32), 20 * k, np.uint8) for k in labels])
        images[:, 0, 0, 0] = rng.integers(0, 255, per_batch)
        batch = {b"data": images.reshape(per_batch, -1), b"labels": labels, b"batch_label": name.encode()}
        with open(folder / name, "wb") as handle:
            pickle.dump(batch, handle)
    with open(folder / "batches.meta", "wb") as handle:
        pickle.dump({b"label_names": [c.encode() for c in CIFAR10_CLASSES]}, handle)
    return folder


def write_image_tree(root, classes, per_class, seed=0):
    """Real JPEG files of varied sizes, one subfolder per class, each class its own colour."""
    rng = np.random.default_rng(seed)
    for k, name in enumerate(classes):
        colour = np.array([(50 * k) % 256, (90 + 70 * k) % 256, (200 - 40 * k) % 256])
        for i in range(per_class):
            size = (int(rng.integers(60, 200)), int(rng.integers(60, 200)))
            write_jpeg(root / name / f"{name}.{i}.jpg", tuple(int(c) for c in colour), size=size)
    return root
