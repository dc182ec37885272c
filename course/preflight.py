"""Before a run on the real data: what each notebook needs (data, ImageNet weights) and
whether it is here, downloadable or missing, with a rough duration."""

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
    download = None  # how it would be downloaded, when it can be
    if notebook.startswith(("01", "02")):
        what, found = "CIFAR-10", data.find_cifar10(data_dir)
        download = f"from {data.CIFAR10_URL}"
        place = f"put it at {root}/cifar-10-python.tar.gz (or cifar-10-batches-py/)"
    elif notebook.startswith("03"):
        what, found = "tf_flowers", data._flowers_folder(data_dir or root)
        download = "through tensorflow_datasets"
        place = f"extract flower_photos.tgz ({data.FLOWERS_URL}) into {root}/"
    elif notebook.startswith("04"):
        folder = data_dir or root / "animals"
        what, found = "animal images", folder if folder.is_dir() else None
        place = (f"put them in {root / 'animals'}: {data.ANIMALS_LAYOUT} "
                 "(or pass KAGGLE_DATASET with Kaggle credentials)")
    elif notebook.startswith("05"):
        what, found = "cats vs dogs", data._cats_dogs_root(data_dir or root)
        builder = data._tfds_builder("cats_vs_dogs")
        if data_dir is None and builder.is_prepared():
            found = f"tensorflow_datasets cats_vs_dogs ({builder.data_dir})"
        download = "through tensorflow_datasets (cats_vs_dogs)"
        place = (f"prepare tfds cats_vs_dogs ({data.CATS_DOGS_TFDS_URL}), or unzip "
                 f"cats_and_dogs_filtered.zip ({data.CATS_DOGS_URL}) into {root}/")
    else:
        return Need(notebook, "result records", "found", "reads what the other notebooks wrote")
    if found:
        return Need(notebook, what, "found", str(found))
    if online and download:
        return Need(notebook, what, "download", download)
    return Need(notebook, what, "missing", place)


def needs(notebooks: list[str], data_dir: Path | None = None, profile: str = "full") -> list[Need]:
    """Everything the full (or laptop) profile of these notebooks needs, checked."""
    weights_online = data.can_download(models.WEIGHTS_URL)
    online = data.can_download(data.CIFAR10_URL) or weights_online
    items: list[Need] = []
    for notebook in (n for n in notebooks if n in PROFILES):
        items.append(_data_need(notebook, data_dir, online))
        chosen = PROFILES[notebook][profile]
        for model in chosen.models:
            path = models.imagenet_file(model, chosen.image_size)
            what = f"{model} ImageNet weights"
            if path.exists():
                items.append(Need(notebook, what, "found", str(path)))
            elif weights_online:
                items.append(Need(notebook, what, "download", path.name))
            else:
                items.append(Need(notebook, what, "missing",
                                  f"download {models.WEIGHTS_URL}{path.name} into {path.parent}/"))
    return items


def report(notebooks: list[str], data_dir: Path | None = None,
           profile: str = "full") -> tuple[str, bool]:
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
    lines += ["", f"GPU: {len(gpus)} found" if gpus
              else "GPU: none found (the full profile is meant for a GPU)"]
    if profile == "full":
        column = 0 if gpus else 1
        hours = [(n[:2], FULL_HOURS[n][column]) for n in notebooks if n in FULL_HOURS]
        lines.append("Rough time: " + ", ".join(f"{n} ~{h:g} h" for n, h in hours if h)
                     + f"; about {sum(h for _, h in hours):g} h in all")
    else:
        lines.append("Rough time: within 15 minutes per notebook on two CPU cores "
                     "(make bench-laptop)")
    missing = [i for i in items if i.status == "missing"]
    if missing:
        lines += ["", f"{len(missing)} thing(s) missing and not downloadable from here; "
                  "place them as shown (see data/README.md), then run again."]
    return "\n".join(lines), not missing
