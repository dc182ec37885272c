"""Shared fixtures: tests run offline, results go to temporary folders."""

import io
import os
import zlib

os.environ["COURSE_OFFLINE"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from helpers import config  # noqa: E402


@pytest.fixture
def make_settings(tmp_path):
    """settings = make_settings("05_cats_vs_dogs_feature_extraction", profile="smoke", ...)"""

    def make(notebook="05_cats_vs_dogs_feature_extraction", **values):
        values.setdefault("profile", "smoke")
        values.setdefault("results_dir", tmp_path / "results")
        return config.resolve(notebook, **values)

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
