"""Before a full-profile run: what each notebook needs, and whether it is here.

For every notebook: its data (found locally, to be downloaded, or missing), the
ImageNet weights of its backbones (cached by Keras, to be downloaded, or missing),
and a rough duration. `make reproduce` prints this and stops before any training
when something is missing and cannot be downloaded.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from helpers import data
from helpers.config import PROFILES

WEIGHTS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/"

# Rough hours per notebook on one recent GPU, and on this kind of two-core CPU.
HOURS = {
    "01_cifar10_resnet50_vs_mobilenet": (1.0, 60),
    "02_cifar10_resnet50_upsampling_finetune": (2.0, 200),
    "03_tf_flowers_unfreezing_strategies": (1.5, 90),
    "04_animals_mobilenetv2_vs_efficientnetv2": (0.5, 20),
    "05_cats_vs_dogs_feature_extraction": (0.1, 2),
    "06_results_summary": (0.0, 0.0),
}


@dataclass
class Need:
    """One thing a notebook needs."""

    notebook: str
    what: str
    status: str  # "found", "download" or "missing"
    detail: str


def weights_file(model: str, image_size: int) -> str:
    """The file name Keras caches a backbone's no-top ImageNet weights under."""
    if model == "resnet50":
        return "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
    if model == "mobilenet":
        return "mobilenet_1_0_224_tf_no_top.h5"
    if model == "mobilenet_v2":
        rows = image_size if image_size in (96, 128, 160, 192, 224) else 224
        return f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_{rows}_no_top.h5"
    if model == "efficientnetv2_b0":
        return "efficientnetv2-b0_notop.h5"
    raise KeyError(model)


def _keras_models_dir() -> Path:
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "models"


def _data_need(notebook: str, data_dir: Path | None, online: bool) -> Need:
    root = data.default_data_root()
    if notebook.startswith(("01", "02")):
        found = data.find_cifar10(data_dir)
        where = f"{root}/cifar-10-python.tar.gz (or cifar-10-batches-py/)"
        if found:
            return Need(notebook, "CIFAR-10", "found", str(found))
        return Need(notebook, "CIFAR-10", "download" if online else "missing",
                    f"from {data.CIFAR10_URL}" if online else f"put it at {where}")
    if notebook.startswith("03"):
        folder = data._flowers_folder(data_dir or root)
        if folder:
            return Need(notebook, "tf_flowers", "found", str(folder))
        return Need(notebook, "tf_flowers", "download" if online else "missing",
                    "through tensorflow_datasets" if online else
                    f"extract flower_photos.tgz ({data.FLOWERS_URL}) into {root}/")
    if notebook.startswith("04"):
        folder = data_dir or root / "animals"
        if folder.is_dir():
            return Need(notebook, "animal images", "found", str(folder))
        return Need(notebook, "animal images", "missing",
                    f"put them in {root / 'animals'}: {data.ANIMALS_LAYOUT} "
                    "(or pass KAGGLE_DATASET with Kaggle credentials)")
    if notebook.startswith("05"):
        found = data._cats_dogs_root(data_dir or root)
        if found:
            return Need(notebook, "cats vs dogs", "found", str(found))
        return Need(notebook, "cats vs dogs", "download" if online else "missing",
                    f"from {data.CATS_DOGS_URL}" if online else
                    f"unzip cats_and_dogs_filtered.zip into {root}/")
    return Need(notebook, "result records", "found", "reads what the other notebooks wrote")


def needs(notebooks: list[str], data_dir: Path | None = None) -> list[Need]:
    """Everything the full profile of these notebooks needs, checked."""
    online = {url: data.can_download(url) for url in (data.CIFAR10_URL, WEIGHTS_URL)}
    items: list[Need] = []
    for notebook in notebooks:
        if notebook not in PROFILES:
            continue
        items.append(_data_need(notebook, data_dir, online[data.CIFAR10_URL] or online[WEIGHTS_URL]))
        profile = PROFILES[notebook]["full"]
        for model in profile.models:
            name = weights_file(model, profile.image_size)
            path = _keras_models_dir() / name
            if path.exists():
                items.append(Need(notebook, f"{model} ImageNet weights", "found", str(path)))
            elif online[WEIGHTS_URL]:
                items.append(Need(notebook, f"{model} ImageNet weights", "download", name))
            else:
                items.append(Need(notebook, f"{model} ImageNet weights", "missing",
                                  f"download {WEIGHTS_URL}{name} into {_keras_models_dir()}/"))
    return items


def report(notebooks: list[str], data_dir: Path | None = None) -> tuple[str, bool]:
    """A readable checklist, and whether everything is there or downloadable."""
    from helpers.setup import quiet_stderr

    with quiet_stderr():  # TensorFlow's start-up lines
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
    items = needs(notebooks, data_dir)
    width = max((len(item.what) for item in items), default=0)
    lines = ["What the full profile needs:", ""]
    for item in items:
        mark = {"found": "ok  ", "download": "get ", "missing": "MISS"}[item.status]
        lines.append(f"  [{mark}] {item.notebook[:2]}  {item.what:{width}s}  {item.detail}")
    column = 0 if gpus else 1
    hours = sum(HOURS.get(n, (0, 0))[column] for n in notebooks)
    lines += [
        "",
        f"GPU: {len(gpus)} found" if gpus else "GPU: none found (the full profile is meant for a GPU)",
        "Rough time: " + ", ".join(
            f"{n[:2]} ~{HOURS[n][column]:g} h" for n in notebooks if HOURS.get(n, (0, 0))[column]
        ) + f"; about {hours:g} h in all",
    ]
    missing = [i for i in items if i.status == "missing"]
    if missing:
        lines += ["", f"{len(missing)} thing(s) missing and not downloadable from here; "
                  "place them as shown (see data/README.md), then run again."]
    return "\n".join(lines), not missing
