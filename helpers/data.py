"""Data sets: real sources, offline sample data, seeded splits and `tf.data` pipelines.

Every loader returns an `ImageData`: three unbatched, ordered splits of
(uint8 image, int label) examples plus what was learned on the way (class names,
counts, skipped files, a fingerprint of the split membership). `batches` turns a
split into the pipeline `model.fit` reads.

Real image folders are scanned once before training: files that cannot be decoded
are skipped and counted, odd formats (CMYK, 16-bit, very large, ...) are converted
to RGB once into the cache, so nothing fails mid-epoch.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import io
import os
import pickle
import shutil
import socket
import tarfile
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf
from PIL import Image, ImageDraw, ImageFile

from helpers.config import CourseError, Settings, SettingsError, cache_dir, offline, project_root

AUTOTUNE = tf.data.AUTOTUNE
SAMPLE_VERSION = "v1"  # bump when the generator changes, so caches are rebuilt

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
FLOWER_CLASSES = ("daisy", "dandelion", "roses", "sunflowers", "tulips")
ANIMAL_CLASSES = ("cat", "cow", "dog", "elephant", "horse")
CATS_DOGS_CLASSES = ("cats", "dogs")

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CATS_DOGS_URL = "https://storage.googleapis.com/mledu-datasets/cats_and_dogs_filtered.zip"
FLOWERS_URL = "https://storage.googleapis.com/download.tensorflow.org/example_images/flower_photos.tgz"

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff"}
MAX_PIXELS = 40_000_000  # larger images are downscaled once into the cache


class DataError(CourseError):
    """Data that is missing or unusable; the message names the source and the folder."""


# ---------------------------------------------------------------------- container


@dataclass
class ImageData:
    """Three ordered splits of (uint8 image, int32 label) examples, and what is known of them."""

    name: str
    train: tf.data.Dataset
    val: tf.data.Dataset
    test: tf.data.Dataset
    class_names: list[str]
    counts: dict[str, np.ndarray]  # split -> images per class
    source: str
    image_size: int
    skipped: list[tuple[str, str]] = field(default_factory=list)
    converted: int = 0
    fingerprint: str = ""

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def size(self, split: str) -> int:
        """Number of images in a split."""
        return int(self.counts[split].sum())

    def summary(self):
        """Images per class and split, as a pandas DataFrame."""
        import pandas as pd

        table = pd.DataFrame(
            {split: counts for split, counts in self.counts.items()}, index=self.class_names
        )
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
            "train {} / validation {} / test {} images at {}x{}".format(
                self.size("train"), self.size("val"), self.size("test"),
                self.image_size, self.image_size,
            ),
            f"split fingerprint {self.fingerprint}",
        ]
        ratio = self.imbalance()
        if ratio > 1.5:
            lines.append(
                f"class imbalance: the largest training class is {ratio:.1f}x the smallest; "
                "accuracy alone can flatter a model here, read the per-class report."
            )
        if self.converted:
            lines.append(f"converted {self.converted} images to RGB (grayscale, CMYK, 16-bit, ...)")
        if self.skipped:
            lines.append(f"skipped {len(self.skipped)} files that cannot be read:")
            lines += [f"  {path}: {reason}" for path, reason in self.skipped[:10]]
            if len(self.skipped) > 10:
                lines.append(f"  ... and {len(self.skipped) - 10} more")
        return "\n".join(lines)


# ---------------------------------------------------------------------- pipelines


def batches(
    examples: tf.data.Dataset,
    batch_size: int,
    *,
    shuffle_seed: int | None = None,
    size: int | None = None,
) -> tf.data.Dataset:
    """Batch a split for Keras; shuffle (seeded, every epoch) only when a seed is given."""
    ds = examples
    if shuffle_seed is not None:
        count = size if size is not None else int(ds.cardinality())
        buffer = count if count > 0 else 10_000
        ds = ds.shuffle(min(buffer, 50_000), seed=shuffle_seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    ds = ds.map(lambda x, y: (tf.cast(x, tf.float32), y), num_parallel_calls=AUTOTUNE)
    return ds.prefetch(AUTOTUNE)


def _fits_in_memory(count: int, image_size: int, budget_fraction: float = 0.3) -> bool:
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = 8 * 2**30
    return count * image_size * image_size * 3 < budget_fraction * total


def _decode_resize(data: tf.Tensor, image_size: int) -> tf.Tensor:
    image = tf.io.decode_image(data, channels=3, expand_animations=False, dtype=tf.uint8)
    image = tf.image.resize(image, (image_size, image_size), method="bilinear")
    image.set_shape((image_size, image_size, 3))
    return tf.cast(tf.round(tf.clip_by_value(image, 0.0, 255.0)), tf.uint8)


def examples_from_files(paths: Sequence[str], labels: Sequence[int], image_size: int) -> tf.data.Dataset:
    """Decode and resize image files in parallel, in order, cached in memory when they fit."""
    ds = tf.data.Dataset.from_tensor_slices((list(map(str, paths)), np.asarray(labels, np.int32)))
    ds = ds.map(
        lambda p, y: (_decode_resize(tf.io.read_file(p), image_size), y),
        num_parallel_calls=AUTOTUNE,
        deterministic=True,
    )
    return ds.cache() if _fits_in_memory(len(paths), image_size) else ds


def examples_from_arrays(images: np.ndarray, labels: np.ndarray, image_size: int | None = None) -> tf.data.Dataset:
    """Examples from in-memory uint8 arrays (resized only when a different size is asked)."""
    ds = tf.data.Dataset.from_tensor_slices((images, np.asarray(labels, np.int32).reshape(-1)))
    if image_size is not None and image_size != images.shape[1]:
        ds = ds.map(
            lambda x, y: (
                tf.cast(tf.round(tf.image.resize(x, (image_size, image_size))), tf.uint8),
                y,
            ),
            num_parallel_calls=AUTOTUNE,
        )
    return ds


def take_images(examples: tf.data.Dataset, count: int) -> tuple[np.ndarray, np.ndarray]:
    """The first `count` examples of a split as numpy arrays (for grids and checks)."""
    images, labels = [], []
    for image, label in examples.take(count):
        images.append(image.numpy())
        labels.append(int(label))
    return np.stack(images), np.asarray(labels)


# ------------------------------------------------------------------------- splits


def stratified_split(labels: np.ndarray, fractions: Sequence[float], seed: int) -> list[np.ndarray]:
    """Split indices per class with a seeded shuffle; every class lands in every split
    it can, and each split is ordered round-robin over classes (so a LIMIT stays balanced)."""
    labels = np.asarray(labels).reshape(-1)
    fractions = np.asarray(fractions, float) / np.sum(fractions)
    rng = np.random.default_rng(seed)
    parts: list[list[tuple[int, int, int]]] = [[] for _ in fractions]
    for cls in np.unique(labels):
        idx = np.flatnonzero(labels == cls)
        rng.shuffle(idx)
        n = len(idx)
        sizes = np.floor(fractions * n).astype(int)
        for k in range(1, len(sizes)):  # small classes still reach every split
            if sizes[k] == 0 and fractions[k] > 0 and n >= len(sizes):
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


def fingerprint(*members: Sequence) -> str:
    """A short hash of split membership: equal seeds give equal fingerprints."""
    digest = hashlib.sha256()
    for split in members:
        digest.update(b"|")
        for item in split:
            digest.update(str(item).encode())
            digest.update(b",")
    return digest.hexdigest()[:16]


def _counts(labels: np.ndarray, num_classes: int) -> np.ndarray:
    return np.bincount(np.asarray(labels, int), minlength=num_classes)


def check_batch_size(data: ImageData, batch_size: int) -> None:
    """Stop with one sentence when a batch would be larger than the training set."""
    n = data.size("train")
    if batch_size > n:
        raise SettingsError(
            f"BATCH_SIZE {batch_size} is larger than the {n} training images; "
            f"use {n} or fewer, or raise LIMIT."
        )


# ------------------------------------------------------------------ image folders


@dataclass
class FolderScan:
    """The readable images of a class-per-subfolder tree."""

    root: Path
    class_names: list[str]
    paths: list[str]
    labels: np.ndarray
    skipped: list[tuple[str, str]]
    converted: int


def _convert_into_cache(path: Path, image: Image.Image) -> str:
    stat = path.stat()
    key = hashlib.sha1(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()
    target = cache_dir() / "converted" / f"{key}.png"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        if image.mode in ("I;16", "I;16B", "I;16L", "I"):
            array = np.asarray(image, dtype=np.float64)
            peak = array.max() if array.max() > 255 else 255.0
            image = Image.fromarray((array / max(peak, 1.0) * 255).astype(np.uint8))
        if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
            rgba = image.convert("RGBA")
            image = Image.new("RGB", rgba.size, (255, 255, 255))
            image.paste(rgba, mask=rgba.getchannel("A"))
        image = image.convert("RGB")
        if image.width * image.height > MAX_PIXELS:
            image.thumbnail((4096, 4096))
        tmp = target.with_suffix(f".{os.getpid()}.tmp")
        image.save(tmp, format="PNG")
        os.replace(tmp, target)
    return str(target)


_NATIVE = {  # what tf.io.decode_image reads correctly with channels=3
    "JPEG": {"RGB", "L"},
    "PNG": {"RGB", "RGBA", "L", "P"},
    "GIF": {"P", "L", "RGB"},
    "BMP": {"RGB", "L", "P"},
}


def check_image(path: Path) -> tuple[str | None, str | None, bool]:
    """Decode one file fully. Returns (usable path, reason skipped, converted?)."""
    try:
        if path.stat().st_size == 0:
            return None, "empty file", False
        with open(path, "rb") as handle:
            data = handle.read()
    except PermissionError:
        return None, "unreadable (permission denied)", False
    except OSError as error:
        return None, f"unreadable ({error.strerror or error})", False
    try:
        with Image.open(io.BytesIO(data)) as image:
            fmt, mode, size = image.format, image.mode, image.size
            if fmt == "JPEG":
                image.draft(mode if mode in ("RGB", "L") else None, (256, 256))
            image.load()
            native = mode in _NATIVE.get(fmt, set()) and size[0] * size[1] <= MAX_PIXELS
            if native:
                return str(path), None, False
    except Image.DecompressionBombError:
        pass  # very large: decoded again below, downscaled, without the bomb check
    except Image.UnidentifiedImageError:
        return None, "not an image", False
    except (OSError, SyntaxError, ValueError):
        return None, "truncated or corrupt image", False
    try:
        limit = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        with Image.open(io.BytesIO(data)) as image:
            if image.format == "JPEG":
                image.draft("RGB", (4096, 4096))
            image.load()
            return _convert_into_cache(path, image), None, True
    except (OSError, SyntaxError, ValueError):
        return None, "truncated or corrupt image", False
    finally:
        Image.MAX_IMAGE_PIXELS = limit


def _class_folders(root: Path, expected: Sequence[str] | None = None) -> list[Path]:
    if not root.is_dir():
        raise DataError(f"{root} is not a folder.")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if expected is not None:
        names = [p.name for p in folders]
        missing = [c for c in expected if c not in names]
        if missing:
            raise DataError(
                f"{root} has no {missing[0]}/ folder; expected one subfolder per class: "
                f"{', '.join(expected)}."
            )
        folders = [root / c for c in expected]
    if not folders:
        raise DataError(
            f"{root} has no class subfolders; put each class's images in its own "
            f"subfolder ({root}/<class name>/<image>.jpg)."
        )
    if len(folders) == 1:
        raise DataError(
            f"{root} has only one class folder ({folders[0].name}/); a classifier needs "
            "at least two, one subfolder per class."
        )
    return folders


def scan_folder(root: Path | str, expected: Sequence[str] | None = None, progress: bool = True) -> FolderScan:
    """List and check every file of a class-per-subfolder tree (in parallel)."""
    root = Path(root)
    folders = _class_folders(root, expected)
    entries: list[tuple[Path, int]] = []
    for label, folder in enumerate(folders):
        files = sorted(
            p for p in folder.rglob("*")
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
        )
        entries += [(p, label) for p in files]
    paths: list[str] = []
    labels: list[int] = []
    skipped: list[tuple[str, str]] = []
    converted = 0
    workers = min(16, 2 * (os.cpu_count() or 1))
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        results = pool.map(lambda entry: check_image(entry[0]), entries)
        for (path, label), (usable, reason, was_converted) in zip(entries, results):
            if usable is None:
                skipped.append((str(path.relative_to(root)), reason or "unreadable"))
            else:
                paths.append(usable)
                labels.append(label)
                converted += was_converted
    labels_array = np.asarray(labels, np.int32)
    counts = _counts(labels_array, len(folders))
    for folder, count in zip(folders, counts):
        if count == 0:
            raise DataError(
                f"Class folder {folder} has no readable images; add images to it or remove it."
            )
    if progress and len(entries) > 2000:
        print(f"checked {len(entries)} files under {root}")
    return FolderScan(root, [f.name for f in folders], paths, labels_array, skipped, converted)


def _relative_members(scan: FolderScan, indices: np.ndarray) -> list[str]:
    return [f"{scan.labels[i]}:{Path(scan.paths[i]).name}" for i in indices]


def folder_splits(
    name: str,
    scans: dict[str, FolderScan],
    fractions: dict[str, dict[str, float]],
    image_size: int,
    seed: int,
    limit: int | None,
    source: str,
) -> ImageData:
    """Build the three splits from scanned folders.

    `fractions` maps each scanned folder to the share of it each split takes, e.g.
    {"all": {"train": .8, "val": .1, "test": .1}} for one folder, or
    {"train": {"train": 1}, "validation": {"val": .8, "test": .2}} for the article's tree.
    """
    class_names = None
    picked: dict[str, tuple[list[str], np.ndarray, list[str]]] = {}
    skipped: list[tuple[str, str]] = []
    converted = 0
    for folder, scan in scans.items():
        if class_names is None:
            class_names = scan.class_names
        elif scan.class_names != class_names:
            raise DataError(
                f"{scan.root} has classes {scan.class_names}, but {class_names} were found "
                "beside it; every split needs the same class folders."
            )
        skipped += [(f"{folder}/{path}", reason) for path, reason in scan.skipped]
        converted += scan.converted
        targets = fractions[folder]
        parts = stratified_split(scan.labels, list(targets.values()), seed)
        for split, indices in zip(targets, parts):
            indices = _limit(indices, limit)
            picked[split] = (
                [scan.paths[i] for i in indices],
                scan.labels[indices],
                _relative_members(scan, indices),
            )
    assert class_names is not None
    for split in ("train", "val", "test"):
        if split not in picked or len(picked[split][0]) == 0:
            raise DataError(f"The {split} split of {name} came out empty; add images per class.")
    return ImageData(
        name=name,
        train=examples_from_files(*picked["train"][:2], image_size),
        val=examples_from_files(*picked["val"][:2], image_size),
        test=examples_from_files(*picked["test"][:2], image_size),
        class_names=list(class_names),
        counts={s: _counts(picked[s][1], len(class_names)) for s in ("train", "val", "test")},
        source=source,
        image_size=image_size,
        skipped=skipped,
        converted=converted,
        fingerprint=fingerprint(*(picked[s][2] for s in ("train", "val", "test"))),
    )


# ------------------------------------------------------------------- sample data


def _palette(num_classes: int) -> list[tuple[int, int, int]]:
    import colorsys

    return [
        tuple(int(255 * c) for c in colorsys.hsv_to_rgb(k / num_classes, 0.85, 0.95))
        for k in range(num_classes)
    ]


SHAPES = ("circle", "square", "triangle", "cross", "ring", "diamond", "hbar", "vbar", "x", "dots")


def draw_sample(label: int, num_classes: int, size: int, rng: np.random.Generator,
                colour_shift: int = 0) -> np.ndarray:
    """One generated image: class `label` is shape `label` in colour `label + colour_shift`
    of a `num_classes`-colour palette, at a random place and size on a noisy background."""
    background = rng.integers(60, 190, size=3)
    array = np.clip(
        background + rng.normal(0, 18, size=(size, size, 3)), 0, 255
    ).astype(np.uint8)
    image = Image.fromarray(array)
    draw = ImageDraw.Draw(image)
    colour = np.array(_palette(num_classes)[(label + colour_shift) % num_classes])
    colour = colour + rng.integers(-25, 26, size=3)
    fill = tuple(int(c) for c in np.clip(colour, 0, 255))
    extent = rng.uniform(0.35, 0.6) * size
    cx, cy = rng.uniform(0.3, 0.7, size=2) * size
    x0, y0, x1, y1 = cx - extent / 2, cy - extent / 2, cx + extent / 2, cy + extent / 2
    width = max(2, int(extent / 5))
    shape = SHAPES[label % len(SHAPES)]
    if shape == "circle":
        draw.ellipse((x0, y0, x1, y1), fill=fill)
    elif shape == "square":
        draw.rectangle((x0, y0, x1, y1), fill=fill)
    elif shape == "triangle":
        draw.polygon([(cx, y0), (x1, y1), (x0, y1)], fill=fill)
    elif shape == "cross":
        draw.rectangle((cx - width, y0, cx + width, y1), fill=fill)
        draw.rectangle((x0, cy - width, x1, cy + width), fill=fill)
    elif shape == "ring":
        draw.ellipse((x0, y0, x1, y1), outline=fill, width=width)
    elif shape == "diamond":
        draw.polygon([(cx, y0), (x1, cy), (cx, y1), (x0, cy)], fill=fill)
    elif shape == "hbar":
        draw.rectangle((x0, cy - width, x1, cy + width), fill=fill)
    elif shape == "vbar":
        draw.rectangle((cx - width, y0, cx + width, y1), fill=fill)
    elif shape == "x":
        draw.line((x0, y0, x1, y1), fill=fill, width=width)
        draw.line((x0, y1, x1, y0), fill=fill, width=width)
    else:
        r = max(1.5, extent / 8)
        for dx, dy in ((-1, -1), (1, -1), (-1, 1), (1, 1)):
            px, py = cx + dx * extent / 4, cy + dy * extent / 4
            draw.ellipse((px - r, py - r, px + r, py + r), fill=fill)
    return np.asarray(image)


def source_task(count: int, size: int, seed: int = 1234) -> tuple[np.ndarray, np.ndarray]:
    """The generated source task the smoke profile's stand-in weights learn: ten classes of
    shapes, each in a colour of a ten-colour palette. The notebooks' sample data sets use
    other class counts, palettes and pairings, so a smoke run transfers from a related task
    to a new one, as ImageNet weights transfer to flowers or pets."""
    images, labels = sample_arrays(count, 10, size, seed)
    return images, labels.astype(np.int32)


def sample_arrays(count: int, num_classes: int, size: int, seed: int,
                  colour_shift: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Generated, learnable images in memory (class k: shape k in colour k + colour_shift)."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(count) % num_classes).astype(np.uint8)
    images = np.stack([draw_sample(int(k), num_classes, size, rng, colour_shift) for k in labels])
    return images, labels


def _write_odd_files(folder: Path, label: int, num_classes: int, rng: np.random.Generator) -> None:
    """The kinds of files real folders contain: broken ones and unusual but valid ones."""
    good = Image.fromarray(draw_sample(label, num_classes, 96, rng))
    buffer = io.BytesIO()
    good.save(buffer, format="JPEG", quality=90)
    data = buffer.getvalue()
    (folder / "zz_truncated.jpg").write_bytes(data[: len(data) // 3])
    (folder / "zz_empty.jpg").write_bytes(b"")
    (folder / "zz_notes.txt").write_text("not an image\n")
    good.convert("L").save(folder / "zz_grayscale.jpg", quality=90)
    good.convert("CMYK").save(folder / "zz_cmyk.jpg", quality=90)
    rgba = good.convert("RGBA")
    rgba.putalpha(200)
    rgba.save(folder / "zz_rgba.png")
    deep = (np.asarray(good.convert("L"), np.uint16) * 257).astype(np.uint16)
    Image.fromarray(deep).save(folder / "zz_16bit.png")


def _write_images(folder: Path, label: int, num_classes: int, count: int, rng: np.random.Generator) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        side = int(rng.integers(72, 129))
        Image.fromarray(draw_sample(label, num_classes, side, rng)).save(
            folder / f"{folder.name}.{i:04d}.jpg", quality=90
        )


def sample_folder(
    name: str,
    class_names: Sequence[str],
    per_class: dict[str, int],
    *,
    odd_files: bool = True,
    seed: int = 0,
) -> Path:
    """Generate (once, into the cache) an image-folder data set of coloured shapes.

    `per_class` maps a subfolder to the images per class in it, e.g. {"": 70} for
    one class-per-subfolder tree, {"train": 200, "validation": 100} for the article's.
    With `odd_files`, the first class of the first subfolder also gets a truncated JPEG,
    an empty file, a text file, and grayscale, CMYK, RGBA and 16-bit images.
    """
    key = f"{name}-{SAMPLE_VERSION}-{seed}-" + hashlib.sha1(
        repr((list(class_names), sorted(per_class.items()), odd_files)).encode()
    ).hexdigest()[:8]
    root = cache_dir() / "samples" / key
    if (root / ".complete").exists():
        return root
    tmp = root.with_name(root.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    rng = np.random.default_rng(seed)
    for sub_index, (sub, count) in enumerate(per_class.items()):
        for label, cls in enumerate(class_names):
            folder = tmp / sub / cls if sub else tmp / cls
            _write_images(folder, label, len(class_names), count, rng)
            if odd_files and sub_index == 0 and label == 0:
                _write_odd_files(folder, label, len(class_names), rng)
    (tmp / ".complete").write_text("ok\n")
    try:
        os.replace(tmp, root)
    except OSError:  # another process finished first
        shutil.rmtree(tmp, ignore_errors=True)
    return root


# --------------------------------------------------------------------- downloads


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


# ---------------------------------------------------------------- cats vs dogs


def _cats_dogs_root(base: Path) -> Path | None:
    for candidate in (base, base / "cats_and_dogs_filtered", base / "cats_and_dogs"):
        if (candidate / "train").is_dir() and (candidate / "validation").is_dir():
            return candidate
    return None


def load_cats_vs_dogs(settings: Settings, test_fraction: float = 0.2) -> ImageData:
    """Cats vs dogs: a `train/` + `validation/` tree; the test set is carved from validation
    with a seeded split at the file level, so no image is in both."""
    if settings.data_dir is not None:
        root = _cats_dogs_root(settings.data_dir)
        if root is None:
            raise DataError(
                f"{settings.data_dir} has no train/ and validation/ folders; expected "
                "train/cats, train/dogs, validation/cats, validation/dogs (see data/README.md)."
            )
        source = str(root)
    elif settings.profile == "smoke":
        root = sample_folder("cats_vs_dogs", CATS_DOGS_CLASSES, {"train": 200, "validation": 100})
        source = "generated sample data (coloured shapes standing in for cats and dogs)"
    else:
        root = _cats_dogs_root(default_data_root()) or _download_cats_dogs()
        source = str(root)
    scans = {
        "train": scan_folder(root / "train", CATS_DOGS_CLASSES),
        "validation": scan_folder(root / "validation", CATS_DOGS_CLASSES),
    }
    data = folder_splits(
        "cats vs dogs",
        scans,
        {"train": {"train": 1.0}, "validation": {"val": 1 - test_fraction, "test": test_fraction}},
        settings.image_size,
        settings.seed,
        settings.limit,
        source,
    )
    check_batch_size(data, settings.batch_size)
    return data


def _download_cats_dogs() -> Path:
    target = default_data_root()
    if not can_download(CATS_DOGS_URL):
        raise DataError(
            f"Cats vs dogs is not in {target} and {CATS_DOGS_URL} cannot be reached; download "
            f"and unzip it into {target}/ (giving {target}/cats_and_dogs_filtered/train and "
            "validation) or set DATA_DIR to your own train/ + validation/ tree."
        )
    import keras

    target.mkdir(parents=True, exist_ok=True)
    path = keras.utils.get_file(
        "cats_and_dogs_filtered.zip", origin=CATS_DOGS_URL, extract=True, cache_dir=str(target),
        cache_subdir="",
    )
    root = _cats_dogs_root(Path(path)) or _cats_dogs_root(target)
    if root is None:
        raise DataError(f"The download from {CATS_DOGS_URL} did not contain train/ and validation/.")
    return root


# -------------------------------------------------------------------- tf_flowers


def _flowers_folder(base: Path) -> Path | None:
    for candidate in (base / "flower_photos", base):
        if candidate.is_dir() and all((candidate / c).is_dir() for c in FLOWER_CLASSES):
            return candidate
    return None


def load_tf_flowers(settings: Settings, fractions=(0.8, 0.1, 0.1)) -> ImageData:
    """tf_flowers (3,670 photos, 5 classes) split 80/10/10 with a seeded, stratified split:
    from a `flower_photos/` folder, or through tensorflow_datasets."""
    split = {"train": fractions[0], "val": fractions[1], "test": fractions[2]}
    if settings.data_dir is not None:
        folder = _flowers_folder(settings.data_dir)
        if folder is None:
            raise DataError(
                f"{settings.data_dir} has no flower_photos/ folder with the subfolders "
                f"{', '.join(FLOWER_CLASSES)}; extract {FLOWERS_URL} there (see data/README.md)."
            )
    elif settings.profile == "smoke":
        folder = sample_folder("flower_photos", FLOWER_CLASSES, {"": 70})
    else:
        folder = _flowers_folder(default_data_root())
        if folder is None:
            data = load_tfds_flowers(settings, fractions)
            check_batch_size(data, settings.batch_size)
            return data
    source = str(folder) if settings.profile == "full" or settings.data_dir else (
        "generated sample data (coloured shapes standing in for the five flowers)"
    )
    data = folder_splits(
        "tf_flowers", {"all": scan_folder(folder, FLOWER_CLASSES)}, {"all": split},
        settings.image_size, settings.seed, settings.limit, source,
    )
    check_batch_size(data, settings.batch_size)
    return data


def load_tfds_flowers(settings: Settings, fractions=(0.8, 0.1, 0.1), data_dir: str | None = None) -> ImageData:
    """tf_flowers through tensorflow_datasets: labels are read without decoding, split
    with the same seeded stratified split, and the images decoded like folder files."""
    import tensorflow_datasets as tfds

    builder = tfds.builder("tf_flowers", data_dir=data_dir)
    if not _tfds_prepared(builder):
        if not can_download(FLOWERS_URL):
            raise DataError(
                f"tf_flowers is not prepared in {builder.data_dir} and {FLOWERS_URL} cannot be "
                f"reached; extract flower_photos.tgz into {default_data_root()}/ (giving "
                f"{default_data_root()}/flower_photos/daisy, ...) or set DATA_DIR to that folder."
            )
        builder.download_and_prepare()
    decoders = {"image": tfds.decode.SkipDecoding()}
    raw = builder.as_dataset(split="train", shuffle_files=False, decoders=decoders, as_supervised=True)
    labels = np.fromiter((int(y) for _, y in raw.as_numpy_iterator()), dtype=np.int32)
    parts = stratified_split(labels, fractions, settings.seed)
    parts = [_limit(p, settings.limit) for p in parts]
    class_names = list(builder.info.features["label"].names)
    indexed = raw.enumerate()

    def subset(indices: np.ndarray) -> tf.data.Dataset:
        mask = np.zeros(len(labels), bool)
        mask[indices] = True
        table = tf.constant(mask)
        picked = indexed.filter(lambda i, example: tf.gather(table, i))
        images = picked.map(
            lambda i, example: (_decode_resize(example[0], settings.image_size),
                                tf.cast(example[1], tf.int32)),
            num_parallel_calls=AUTOTUNE, deterministic=True,
        )
        return images.cache() if _fits_in_memory(len(indices), settings.image_size) else images

    # Within a split, examples keep tfds's own fixed order.
    parts = [np.sort(p) for p in parts]
    return ImageData(
        name="tf_flowers",
        train=subset(parts[0]),
        val=subset(parts[1]),
        test=subset(parts[2]),
        class_names=class_names,
        counts={s: _counts(labels[p], len(class_names)) for s, p in zip(("train", "val", "test"), parts)},
        source=f"tensorflow_datasets tf_flowers ({builder.data_dir})",
        image_size=settings.image_size,
        fingerprint=fingerprint(*(p.tolist() for p in parts)),
    )


def _tfds_prepared(builder) -> bool:
    try:
        return bool(builder.is_prepared())
    except AttributeError:  # older tfds
        return Path(builder.data_dir).joinpath("dataset_info.json").exists()


# ----------------------------------------------------------------------- animals


def _presplit(root: Path) -> dict[str, Path] | None:
    names = {"train": ("train",), "val": ("val", "valid", "validation"), "test": ("test",)}
    found = {}
    for split, options in names.items():
        for option in options:
            if (root / option).is_dir():
                found[split] = root / option
                break
    return found if len(found) == 3 else None


def load_image_folder(
    settings: Settings,
    name: str,
    root: Path,
    fractions=(0.8, 0.1, 0.1),
    source: str | None = None,
) -> ImageData:
    """A class-per-subfolder folder: pre-split (train/, val/, test/) or one folder
    that is split with the seed."""
    root = Path(root)
    presplit = _presplit(root)
    if presplit:
        scans = {split: scan_folder(path) for split, path in presplit.items()}
        targets = {split: {split: 1.0} for split in presplit}
    else:
        scans = {"all": scan_folder(root)}
        targets = {"all": {"train": fractions[0], "val": fractions[1], "test": fractions[2]}}
    data = folder_splits(name, scans, targets, settings.image_size, settings.seed, settings.limit,
                         source or str(root))
    check_batch_size(data, settings.batch_size)
    return data


ANIMALS_LAYOUT = (
    "one subfolder per class (animals/<class>/*.jpg), or train/, val/ and test/ "
    "folders that each hold those class subfolders"
)


def load_animals(settings: Settings, kaggle_dataset: str | None = None) -> ImageData:
    """The 5-class animal folder of article 003: DATA_DIR, data/animals/, or a Kaggle
    download when a dataset id is given and Kaggle credentials exist."""
    if settings.data_dir is not None:
        return load_image_folder(settings, "animals", settings.data_dir)
    if settings.profile == "smoke":
        root = sample_folder("animals", ANIMAL_CLASSES, {"": 80})
        return load_image_folder(
            settings, "animals", root,
            source="generated sample data (coloured shapes standing in for five animals)",
        )
    local = default_data_root() / "animals"
    if local.is_dir():
        return load_image_folder(settings, "animals", local)
    if kaggle_dataset:
        return load_image_folder(settings, "animals", download_kaggle(kaggle_dataset))
    raise DataError(
        f"No animal images found: put them in {local} ({ANIMALS_LAYOUT}), set DATA_DIR to "
        "such a folder, or set KAGGLE_DATASET to a Kaggle dataset id (with Kaggle credentials)."
    )


def kaggle_credentials_present() -> bool:
    """Whether kagglehub would find credentials (never reads or prints them)."""
    if os.environ.get("KAGGLE_USERNAME") and os.environ.get("KAGGLE_KEY"):
        return True
    home = Path(os.environ.get("KAGGLE_CONFIG_DIR", Path.home() / ".kaggle"))
    return (home / "kaggle.json").is_file() or (Path.home() / ".config/kaggle/kaggle.json").is_file()


def download_kaggle(dataset: str) -> Path:
    """Download a Kaggle dataset with kagglehub; clear messages when that cannot happen."""
    if not kaggle_credentials_present():
        raise DataError(
            f"Downloading {dataset!r} from Kaggle needs credentials: set KAGGLE_USERNAME and "
            "KAGGLE_KEY, or put kaggle.json in ~/.kaggle/; or download it yourself into data/animals/."
        )
    if not can_download("https://www.kaggle.com"):
        raise DataError(
            f"www.kaggle.com cannot be reached to download {dataset!r}; download it elsewhere "
            f"and put it in {default_data_root() / 'animals'} ({ANIMALS_LAYOUT})."
        )
    try:
        import kagglehub
    except ImportError as error:
        raise DataError("Downloading from Kaggle needs kagglehub: pip install kagglehub.") from error
    path = Path(kagglehub.dataset_download(dataset))
    # Kaggle archives often wrap the class folders in one or two extra folders.
    while True:
        subfolders = [p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")]
        if len(subfolders) == 1 and not _presplit(path):
            path = subfolders[0]
        else:
            return path


# ---------------------------------------------------------------------- CIFAR-10


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
                base = Path(member.name).name
                if base in names:
                    parts[base] = _read_cifar_batch(archive.extractfile(member))
        missing = [n for n in names if n not in parts]
        if missing:
            raise DataError(f"{path} does not hold the CIFAR-10 batch {missing[0]}; is it the python version?")
    train = [parts[n] for n in names[:5]]
    x_train = np.concatenate([x for x, _ in train])
    y_train = np.concatenate([y for _, y in train])
    return (x_train, y_train), parts["test_batch"]


def _keras_home() -> Path:
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))


def find_cifar10(base: Path | None) -> Path | None:
    """A local copy of CIFAR-10: in `base`, in data/, or in Keras's download cache."""
    places = [base] if base is not None else []
    places += [default_data_root(), _keras_home() / "datasets",
               _keras_home() / "datasets" / "cifar-10-batches-py-target"]
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
            raise DataError(
                f"{settings.data_dir} holds neither cifar-10-batches-py/ nor "
                f"cifar-10-python.tar.gz; download {CIFAR10_URL} into it."
            )
        return (*read_cifar10(found), str(found))
    if settings.profile == "smoke":
        # Same shapes and palette as the stand-in weights' source task, paired differently.
        x, y = sample_arrays(1500, 10, 32, seed=7, colour_shift=3)
        return (x[:1200], y[:1200]), (x[1200:], y[1200:]), (
            "generated sample data (10 classes of coloured shapes at 32x32)"
        )
    found = find_cifar10(None)
    if found is not None:
        return (*read_cifar10(found), str(found))
    if not can_download(CIFAR10_URL):
        raise DataError(
            f"CIFAR-10 is not on this machine and {CIFAR10_URL} cannot be reached; put "
            f"cifar-10-python.tar.gz (or the extracted cifar-10-batches-py/) into "
            f"{default_data_root()}/ or {_keras_home() / 'datasets'}/, where Keras caches it."
        )
    import keras

    (x_train, y_train), (x_test, y_test) = keras.datasets.cifar10.load_data()
    return (x_train, y_train.reshape(-1)), (x_test, y_test.reshape(-1)), "keras.datasets.cifar10"


def image_data_from_arrays(name: str, splits: dict[str, tuple[np.ndarray, np.ndarray]],
                           class_names: Sequence[str], source: str, fingerprint: str = "") -> ImageData:
    """A data set held in memory: (uint8 images, integer labels) for "train", "val" and "test"."""
    parts = {k: (x, np.asarray(y, np.int32).reshape(-1)) for k, (x, y) in splits.items()}
    return ImageData(
        name=name,
        **{k: examples_from_arrays(x, y) for k, (x, y) in parts.items()},
        class_names=list(class_names),
        counts={k: _counts(y, len(class_names)) for k, (_, y) in parts.items()},
        source=source,
        image_size=int(parts["train"][0].shape[1]),
        fingerprint=fingerprint,
    )


def load_cifar10(settings: Settings, val_fraction: float) -> ImageData:
    """CIFAR-10 at 32x32: the official test set, and `val_fraction` of the training set
    held out for validation with a seeded, stratified split."""
    (x_train, y_train), (x_test, y_test), source = load_cifar10_arrays(settings)
    y_train, y_test = y_train.reshape(-1), y_test.reshape(-1)
    train_idx, val_idx = stratified_split(y_train, (1 - val_fraction, val_fraction), settings.seed)
    train_idx, val_idx = _limit(train_idx, settings.limit), _limit(val_idx, settings.limit)
    test_idx = _limit(stratified_split(y_test, (1.0,), settings.seed)[0], settings.limit)
    data = image_data_from_arrays(
        "CIFAR-10",
        {"train": (x_train[train_idx], y_train[train_idx]), "val": (x_train[val_idx], y_train[val_idx]),
         "test": (x_test[test_idx], y_test[test_idx])},
        CIFAR10_CLASSES, source,
        fingerprint=fingerprint(train_idx.tolist(), val_idx.tolist(), test_idx.tolist()),
    )
    check_batch_size(data, settings.batch_size)
    return data


# Truncated files must fail the scan, never be half-read.
ImageFile.LOAD_TRUNCATED_IMAGES = False
