"""The four data sets of the course, from their real sources (or generated on the smoke profile), each
an `ImageData` of three ordered splits whose `batches` are the `train_ds, val_ds, test_ds` that `fit`,
`evaluate` and `predict` read ("The data" section of notebooks 01-05; notebook 07 rebuilds them)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf

from helpers import pipelines, sources, splits
from helpers.errors import DataError, SettingsError
from helpers.folders import FolderScan, scan_folder
from helpers.samples import sample_arrays, sample_folder
from helpers.settings import Settings
from helpers.sources import ANIMAL_CLASSES, CATS_DOGS_CLASSES, CIFAR10_CLASSES, FLOWER_CLASSES

SPLITS = ("train", "val", "test")
ARTICLE_CATS_DOGS = (4000, 1000)  # per class: the article's 8,000 training, 2,000 validation images


@dataclass
class ImageData:
    """Three ordered splits of (uint8 image, int32 label) examples, and what is known of them (the "The data"
    section of 01-05)."""
    name: str
    train: tf.data.Dataset
    val: tf.data.Dataset
    test: tf.data.Dataset
    class_names: list[str]
    labels: dict[str, np.ndarray]  # each split's labels, in its order
    source: str
    image_size: int
    skipped: list[tuple[str, str]] = field(default_factory=list)
    converted: int = 0
    fingerprint: str = ""
    layout: str = ""  # how the splits were made, e.g. "pre-split: Train/, valid/, Test/"

    def size(self, split: str) -> int:
        return len(self.labels[split])

    def batches(self, batch_size: int, shuffle_seed: int) -> tuple[tf.data.Dataset, ...]:
        """(train_ds, val_ds, test_ds): training reshuffled every epoch with the seed, the others in order."""
        return (pipelines.batches(self.train, batch_size, shuffle_seed=shuffle_seed),
                pipelines.batches(self.val, batch_size), pipelines.batches(self.test, batch_size))

    def summary(self):
        """Images per class and split, as a pandas DataFrame (notebook 02's data section)."""
        import pandas as pd
        table = pd.DataFrame({s: np.bincount(self.labels[s], minlength=len(self.class_names)) for s in SPLITS},
                             index=self.class_names)
        table.loc["total"] = table.sum()
        return table

    def report(self) -> str:
        """A few lines on the source, the split and anything skipped or converted."""
        counts = np.bincount(self.labels["train"], minlength=len(self.class_names))
        lines = [f"{self.name}: {len(self.class_names)} classes from {self.source}", *filter(None, [self.layout]),
                 f"train {self.size('train')} / validation {self.size('val')} / test {self.size('test')} images "
                 f"at {self.image_size}x{self.image_size}", f"split fingerprint {self.fingerprint}"]
        ratio = counts.max() / max(counts.min(), 1)
        if ratio > 1.5:
            lines.append(f"class imbalance: the largest training class is {ratio:.1f}x the smallest; accuracy alone "
                         "can flatter a model here, read the per-class report.")
        if self.converted:
            lines.append(f"converted {self.converted} images to RGB (CMYK, 16-bit, grey with alpha, ...)")
        if self.skipped:
            lines += [f"skipped {len(self.skipped)} files that cannot be read:",
                      *(f"  {path}: {reason}" for path, reason in self.skipped[:10]),
                      *([f"  ... and {len(self.skipped) - 10} more"] if len(self.skipped) > 10 else [])]
        return "\n".join(lines)


def image_data(name: str, parts: dict[str, tuple[tf.data.Dataset, np.ndarray]], class_names: Sequence[str],
               batch_size: int | None = None, **info) -> ImageData:
    """An `ImageData` from each split's (examples, labels), BATCH_SIZE checked when given (the loaders of
    the "The data" sections of 01-05)."""
    data = ImageData(name=name, **{split: examples for split, (examples, _) in parts.items()},
                     class_names=list(class_names),
                     labels={s: np.asarray(y, np.int32).reshape(-1) for s, (_, y) in parts.items()}, **info)
    if batch_size is not None and batch_size > data.size("train"):
        raise SettingsError(f"BATCH_SIZE {batch_size} is larger than the {data.size('train')} training images; "
                            f"use {data.size('train')} or fewer, or raise LIMIT.")
    return data


def from_arrays(name: str, parts: dict[str, tuple[np.ndarray, np.ndarray]], class_names: Sequence[str],
                source: str, batch_size: int | None = None, **info) -> ImageData:
    """A data set in memory, (uint8 images, integer labels) per split (`cifar10`: "The data" of 03 and 05)."""
    return image_data(name, {s: (pipelines.examples_from_arrays(x, y), y) for s, (x, y) in parts.items()},
                      class_names, batch_size, source=source, image_size=int(parts["train"][0].shape[1]), **info)


def folder_splits(name: str, scans: dict[str, FolderScan], fractions: dict[str, dict[str, float]],
                  settings: Settings, source: str, layout: str) -> ImageData:
    """The three splits of scanned folders, LIMIT applied, BATCH_SIZE checked (01, 02, 04: "The data").
    Keyed by folder below the root ("" for the root), `fractions` gives each split's share of that
    folder, e.g. {"train": {"train": 1}, "validation": {"val": .8, "test": .2}}."""
    class_names: list[str] = []
    picked: dict[str, tuple[list[str], np.ndarray, list[str]]] = {}
    skipped: list[tuple[str, str]] = []
    for folder, scan in scans.items():
        if class_names and scan.class_names != class_names:
            raise DataError(f"{scan.root} has classes {scan.class_names}, but {class_names} were found beside "
                            "it; every split needs the same class folders.")
        class_names = scan.class_names
        skipped += [(f"{folder}/{path}" if folder else path, why) for path, why in scan.skipped]
        targets = fractions[folder]
        for split, indices in zip(targets, splits.stratified(scan.labels, list(targets.values()), settings.seed)):
            indices = splits.limited(indices, settings.limit)
            picked[split] = ([scan.paths[i] for i in indices], scan.labels[indices],
                             [f"{scan.labels[i]}:{scan.names[i]}" for i in indices])
    for split in SPLITS:
        if split not in picked or len(picked[split][0]) == 0:
            raise DataError(f"The {split} split of {name} came out empty; add images per class.")
    return image_data(
        name, {s: (pipelines.examples_from_files(*picked[s][:2], settings.image_size), picked[s][1]) for s in SPLITS},
        class_names, settings.batch_size, source=source, image_size=settings.image_size, skipped=skipped,
        converted=sum(scan.converted for scan in scans.values()), layout=layout,
        fingerprint=splits.fingerprint(*(picked[s][2] for s in SPLITS)))


def _tfds(name: str, builder, parts: Sequence[np.ndarray], labels: np.ndarray, raw: tf.data.Dataset,
          settings: Settings, layout: str, class_names: Sequence[str]) -> ImageData:
    """Three splits of a tfds data set by example index, in tfds's order (LIMIT applied)."""
    parts = [np.sort(splits.limited(p, settings.limit)) for p in parts]
    indexed = raw.enumerate()

    def subset(indices: np.ndarray) -> tf.data.Dataset:
        table = tf.constant(np.isin(np.arange(len(labels)), indices))
        picked = indexed.filter(lambda i, example: tf.gather(table, i)).map(lambda i, example: example)
        return pipelines.decoded(picked, settings.image_size, len(indices))

    return image_data(name, {s: (subset(p), labels[p]) for s, p in zip(SPLITS, parts)}, class_names,
                      settings.batch_size, source=f"tensorflow_datasets {builder.name} ({builder.data_dir})",
                      layout=layout, image_size=settings.image_size,
                      fingerprint=splits.fingerprint(*(p.tolist() for p in parts)))


def cats_vs_dogs(settings: Settings, test_fraction: float = 0.2) -> ImageData:
    """Notebook 01, "The data": DATA_DIR's `train/` + `validation/` tree, generated photos (smoke), tfds
    `cats_vs_dogs` cut to the article's 4,000 + 1,000 per class (prepared, or downloaded), a tree in data/,
    or `cats_and_dogs_filtered.zip` as the named fallback; the test set is carved from validation."""
    shares = (1 - test_fraction, test_fraction)
    tail = f"validation/ is {splits.describe(shares, settings.seed)} into validation and test"
    if settings.data_dir is not None:
        root = sources.cats_dogs_root(settings.data_dir)
        if root is None:
            raise DataError(f"{settings.data_dir} has no train/ and validation/ folders; expected train/cats, "
                            "train/dogs, validation/cats, validation/dogs (see data/README.md).")
        source = str(root)
    elif settings.profile == "smoke":
        root = sample_folder("cats_vs_dogs", CATS_DOGS_CLASSES, {"train": 200, "validation": 100})
        source = "generated sample data (coloured shapes standing in for cats and dogs)"
    else:
        builder = sources.tfds_builder("cats_vs_dogs")
        root = None if builder.is_prepared() else sources.cats_dogs_root(sources.data_root())
        if root is None and not builder.is_prepared() and not sources.can_download(sources.CATS_DOGS_TFDS_URL):
            root = sources.download_cats_dogs(builder.data_dir)
        if root is None:
            raw, labels = sources.tfds_examples(builder, sources.CATS_DOGS_TFDS_URL,
                                                sources.cats_dogs_missing(builder.data_dir))
            train, val = splits.stratified(labels, None, settings.seed, per_class=ARTICLE_CATS_DOGS)
            keep, test = splits.stratified(labels[val], shares, settings.seed)
            layout = (f"a seeded, stratified subset of {ARTICLE_CATS_DOGS[0]:,} training and "
                      f"{ARTICLE_CATS_DOGS[1]:,} validation images per class; {tail}")
            return _tfds("cats vs dogs", builder, [train, val[keep], val[test]], labels, raw, settings, layout,
                         CATS_DOGS_CLASSES)
        source = str(root) + (" (fallback: the public 2,000-image subset, not the article's 8,000)"
                              if root.name == "cats_and_dogs_filtered" else "")
    return folder_splits(
        "cats vs dogs", {split: scan_folder(root / split, CATS_DOGS_CLASSES) for split in ("train", "validation")},
        {"train": {"train": 1.0}, "validation": dict(zip(("val", "test"), shares))}, settings, source,
        "train/ trains; " + tail)


def image_folder(settings: Settings, name: str, root: Path, source: str | None = None,
                 fractions=(0.8, 0.1, 0.1)) -> ImageData:
    """A class-per-subfolder folder, pre-split (without val/, `fractions[1]` of train/ is carved out) or
    split with the seed (notebook 02, "The data: one folder per class")."""
    root, found = Path(root), sources.presplit(Path(root))
    if not found:
        return folder_splits(name, {"": scan_folder(root)}, {"": dict(zip(SPLITS, fractions))}, settings,
                             source or str(root), "one folder per class, " + splits.describe(fractions, settings.seed))
    targets = {p.name: {split: 1.0} for split, p in found.items()}
    layout = "pre-split: " + ", ".join(f"{p.name}/" for p in found.values())
    if "val" not in found:
        targets[found["train"].name] = {"train": 1 - fractions[1], "val": fractions[1]}
        layout += f"; validation carved from {found['train'].name}/ ({fractions[1]:.0%}, stratified, seed {settings.seed})"
    return folder_splits(name, {p.name: scan_folder(p) for p in found.values()}, targets, settings,
                         source or str(root), layout)


def animals(settings: Settings, kaggle_dataset: str | None = None) -> ImageData:
    """Notebook 02, "The data": animal photos (any classes) from DATA_DIR, generated (smoke),
    data/animals/, or a Kaggle data set downloaded with kagglehub."""
    local = sources.data_root() / "animals"
    if settings.data_dir is None and settings.profile == "smoke":
        return image_folder(settings, "animals", sample_folder("animals", ANIMAL_CLASSES, {"": 80}),
                            "generated sample data (coloured shapes standing in for five animals)")
    if settings.data_dir is not None or local.is_dir():
        return image_folder(settings, "animals", settings.data_dir or local)
    if kaggle_dataset:
        return image_folder(settings, "animals", sources.download_kaggle(kaggle_dataset))
    raise DataError(f"No animal images found: put them in {local} ({sources.ANIMALS_LAYOUT}), set DATA_DIR to "
                    "such a folder, or set KAGGLE_DATASET to a Kaggle dataset id (with Kaggle credentials).")


def cifar10(settings: Settings, val_fraction: float) -> ImageData:
    """CIFAR-10 at 32x32 (notebooks 03 and 05, "The data"): the official test set, and `val_fraction`
    of the training set held out for validation."""
    if settings.data_dir is None and settings.profile == "smoke":
        # Same shapes and palette as the stand-in weights' source task, paired differently.
        x, y = sample_arrays(1500, 10, 32, seed=7, colour_shift=3)
        (x_train, y_train), (x_test, y_test) = (x[:1200], y[:1200]), (x[1200:], y[1200:])
        source = "generated sample data (10 classes of coloured shapes at 32x32)"
    else:
        (x_train, y_train), (x_test, y_test), source = sources.cifar10_arrays(settings.data_dir)
    y_train, y_test = y_train.reshape(-1), y_test.reshape(-1)
    train, val = (splits.limited(p, settings.limit)
                  for p in splits.stratified(y_train, (1 - val_fraction, val_fraction), settings.seed))
    test = splits.limited(splits.stratified(y_test, (1.0,), settings.seed)[0], settings.limit)
    return from_arrays(
        "CIFAR-10", {"train": (x_train[train], y_train[train]), "val": (x_train[val], y_train[val]),
                     "test": (x_test[test], y_test[test])}, CIFAR10_CLASSES, source, settings.batch_size,
        fingerprint=splits.fingerprint(train.tolist(), val.tolist(), test.tolist()), layout="the official test set; "
        f"{val_fraction:.0%} of the training set held out for validation (stratified, seed {settings.seed})")


def tf_flowers(settings: Settings, fractions=(0.8, 0.1, 0.1)) -> ImageData:
    """Notebook 04, "The data": tf_flowers (3,670 photos, 5 classes) from DATA_DIR's or data/'s
    `flower_photos/`, generated (smoke), or tensorflow_datasets; split 80 / 10 / 10."""
    layout = "one folder per class, " + splits.describe(fractions, settings.seed)
    if settings.data_dir is None and settings.profile == "smoke":
        folder = sample_folder("flower_photos", FLOWER_CLASSES, {"": 70})
        source = "generated sample data (coloured shapes standing in for the five flowers)"
    else:
        folder = sources.flowers_folder(settings.data_dir or sources.data_root())
        source = str(folder)
        if folder is None and settings.data_dir is not None:
            raise DataError(f"{settings.data_dir} has no flower_photos/ folder with the subfolders "
                            f"{', '.join(FLOWER_CLASSES)}; extract {sources.FLOWERS_URL} there (see data/README.md).")
        if folder is None:
            builder = sources.tfds_builder("tf_flowers")
            raw, labels = sources.tfds_examples(builder, sources.FLOWERS_URL, sources.flowers_missing(builder))
            return _tfds("tf_flowers", builder, splits.stratified(labels, fractions, settings.seed), labels, raw,
                         settings, "tensorflow_datasets' one split, " + splits.describe(fractions, settings.seed),
                         builder.info.features["label"].names)
    return folder_splits("tf_flowers", {"": scan_folder(folder, FLOWER_CLASSES)}, {"": dict(zip(SPLITS, fractions))},
                         settings, source, layout)
