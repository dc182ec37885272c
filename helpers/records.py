"""Result records: one JSON file per trained configuration, written atomically, with the saved
`.keras` model beside it (the closing "Checks" cell of every notebook reads its record back)."""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from helpers.errors import CheckFailed
from helpers.settings import Settings, project_root

RECORD_FIELDS = (
    "notebook", "article", "dataset", "profile", "model", "strategy", "image_size", "batch_size", "epochs",
    "fine_tune_epochs", "optimizer", "learning_rate", "train_accuracy", "train_loss", "val_accuracy", "val_loss",
    "test_accuracy", "test_loss", "trainable_params", "total_params", "train_seconds", "inference_ms_per_image",
    "throughput_images_per_s", "skipped_files", "seed", "tensorflow", "keras", "device", "git_commit", "created_at")
# Beyond the contract: run status, the split's fingerprint, per-epoch history, ...
EXTRA_FIELDS = (
    "status", "error", "split_fingerprint", "fine_tune_learning_rate", "limit", "weights", "history", "phases",
    "resumed_epochs", "model_file", "model_size_mb", "class_names", "title", "variant", "throughput_batch_size",
    "settings_key", "data_dir")
# Each notebook's article, by title (readers never see the articles' file numbers).
ARTICLES = {
    "01_cats_vs_dogs_feature_extraction": "Exploring Transfer Learning for Image Classification with MobileNet",
    "02_animals_mobilenetv2_vs_efficientnetv2": "Comparison of two ML Models using transfer learning for image classification",
    "03_cifar10_resnet50_upsampling_finetune": "Supercharge Your AI: ResNet50 Transfer Learning Unleashed",
    "04_tf_flowers_unfreezing_strategies": "Analysis of Transfer Learning with ResNet50 and MobileNet",
    "05_cifar10_resnet50_vs_mobilenet": "MobileNet vs ResNet50 - Two CNN Transfer Learning Light Frameworks",
}


def git_commit() -> str:
    """The checkout's short commit, or 'unknown' (every record of 01-05 and 07; 06, "The records")."""
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=project_root(),
                             capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def unique(path: Path) -> Path:
    """A temporary name beside `path`, of this process alone, to `os.replace` into place (every record of
    01-05 and 07; the "Setup" write check)."""
    stem, _, suffixes = path.name.partition(".")
    return path.with_name(f".{stem}.{os.getpid()}-{uuid.uuid4().hex[:8]}.{suffixes}")


def atomic_write(path: Path, write: Callable[[Path], object]) -> Path:
    """`write` a temporary name (`unique`), then move it to `path`: a killed run leaves no half file (the
    models and backups of 01-05, 06's summary, images converted in "The data" of 01, 02 and 04)."""
    tmp = unique(path)
    write(tmp)
    os.replace(tmp, path)
    return path


def cannot_write(folder: Path) -> str | None:
    """Why `folder` cannot be written (made if missing, probed with a file of its own), or None: checked
    before any work by every notebook's "Setup" (`setup.start`) and by the runner for its reports."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = unique(folder / "write-test")
        probe.write_text("ok")
        probe.unlink()
    except OSError as error:
        return error.strerror or str(error)
    return None


def record_path(settings: Settings, model: str, strategy: str, variant: str | None = None) -> Path:
    """Where one configuration's (and `variant`'s, e.g. "equal-epochs") record lives (notebook 04, "Checks")."""
    suffix = f"__{variant}" if variant else ""
    return settings.record_dir / f"{model}__{strategy.replace(':', '-')}{suffix}.json"


def new_record(settings: Settings, model: str, strategy: str, **values: Any) -> dict:
    """A record with every field, those not given set to None (`Logbook.finish` in the fit steps of 01-05;
    07, "Running them in LiteRT")."""
    import keras
    import tensorflow as tf
    record: dict[str, Any] = dict.fromkeys(RECORD_FIELDS + EXTRA_FIELDS)
    record.update(notebook=settings.notebook, article=ARTICLES.get(settings.notebook), profile=settings.profile,
                  model=model, strategy=strategy, image_size=settings.image_size, batch_size=settings.batch_size,
                  seed=settings.seed, limit=settings.limit, weights=settings.weights,
                  data_dir=str(settings.data_dir) if settings.data_dir else None, tensorflow=tf.__version__,
                  keras=keras.__version__, git_commit=git_commit(), status="ok",
                  created_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))
    unknown = set(values) - set(record)
    if unknown:
        raise KeyError(f"Not record fields: {', '.join(sorted(unknown))}")
    record.update(values)
    return record


def _clean(value: Any) -> Any:
    """JSON-safe values: numpy scalars to Python, NaN and infinity to None."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and callable(value.item):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def write_record(record: dict, path: Path) -> Path:
    """Write a record atomically, a killed run leaves no half file (`Logbook.finish`; 07, "Running them in LiteRT")."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = unique(path)
    with open(tmp, "w") as handle:
        json.dump(_clean(record), handle, indent=2)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    return path


def read_record(path: Path) -> dict:
    """One record, else ValueError (`load_records`, `check_record`: the "Checks" of 01-07; 06, "The records")."""
    try:
        record = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"{path} is not readable JSON ({error})") from error
    if not isinstance(record, dict):
        raise ValueError(f"{path} does not hold a record")
    missing = [f for f in RECORD_FIELDS if f not in record]
    if missing:
        raise ValueError(f"{path} lacks the field(s) {', '.join(missing)}")
    return record


def existing_record(path: Path, settings_key: str) -> dict | None:
    """A finished record at `path` made with the same settings (`logbook.settings_key`; the fit steps of
    01-05)."""
    try:
        record = read_record(path)
    except ValueError:
        return None
    ok = record.get("status") == "ok" and record.get("settings_key") == settings_key
    return record if ok else None


def load_records(folder: Path) -> tuple[list[dict], list[tuple[str, str]]]:
    """Every valid record under a folder, and (file, reason) per file skipped (06, "The records"; 07)."""
    records, skipped = [], []
    for path in sorted(Path(folder).rglob("*.json")):
        if any(part.startswith(".") for part in path.relative_to(folder).parts):
            continue  # temporary files, and the .work/ folders of runs under way
        try:
            records.append(read_record(path))
        except ValueError as error:
            skipped.append((str(path), str(error)))
    return records, skipped


def check_record(path: Path, *, num_classes: int | None = None, profile: str | None = None) -> dict:
    """The record, checked complete and (on the learnable smoke data) clearly above chance ("Checks" of 01-05, 07)."""
    record = read_record(path)
    missing = [f for f in RECORD_FIELDS if record.get(f) is None and f != "git_commit"]
    if record["status"] != "ok":
        raise CheckFailed(f"{path.name} is marked {record['status']}: {record.get('error')}")
    if missing:
        raise CheckFailed(f"{path.name} has no value for {', '.join(missing)}")
    if profile == "smoke" and num_classes:
        chance = 1 / num_classes
        floor = chance + 0.5 * (1 - chance)
        if record["test_accuracy"] < floor - 1e-9:  # 3 of 5 right is 0.6, whatever the float sum says
            raise CheckFailed(f"{record['title']}: test accuracy {record['test_accuracy']:.2f} is "
                              f"not clearly above chance ({chance:.2f}) on the learnable sample "
                              f"data; expected at least {floor:.2f}")
    return record
