"""Data sets: real sources, seeded and stratified splits, and `tf.data` pipelines. Every loader
returns an `ImageData` of three ordered splits; `batches` turns one into what `fit` reads."""

from __future__ import annotations

import hashlib
import os
import pickle
import socket
import tarfile
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf

from helpers.config import Settings, SettingsError, keras_home, offline, project_root
from helpers.folders import DataError, FolderScan, is_data, scan_folder
from helpers.samples import sample_arrays, sample_folder

AUTOTUNE = tf.data.AUTOTUNE
SPLITS = ("train", "val", "test")

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
FLOWER_CLASSES = ("daisy", "dandelion", "roses", "sunflowers", "tulips")
ANIMAL_CLASSES = ("cat", "cow", "dog", "elephant", "horse")
CATS_DOGS_CLASSES = ("cats", "dogs")

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CATS_DOGS_URL = "https://storage.googleapis.com/mledu-datasets/cats_and_dogs_filtered.zip"
FLOWERS_URL = (
    "https://storage.googleapis.com/download.tensorflow.org/example_images/flower_photos.tgz"
)
# What tensorflow_datasets downloads to prepare cats_vs_dogs (23,262 images, labels 0 cat, 1 dog).
CATS_DOGS_TFDS_URL = (
    "https://download.microsoft.com/download/3/E/1/3E1C3F21-ECDB-4869-8368-6DEBA77B919F/"
    "kagglecatsanddogs_5340.zip"
)
ARTICLE_CATS_DOGS = (4000, 1000)  # per class: the article's 8,000 training, 2,000 validation images


@dataclass
class ImageData:
    """Three ordered splits of (uint8 image, int32 label) examples, and what is known of them."""
    name: str
    train: tf.data.Dataset
    val: tf.data.Dataset
    test: tf.data.Dataset
    class_names: list[str]
    counts: dict[str, np.ndarray]  # images per class, per split
    source: str
    image_size: int
    skipped: list[tuple[str, str]] = field(default_factory=list)
    converted: int = 0
    fingerprint: str = ""
    layout: str = ""  # how the splits were made, e.g. "pre-split: Train/, valid/, Test/"

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def size(self, split: str) -> int:
        """Number of images in a split."""
        return int(self.counts[split].sum())

    def summary(self):
        """Images per class and split, as a pandas DataFrame."""
        import pandas as pd
        table = pd.DataFrame(self.counts, index=self.class_names)
        table.loc["total"] = table.sum()
        return table

    def imbalance(self) -> float:
        """Largest over smallest training class (1.0 means balanced)."""
        counts = self.counts["train"]
        return float(counts.max() / max(counts.min(), 1))

    def report(self) -> str:
        """A few lines on the source, the split and anything skipped."""
        lines = [
            f"{self.name}: {self.num_classes} classes from {self.source}",
            *([self.layout] if self.layout else []),
            f"train {self.size('train')} / validation {self.size('val')} / test "
            f"{self.size('test')} images at {self.image_size}x{self.image_size}",
            f"split fingerprint {self.fingerprint}",
        ]
        ratio = self.imbalance()
        if ratio > 1.5:
            lines.append(f"class imbalance: the largest training class is {ratio:.1f}x the "
                         "smallest; accuracy alone can flatter a model here, read the per-class "
                         "report.")
        if self.converted:
            lines.append(f"converted {self.converted} images to RGB (CMYK, 16-bit, grey with alpha, ...)")
        if self.skipped:
            lines.append(f"skipped {len(self.skipped)} files that cannot be read:")
            lines += [f"  {path}: {reason}" for path, reason in self.skipped[:10]]
            if len(self.skipped) > 10:
                lines.append(f"  ... and {len(self.skipped) - 10} more")
        return "\n".join(lines)


def _image_data(name: str, splits: dict[str, tuple[tf.data.Dataset, np.ndarray]],
                class_names: Sequence[str], batch_size: int | None = None, **info) -> ImageData:
    """An `ImageData` from each split's (examples, labels), BATCH_SIZE checked when given."""
    data = ImageData(
        name=name, **{split: examples for split, (examples, _) in splits.items()},
        class_names=list(class_names),
        counts={split: np.bincount(np.asarray(labels, int), minlength=len(class_names))
                for split, (_, labels) in splits.items()},
        **info,
    )
    if batch_size is not None and batch_size > data.size("train"):
        raise SettingsError(f"BATCH_SIZE {batch_size} is larger than the {data.size('train')} "
                            f"training images; use {data.size('train')} or fewer, or raise LIMIT.")
    return data


# Each epoch's shuffle order depends on the seed and this number only, so a resumed run sees the
# same orders (train.Resume sets it at every epoch's start; otherwise it counts the passes).
_EPOCH = tf.Variable(0, dtype=tf.int64, trainable=False)


def set_epoch(epoch: int) -> None:
    """The epoch whose shuffle order the next pass over a shuffled split uses."""
    _EPOCH.assign(epoch)


def batches(examples: tf.data.Dataset, batch_size: int, *,
            shuffle_seed: int | None = None) -> tf.data.Dataset:
    """Batch a split for Keras (uint8 images to float32), reshuffled per epoch given a seed."""
    ds = examples
    if shuffle_seed is not None:
        count = int(examples.cardinality())
        buffer = min(count if count > 0 else 10_000, 50_000)

        def epoch_order(_):
            epoch = _EPOCH.assign_add(1) - 1
            return examples.shuffle(buffer, seed=shuffle_seed * 1_000_003 + epoch,
                                    reshuffle_each_iteration=False)

        ds = tf.data.Dataset.from_tensors(tf.constant(0, tf.int64)).flat_map(epoch_order)
        if count > 0:  # so Keras knows the steps per epoch
            ds = ds.apply(tf.data.experimental.assert_cardinality(count))
    # not parallel: after the stateful epoch counter that logs a spurious error under determinism
    ds = ds.batch(batch_size).map(lambda x, y: (tf.nest.map_structure(
        lambda t: tf.cast(t, tf.float32) if t.dtype == tf.uint8 else t, x), y))
    return ds.prefetch(AUTOTUNE)


def count(examples: tf.data.Dataset) -> int:
    """Number of examples in a split (counted when tf.data does not know it)."""
    known = int(examples.cardinality())
    return known if known >= 0 else int(examples.reduce(0, lambda n, _: n + 1))


def _fits_in_memory(count: int, image_size: int) -> bool:
    """Whether decoded images take less than 30% of the machine's memory."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = 8 * 2**30
    return count * image_size * image_size * 3 < 0.3 * total


def _decode_resize(data: tf.Tensor, image_size: int) -> tf.Tensor:
    image = tf.io.decode_image(data, channels=3, expand_animations=False, dtype=tf.uint8)
    image = tf.image.resize(image, (image_size, image_size), method="bilinear")
    image.set_shape((image_size, image_size, 3))
    return tf.cast(tf.round(tf.clip_by_value(image, 0.0, 255.0)), tf.uint8)


def _decoded(encoded: tf.data.Dataset, image_size: int, count: int) -> tf.data.Dataset:
    """(encoded image, label) pairs decoded in parallel, in order, cached in memory if they fit."""
    ds = encoded.map(lambda data, y: (_decode_resize(data, image_size), tf.cast(y, tf.int32)),
                     num_parallel_calls=AUTOTUNE, deterministic=True)
    return ds.cache() if _fits_in_memory(count, image_size) else ds


def examples_from_files(paths: Sequence[str], labels: Sequence[int],
                        image_size: int) -> tf.data.Dataset:
    """Decode and resize image files in parallel, in order, cached in memory when they fit."""
    ds = tf.data.Dataset.from_tensor_slices((list(map(str, paths)), np.asarray(labels, np.int32)))
    files = ds.map(lambda p, y: (tf.io.read_file(p), y), num_parallel_calls=AUTOTUNE,
                   deterministic=True)
    return _decoded(files, image_size, len(paths))


def examples_from_arrays(images: np.ndarray, labels: np.ndarray) -> tf.data.Dataset:
    """Examples from in-memory uint8 images and their labels."""
    return tf.data.Dataset.from_tensor_slices((images, np.asarray(labels, np.int32).reshape(-1)))


def take_images(examples: tf.data.Dataset, count: int) -> tuple[np.ndarray, np.ndarray]:
    """The first `count` examples of a split as numpy arrays (for grids and checks)."""
    pairs = [(image.numpy(), int(label)) for image, label in examples.take(count)]
    return np.stack([image for image, _ in pairs]), np.asarray([label for _, label in pairs])


def stratified_split(labels: np.ndarray, fractions: Sequence[float] | None, seed: int,
                     per_class: Sequence[int] | None = None) -> list[np.ndarray]:
    """Seeded per-class split of indices by `fractions`, or `per_class[k]` images per class for
    part k; each part is ordered round-robin over classes (so a LIMIT stays balanced)."""
    labels = np.asarray(labels).reshape(-1)
    rng = np.random.default_rng(seed)
    sizes_given = fractions if per_class is None else per_class
    parts: list[list[tuple[int, int, int]]] = [[] for _ in sizes_given]
    for cls in np.unique(labels):
        idx = np.flatnonzero(labels == cls)
        rng.shuffle(idx)
        n = len(idx)
        if per_class is not None:
            sizes = np.diff(np.minimum(np.cumsum(per_class), n), prepend=0)
        else:
            shares = np.asarray(fractions, float) / np.sum(fractions)
            sizes = np.floor(shares * n).astype(int)
            for k in range(1, len(sizes)):  # small classes still reach every split
                if sizes[k] == 0 and shares[k] > 0 and n >= len(sizes):
                    sizes[k] = 1
            sizes[0] = n - sizes[1:].sum()
        start = 0
        for k, size in enumerate(sizes):
            for rank, index in enumerate(idx[start : start + size]):
                parts[k].append((rank, int(cls), int(index)))
            start += size
    return [np.asarray([i for _, _, i in sorted(part)], dtype=np.int64) for part in parts]


def _limit(indices: np.ndarray, limit: int | None) -> np.ndarray:
    return indices if limit is None else indices[:limit]


def _split_text(fractions: Sequence[float], seed: int) -> str:
    return f"split {'/'.join(str(round(100 * f)) for f in fractions)} (stratified, seed {seed})"


def fingerprint(*members: Sequence) -> str:
    """A short hash of split membership: equal seeds give equal fingerprints."""
    digest = hashlib.sha256()
    for split in members:
        digest.update(b"|")
        for item in split:
            digest.update(str(item).encode())
            digest.update(b",")
    return digest.hexdigest()[:16]


def check_classes(data: ImageData, expected: Sequence[str]) -> str:
    """One sentence comparing the classes found with those of the article's data set."""
    found = ", ".join(data.class_names)
    if sorted(c.lower() for c in data.class_names) == sorted(c.lower() for c in expected):
        return f"{data.num_classes} classes, as in the article's data set: {found}."
    return (
        f"{data.num_classes} classes ({found}) where the article's data set has {len(expected)} "
        f"({', '.join(expected)}): fine for your own images, but the results are then not "
        "comparable with the article's."
    )


def folder_splits(name: str, scans: dict[str, FolderScan], fractions: dict[str, dict[str, float]],
                  settings: Settings, source: str, layout: str) -> ImageData:
    """The three splits of scanned folders (LIMIT applied, BATCH_SIZE checked). `scans` and
    `fractions` are keyed by folder below the root ("" for the root); `fractions` gives each
    split's share of that folder, e.g. {"train": {"train": 1}, "validation": {"val": .8, ...}}."""
    class_names = None
    picked: dict[str, tuple[list[str], np.ndarray, list[str]]] = {}
    skipped: list[tuple[str, str]] = []
    for folder, scan in scans.items():
        if class_names is None:
            class_names = scan.class_names
        elif scan.class_names != class_names:
            raise DataError(f"{scan.root} has classes {scan.class_names}, but {class_names} were "
                            "found beside it; every split needs the same class folders.")
        skipped += [(f"{folder}/{path}" if folder else path, why) for path, why in scan.skipped]
        targets = fractions[folder]
        parts = stratified_split(scan.labels, list(targets.values()), settings.seed)
        for split, indices in zip(targets, parts):
            indices = _limit(indices, settings.limit)
            picked[split] = (
                [scan.paths[i] for i in indices],
                scan.labels[indices],
                [f"{scan.labels[i]}:{scan.names[i]}" for i in indices],
            )
    assert class_names is not None
    for split in SPLITS:
        if split not in picked or len(picked[split][0]) == 0:
            raise DataError(f"The {split} split of {name} came out empty; add images per class.")
    return _image_data(
        name,
        {s: (examples_from_files(*picked[s][:2], settings.image_size), picked[s][1])
         for s in SPLITS},
        class_names, settings.batch_size, source=source, image_size=settings.image_size,
        skipped=skipped, converted=sum(scan.converted for scan in scans.values()),
        fingerprint=fingerprint(*(picked[s][2] for s in SPLITS)), layout=layout,
    )


def can_download(url: str, timeout: float = 3.0) -> bool:
    """True when the host of `url` answers; False at once when $COURSE_OFFLINE is set."""
    if offline():
        return False
    host = urllib.parse.urlsplit(url).hostname or ""
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def default_data_root() -> Path:
    """The course's data/ folder, where downloads land."""
    return project_root() / "data"


def _tfds_builder(name: str):
    import tensorflow_datasets as tfds
    return tfds.builder(name, data_dir=os.environ.get("TFDS_DATA_DIR"))  # read now, not at import


def _tfds_examples(builder, url: str, missing: str) -> tuple[tf.data.Dataset, np.ndarray]:
    """A tfds data set's 'train' split, undecoded, and its labels; prepared (downloaded from
    `url`) when needed, else DataError(`missing`)."""
    import tensorflow_datasets as tfds
    if not builder.is_prepared():
        if not can_download(url):
            raise DataError(missing)
        builder.download_and_prepare()
    raw = builder.as_dataset(split="train", shuffle_files=False, as_supervised=True,
                             decoders={"image": tfds.decode.SkipDecoding()})
    labels = list(raw.map(lambda _, y: y).batch(4096).as_numpy_iterator())
    return raw, np.concatenate(labels or [np.zeros(0)]).astype(np.int32)


def _tfds_image_data(name: str, builder, raw: tf.data.Dataset, labels: np.ndarray,
                     parts: Sequence[np.ndarray], settings: Settings, layout: str,
                     class_names: Sequence[str] | None = None) -> ImageData:
    """Train, validation and test splits of a tfds data set by example index, in tfds's order
    (LIMIT applied, BATCH_SIZE checked)."""
    parts = [np.sort(_limit(p, settings.limit)) for p in parts]
    indexed = raw.enumerate()

    def subset(indices: np.ndarray) -> tf.data.Dataset:
        table = tf.constant(np.isin(np.arange(len(labels)), indices))
        picked = indexed.filter(lambda i, example: tf.gather(table, i)).map(lambda i, ex: ex)
        return _decoded(picked, settings.image_size, len(indices))

    return _image_data(name, {s: (subset(p), labels[p]) for s, p in zip(SPLITS, parts)},
                       class_names or builder.info.features["label"].names, settings.batch_size,
                       source=f"tensorflow_datasets {builder.name} ({builder.data_dir})",
                       image_size=settings.image_size,
                       fingerprint=fingerprint(*(p.tolist() for p in parts)), layout=layout)


def _cats_dogs_root(base: Path) -> Path | None:
    for candidate in (base, base / "cats_and_dogs_filtered", base / "cats_and_dogs"):
        if (candidate / "train").is_dir() and (candidate / "validation").is_dir():
            return candidate
    return None


def load_cats_vs_dogs(settings: Settings, test_fraction: float = 0.2,
                      per_class: Sequence[int] = ARTICLE_CATS_DOGS) -> ImageData:
    """Cats vs dogs: a `train/` + `validation/` tree, or tfds cats_vs_dogs cut to `per_class`
    images per class; the test set is carved from validation. Sources: DATA_DIR, generated
    (smoke), tfds prepared, data/, a tfds download, then cats_and_dogs_filtered.zip."""
    if settings.data_dir is not None:
        root = _cats_dogs_root(settings.data_dir)
        if root is None:
            raise DataError(f"{settings.data_dir} has no train/ and validation/ folders; expected "
                            "train/cats, train/dogs, validation/cats, validation/dogs (see "
                            "data/README.md).")
        source = str(root)
    elif settings.profile == "smoke":
        root = sample_folder("cats_vs_dogs", CATS_DOGS_CLASSES, {"train": 200, "validation": 100})
        source = "generated sample data (coloured shapes standing in for cats and dogs)"
    else:
        builder = _tfds_builder("cats_vs_dogs")
        prepared = builder.is_prepared()
        root = None if prepared else _cats_dogs_root(default_data_root())
        if root is None and not prepared and not can_download(CATS_DOGS_TFDS_URL):
            root = _download_cats_dogs(builder.data_dir)
        if root is None:
            return _tfds_cats_vs_dogs(settings, builder, test_fraction, per_class)
        source = str(root)
        if root.name == "cats_and_dogs_filtered":
            source += " (fallback: the public 2,000-image subset, not the article's 8,000)"
    shares = (1 - test_fraction, test_fraction)
    return folder_splits(
        "cats vs dogs",
        {split: scan_folder(root / split, CATS_DOGS_CLASSES) for split in ("train", "validation")},
        {"train": {"train": 1.0}, "validation": dict(zip(("val", "test"), shares))},
        settings, source,
        f"train/ trains; validation/ is {_split_text(shares, settings.seed)} into validation and "
        "test",
    )


def _tfds_cats_vs_dogs(settings: Settings, builder, test_fraction: float,
                       per_class: Sequence[int]) -> ImageData:
    raw, labels = _tfds_examples(builder, CATS_DOGS_TFDS_URL, _cats_dogs_missing(builder.data_dir))
    train, val = stratified_split(labels, None, settings.seed, per_class=per_class)
    shares = (1 - test_fraction, test_fraction)
    keep, test = stratified_split(labels[val], shares, settings.seed)
    layout = (
        f"a seeded, stratified subset: {per_class[0]:,} training and {per_class[1]:,} validation "
        f"images per class; validation then {_split_text(shares, settings.seed)} into validation "
        "and test"
    )
    return _tfds_image_data("cats vs dogs", builder, raw, labels, [train, val[keep], val[test]],
                            settings, layout, CATS_DOGS_CLASSES)


def _cats_dogs_missing(tfds_dir: str) -> str:
    target = default_data_root()
    return (
        f"Cats vs dogs is neither prepared by tensorflow_datasets in {tfds_dir} nor in {target}, "
        f"and neither {CATS_DOGS_TFDS_URL} (tfds cats_vs_dogs) nor {CATS_DOGS_URL} can be "
        "reached; run tfds.builder('cats_vs_dogs').download_and_prepare() on a machine with a "
        f"network and copy its folder into {tfds_dir}, or download and unzip "
        f"cats_and_dogs_filtered.zip into {target}/ (giving {target}/cats_and_dogs_filtered/train "
        "and validation), or set DATA_DIR to your own train/ + validation/ tree."
    )


def _download_cats_dogs(tfds_dir: str) -> Path:
    target = default_data_root()
    if not can_download(CATS_DOGS_URL):
        raise DataError(_cats_dogs_missing(tfds_dir))
    import keras
    target.mkdir(parents=True, exist_ok=True)
    path = keras.utils.get_file("cats_and_dogs_filtered.zip", origin=CATS_DOGS_URL, extract=True,
                                cache_dir=str(target), cache_subdir="")
    root = _cats_dogs_root(Path(path)) or _cats_dogs_root(target)
    if root is None:
        raise DataError(f"The download from {CATS_DOGS_URL} did not contain train/ and validation/.")
    return root


def _flowers_folder(base: Path) -> Path | None:
    for candidate in (base / "flower_photos", base):
        if candidate.is_dir() and all((candidate / c).is_dir() for c in FLOWER_CLASSES):
            return candidate
    return None


def load_tf_flowers(settings: Settings, fractions=(0.8, 0.1, 0.1)) -> ImageData:
    """tf_flowers (3,670 photos, 5 classes) from `flower_photos/` or tfds, split 80/10/10."""
    if settings.data_dir is not None:
        folder = _flowers_folder(settings.data_dir)
        if folder is None:
            raise DataError(f"{settings.data_dir} has no flower_photos/ folder with the subfolders "
                            f"{', '.join(FLOWER_CLASSES)}; extract {FLOWERS_URL} there (see "
                            "data/README.md).")
        source = str(folder)
    elif settings.profile == "smoke":
        folder = sample_folder("flower_photos", FLOWER_CLASSES, {"": 70})
        source = "generated sample data (coloured shapes standing in for the five flowers)"
    else:
        folder = _flowers_folder(default_data_root())
        if folder is None:
            return load_tfds_flowers(settings, fractions)
        source = str(folder)
    return folder_splits("tf_flowers", {"": scan_folder(folder, FLOWER_CLASSES)},
                         {"": dict(zip(SPLITS, fractions))}, settings, source,
                         "one folder per class, " + _split_text(fractions, settings.seed))


def load_tfds_flowers(settings: Settings, fractions=(0.8, 0.1, 0.1)) -> ImageData:
    """tf_flowers through tensorflow_datasets (prepared, or downloaded), split like the folder."""
    builder = _tfds_builder("tf_flowers")
    raw, labels = _tfds_examples(
        builder, FLOWERS_URL,
        f"tf_flowers is not prepared in {builder.data_dir} and {FLOWERS_URL} cannot be "
        f"reached; extract flower_photos.tgz into {default_data_root()}/ (giving "
        f"{default_data_root()}/flower_photos/daisy, ...) or set DATA_DIR to that folder.",
    )
    parts = stratified_split(labels, fractions, settings.seed)
    layout = "tensorflow_datasets' one split, " + _split_text(fractions, settings.seed)
    return _tfds_image_data("tf_flowers", builder, raw, labels, parts, settings, layout)


SPLIT_FOLDERS = {"train": ("train", "training"), "val": ("val", "valid", "validation"),
                 "test": ("test", "testing")}
ANIMALS_LAYOUT = (
    "one subfolder per class (animals/<class>/*.jpg), or train/ and test/ folders, and "
    "optionally val/ (or valid/, validation/; any case), that each hold those class subfolders"
)


def _presplit(root: Path) -> dict[str, Path]:
    """The split folders (any case) of a tree with train/ and test/; {} unless it has both."""
    folders = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    found = {}
    for split, names in SPLIT_FOLDERS.items():
        matches = [p for p in folders if p.name.lower() in names]
        if matches:
            found[split] = matches[0]
    return found if "train" in found and "test" in found else {}


def load_image_folder(settings: Settings, name: str, root: Path, source: str | None = None,
                      fractions=(0.8, 0.1, 0.1)) -> ImageData:
    """A class-per-subfolder folder, pre-split (without val/, `fractions[1]` of train/ is
    carved out) or split with the seed."""
    root = Path(root)
    splits = _presplit(root)
    if splits:
        scans = {p.name: scan_folder(p) for p in splits.values()}
        targets = {p.name: {split: 1.0} for split, p in splits.items()}
        layout = "pre-split: " + ", ".join(f"{p.name}/" for p in splits.values())
        if "val" not in splits:
            train = splits["train"].name
            targets[train] = {"train": 1 - fractions[1], "val": fractions[1]}
            layout += (f"; validation carved from {train}/ ({fractions[1]:.0%}, stratified, "
                       f"seed {settings.seed})")
    else:
        scans = {"": scan_folder(root)}
        targets = {"": dict(zip(SPLITS, fractions))}
        layout = "one folder per class, " + _split_text(fractions, settings.seed)
    return folder_splits(name, scans, targets, settings, source or str(root), layout)


def load_animals(settings: Settings, kaggle_dataset: str | None = None) -> ImageData:
    """Notebook 04's animal folder (any classes): DATA_DIR, data/animals/ or a Kaggle download."""
    local = default_data_root() / "animals"
    source = None
    if settings.data_dir is not None:
        root = settings.data_dir
    elif settings.profile == "smoke":
        root = sample_folder("animals", ANIMAL_CLASSES, {"": 80})
        source = "generated sample data (coloured shapes standing in for five animals)"
    elif local.is_dir():
        root = local
    elif kaggle_dataset:
        root = download_kaggle(kaggle_dataset)
    else:
        raise DataError(f"No animal images found: put them in {local} ({ANIMALS_LAYOUT}), set "
                        "DATA_DIR to such a folder, or set KAGGLE_DATASET to a Kaggle dataset id "
                        "(with Kaggle credentials).")
    return load_image_folder(settings, "animals", root, source)


def download_kaggle(dataset: str) -> Path:
    """Download a Kaggle dataset with kagglehub (one sentence when that cannot happen)."""
    home = Path(os.environ.get("KAGGLE_CONFIG_DIR", Path.home() / ".kaggle"))
    has_credentials = (os.environ.get("KAGGLE_USERNAME") and os.environ.get("KAGGLE_KEY")) or any(
        p.is_file() for p in (home / "kaggle.json", Path.home() / ".config/kaggle/kaggle.json"))
    if not has_credentials:  # looked for, never read or printed
        raise DataError(f"Downloading {dataset!r} from Kaggle needs credentials: set "
                        "KAGGLE_USERNAME and KAGGLE_KEY, or put kaggle.json in ~/.kaggle/; or "
                        "download it yourself into data/animals/.")
    if not can_download("https://www.kaggle.com"):
        raise DataError(f"www.kaggle.com cannot be reached to download {dataset!r}; download it "
                        f"elsewhere and put it in {default_data_root() / 'animals'} "
                        f"({ANIMALS_LAYOUT}).")
    try:
        import kagglehub
    except ImportError as error:
        raise DataError("Downloading from Kaggle needs kagglehub: pip install kagglehub.") from error
    path = Path(kagglehub.dataset_download(dataset))
    # Kaggle archives often wrap the class folders in one or two extra folders.
    while True:
        subfolders = [p for p in path.iterdir() if p.is_dir() and is_data(p.name)]
        if len(subfolders) != 1 or _presplit(path):
            return path
        path = subfolders[0]


def _read_cifar_batch(handle) -> tuple[np.ndarray, np.ndarray]:
    batch = pickle.load(handle, encoding="bytes")
    images = np.asarray(batch[b"data"], np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return images, np.asarray(batch[b"labels"], np.uint8)


def read_cifar10(path: Path) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Read the official python version: a `cifar-10-batches-py/` folder or the .tar.gz."""
    path = Path(path)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    parts: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    if path.is_dir():
        for name in names:
            with open(path / name, "rb") as handle:
                parts[name] = _read_cifar_batch(handle)
    else:
        with tarfile.open(path, "r:gz") as archive:
            for member in archive.getmembers():
                if Path(member.name).name in names:
                    parts[Path(member.name).name] = _read_cifar_batch(archive.extractfile(member))
        missing = [n for n in names if n not in parts]
        if missing:
            raise DataError(f"{path} does not hold the CIFAR-10 batch {missing[0]}; is it the "
                            "python version?")
    train = [parts[n] for n in names[:5]]
    x_train, y_train = np.concatenate([x for x, _ in train]), np.concatenate([y for _, y in train])
    return (x_train, y_train), parts["test_batch"]


def find_cifar10(base: Path | None) -> Path | None:
    """A local copy of CIFAR-10: in `base`, in data/, or in Keras's download cache."""
    places = [base] if base is not None else []
    places += [default_data_root(), keras_home() / "datasets",
               keras_home() / "datasets" / "cifar-10-batches-py-target"]
    for place in places:
        for candidate in (place / "cifar-10-batches-py", place / "cifar-10-python.tar.gz", place):
            if candidate.is_dir() and (candidate / "data_batch_1").is_file():
                return candidate
            if candidate.is_file() and candidate.name.endswith(".tar.gz"):
                return candidate
    return None


def load_cifar10_arrays(settings: Settings):
    """((x_train, y_train), (x_test, y_test), source) from the profile's source."""
    if settings.data_dir is not None:
        found = find_cifar10(settings.data_dir)
        if found is None:
            raise DataError(f"{settings.data_dir} holds neither cifar-10-batches-py/ nor "
                            f"cifar-10-python.tar.gz; download {CIFAR10_URL} into it.")
        return (*read_cifar10(found), str(found))
    if settings.profile == "smoke":
        # Same shapes and palette as the stand-in weights' source task, paired differently.
        x, y = sample_arrays(1500, 10, 32, seed=7, colour_shift=3)
        source = "generated sample data (10 classes of coloured shapes at 32x32)"
        return (x[:1200], y[:1200]), (x[1200:], y[1200:]), source
    found = find_cifar10(None)
    if found is not None:
        return (*read_cifar10(found), str(found))
    if not can_download(CIFAR10_URL):
        raise DataError(f"CIFAR-10 is not on this machine and {CIFAR10_URL} cannot be reached; put "
                        "cifar-10-python.tar.gz (or the extracted cifar-10-batches-py/) into "
                        f"{default_data_root()}/ or {keras_home() / 'datasets'}/, where Keras "
                        "caches it.")
    import keras
    (x_train, y_train), (x_test, y_test) = keras.datasets.cifar10.load_data()
    return (x_train, y_train.reshape(-1)), (x_test, y_test.reshape(-1)), "keras.datasets.cifar10"


def image_data_from_arrays(name: str, splits: dict[str, tuple[np.ndarray, np.ndarray]],
                           class_names: Sequence[str], source: str, fingerprint: str = "",
                           layout: str = "", batch_size: int | None = None) -> ImageData:
    """A data set held in memory: (uint8 images, integer labels) for "train", "val" and "test"."""
    parts = {k: (x, np.asarray(y, np.int32).reshape(-1)) for k, (x, y) in splits.items()}
    return _image_data(name, {k: (examples_from_arrays(x, y), y) for k, (x, y) in parts.items()},
                       class_names, batch_size, source=source,
                       image_size=int(parts["train"][0].shape[1]), fingerprint=fingerprint,
                       layout=layout)


def load_cifar10(settings: Settings, val_fraction: float) -> ImageData:
    """CIFAR-10 at 32x32: the official test set, `val_fraction` of training held out."""
    (x_train, y_train), (x_test, y_test), source = load_cifar10_arrays(settings)
    y_train, y_test = y_train.reshape(-1), y_test.reshape(-1)
    train_idx, val_idx = stratified_split(y_train, (1 - val_fraction, val_fraction), settings.seed)
    train_idx, val_idx = _limit(train_idx, settings.limit), _limit(val_idx, settings.limit)
    test_idx = _limit(stratified_split(y_test, (1.0,), settings.seed)[0], settings.limit)
    return image_data_from_arrays(
        "CIFAR-10",
        {"train": (x_train[train_idx], y_train[train_idx]),
         "val": (x_train[val_idx], y_train[val_idx]), "test": (x_test[test_idx], y_test[test_idx])},
        CIFAR10_CLASSES, source,
        fingerprint=fingerprint(train_idx.tolist(), val_idx.tolist(), test_idx.tolist()),
        layout=f"the official test set; {val_fraction:.0%} of the training set held out for "
        f"validation (stratified, seed {settings.seed})", batch_size=settings.batch_size,
    )
