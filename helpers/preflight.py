"""Before a run on the real data (full or laptop profile): what each notebook needs, and
whether it is here.

For every notebook: its data (found locally, to be downloaded, or missing), the ImageNet
weights of its backbones (cached by Keras, to be downloaded, or missing), and a rough
duration. `make reproduce` prints this and stops before any training when something is
missing and cannot be downloaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from helpers import data, models
from helpers.config import FULL_HOURS, PROFILES


@dataclass
class Need:
    """One thing a notebook needs."""

    notebook: str
    what: str
    status: str  # "found", "download" or "missing"
    detail: str


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
        builder = data._tfds_builder("cats_vs_dogs")
        if data_dir is None and builder.is_prepared():
            return Need(notebook, "cats vs dogs", "found", f"tensorflow_datasets cats_vs_dogs ({builder.data_dir})")
        if found:
            return Need(notebook, "cats vs dogs", "found", str(found))
        return Need(notebook, "cats vs dogs", "download" if online else "missing",
                    "through tensorflow_datasets (cats_vs_dogs)" if online else
                    f"prepare tfds cats_vs_dogs ({data.CATS_DOGS_TFDS_URL}), or unzip "
                    f"cats_and_dogs_filtered.zip ({data.CATS_DOGS_URL}) into {root}/")
    return Need(notebook, "result records", "found", "reads what the other notebooks wrote")


def needs(notebooks: list[str], data_dir: Path | None = None, profile: str = "full") -> list[Need]:
    """Everything the full (or laptop) profile of these notebooks needs, checked."""
    online = {url: data.can_download(url) for url in (data.CIFAR10_URL, models.WEIGHTS_URL)}
    items: list[Need] = []
    for notebook in notebooks:
        if notebook not in PROFILES:
            continue
        items.append(_data_need(notebook, data_dir, online[data.CIFAR10_URL] or online[models.WEIGHTS_URL]))
        chosen = PROFILES[notebook][profile]
        for model in chosen.models:
            path = models.imagenet_file(model, chosen.image_size)
            name = path.name
            if path.exists():
                items.append(Need(notebook, f"{model} ImageNet weights", "found", str(path)))
            elif online[models.WEIGHTS_URL]:
                items.append(Need(notebook, f"{model} ImageNet weights", "download", name))
            else:
                items.append(Need(notebook, f"{model} ImageNet weights", "missing",
                                  f"download {models.WEIGHTS_URL}{name} into {path.parent}/"))
    return items


def report(notebooks: list[str], data_dir: Path | None = None, profile: str = "full") -> tuple[str, bool]:
    """A readable checklist, and whether everything is there or downloadable."""
    from helpers.setup import quiet_stderr

    with quiet_stderr():  # TensorFlow's start-up lines
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
    items = needs(notebooks, data_dir, profile)
    width = max((len(item.what) for item in items), default=0)
    lines = [f"What the {profile} profile needs:", ""]
    for item in items:
        mark = {"found": "ok  ", "download": "get ", "missing": "MISS"}[item.status]
        lines.append(f"  [{mark}] {item.notebook[:2]}  {item.what:{width}s}  {item.detail}")
    column = 0 if gpus else 1
    hours = sum(FULL_HOURS.get(n, (0, 0))[column] for n in notebooks)
    lines += ["", f"GPU: {len(gpus)} found" if gpus else "GPU: none found (the full profile is meant for a GPU)"]
    if profile == "full":
        lines.append("Rough time: " + ", ".join(
            f"{n[:2]} ~{FULL_HOURS[n][column]:g} h" for n in notebooks if FULL_HOURS.get(n, (0, 0))[column]
        ) + f"; about {hours:g} h in all")
    else:
        lines.append("Rough time: about ten minutes per notebook on a four-core laptop CPU (make bench-laptop)")
    missing = [i for i in items if i.status == "missing"]
    if missing:
        lines += ["", f"{len(missing)} thing(s) missing and not downloadable from here; "
                  "place them as shown (see data/README.md), then run again."]
    return "\n".join(lines), not missing
