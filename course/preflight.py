"""Before a run on the real data (`make check`, `make reproduce`, `make laptop`): what each notebook
needs (data, ImageNet weights) and whether it is here, downloadable or missing, with a rough duration:
hours on the full profile, and on the laptop profile minutes estimated for this machine from a
few seconds' calibration against a reference machine (`benchmarks.calibration`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from helpers import sources, weights
from helpers.progress import quiet_stderr
from helpers.settings import CPU_HOURS, NOTEBOOKS, PROFILES, SUMMARY_NOTEBOOK

# Rough hours of the full profile per notebook on one recent GPU (on a CPU: settings.CPU_HOURS);
# the Ray runner also starts the longest units first by them.
GPU_HOURS = dict(zip(NOTEBOOKS, (0.1, 0.5, 2.5, 1.5, 1.0)))


@dataclass
class Need:
    """One thing a notebook needs."""
    notebook: str
    what: str
    status: str  # "found", "download" or "missing"
    detail: str


def _data_need(notebook: str, data_dir: Path | None, online: bool) -> Need:
    root = sources.data_root()
    download = None  # how it would be downloaded, when it can be
    if notebook.startswith(("03", "05")):
        what, found = "CIFAR-10", sources.find_cifar10(data_dir)
        download, place = f"from {sources.CIFAR10_URL}", f"put it at {root}/cifar-10-python.tar.gz (or cifar-10-batches-py/)"
    elif notebook.startswith("04"):
        what, found = "tf_flowers", sources.flowers_folder(data_dir or root)
        download, place = "through tensorflow_datasets", f"extract flower_photos.tgz ({sources.FLOWERS_URL}) into {root}/"
    elif notebook.startswith("02"):
        folder = data_dir or root / "animals"
        what, found = "animal images", folder if folder.is_dir() else None
        place = f"put them in {root / 'animals'}: {sources.ANIMALS_LAYOUT} (or pass KAGGLE_DATASET with Kaggle credentials)"
    elif notebook.startswith("01"):
        what, found = "cats vs dogs", sources.cats_dogs_root(data_dir or root)
        builder = sources.tfds_builder("cats_vs_dogs")
        if data_dir is None and builder.is_prepared():
            found = f"tensorflow_datasets cats_vs_dogs ({builder.data_dir})"
        download = "through tensorflow_datasets (cats_vs_dogs)"
        place = (f"prepare tfds cats_vs_dogs ({sources.CATS_DOGS_TFDS_URL}), or unzip cats_and_dogs_filtered.zip "
                 f"({sources.CATS_DOGS_URL}) into {root}/")
    else:
        return Need(notebook, "result records", "found", "reads what the other notebooks wrote")
    if found:
        return Need(notebook, what, "found", str(found))
    if online and download:
        return Need(notebook, what, "download", download)
    return Need(notebook, what, "missing", place)


def needs(notebooks: list[str], data_dir: Path | None = None, profile: str = "full") -> list[Need]:
    """Everything the full (or laptop) profile of these notebooks needs, checked."""
    weights_online = sources.can_download(weights.WEIGHTS_URL)
    online = sources.can_download(sources.CIFAR10_URL) or weights_online
    items: list[Need] = []
    for notebook in (n for n in notebooks if n in PROFILES):
        items.append(_data_need(notebook, data_dir, online))
        chosen = PROFILES[notebook][profile]
        for model in chosen.models:
            path = weights.imagenet_file(model, chosen.image_size if notebook[:2] != "05" else 32)
            what = f"{model} ImageNet weights"
            if path.exists():
                items.append(Need(notebook, what, "found", str(path)))
            elif weights_online:
                items.append(Need(notebook, what, "download", path.name))
            else:
                items.append(Need(notebook, what, "missing", f"download {weights.WEIGHTS_URL}{path.name} into {path.parent}/"))
    return items


def report(notebooks: list[str], data_dir: Path | None = None, profile: str = "full") -> tuple[str, bool]:
    """A readable checklist, and whether everything is there or downloadable."""
    with quiet_stderr():  # TensorFlow's start-up lines
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
    items = needs(notebooks, data_dir, profile)
    width = max((len(item.what) for item in items), default=0)
    lines = [f"What the {profile} profile needs:", ""]
    for item in items:
        mark = {"found": "ok  ", "download": "get ", "missing": "MISS"}[item.status]
        lines.append(f"  [{mark}] {item.notebook[:2]}  {item.what:{width}s}  {item.detail}")
    lines += ["", f"GPU: {len(gpus)} found" if gpus else "GPU: none found (the full profile is meant for a GPU)"]
    if profile == "full":
        hours = [(n[:2], (GPU_HOURS if gpus else CPU_HOURS)[n]) for n in notebooks if n in GPU_HOURS]
        lines.append("Rough time: " + ", ".join(f"{n} ~{h:g} h" for n, h in hours if h)
                     + f"; about {sum(h for _, h in hours):g} h in all")
    else:
        lines += laptop_minutes([n for n in notebooks if n in PROFILES and n != SUMMARY_NOTEBOOK])
    missing = [i for i in items if i.status == "missing"]
    if missing:
        lines += ["", f"{len(missing)} thing(s) missing and not downloadable from here; place them as shown (see "
                  "data/README.md), then run again."]
    return "\n".join(lines), not missing


def laptop_minutes(notebooks: list[str]) -> list[str]:
    """'about N min on this machine' per notebook, scaled from a reference machine by a few seconds'
    calibration; where the benchmarks are not at hand (an installed package), the profile's aim."""
    try:
        from benchmarks import calibration
    except ImportError:
        return ["Rough time: within 15 minutes per notebook on two CPU cores (make bench-laptop)"]
    return calibration.lines(notebooks, calibration.measure())
