"""Image folders as users have them, scanned once before training ("The data" of notebooks 01, 02 and
04). As in Keras's `image_dataset_from_directory`, the classes are the root's sorted subfolders and a
class's images are the files anywhere below it. Hidden names, `__MACOSX`, `Thumbs.db` and `desktop.ini`
are left out silently; a file that cannot be used is skipped with its reason; what TensorFlow cannot
decode as RGB itself (CMYK, 16-bit, grey with alpha, WebP, TIFF, very large images) is converted to RGB
once into the cache."""

from __future__ import annotations

import concurrent.futures
import hashlib
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile

from helpers import progress
from helpers.errors import DataError
from helpers.records import atomic_write
from helpers.settings import cache_dir

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff"}
NOT_DATA = {"__macosx", "thumbs.db", "desktop.ini"}  # besides every name starting with "."
MAX_PIXELS = 40_000_000  # larger images are downscaled once into the cache
PROGRESS_FROM = 1000  # scans of this many files or more show a progress bar
TOO_LARGE = "too large to decode safely (a possible decompression bomb)"

ImageFile.LOAD_TRUNCATED_IMAGES = False  # truncated files fail the scan, never half-read


@dataclass
class FolderScan:
    """The readable images of a class-per-subfolder tree (`scan_folder`: "The data" of 01, 02 and 04)."""
    root: Path
    class_names: list[str]
    paths: list[str]  # what to decode: the file, or its RGB copy in the cache
    labels: np.ndarray
    skipped: list[tuple[str, str]]  # (path relative to root, reason)
    converted: int
    names: list[str]  # each image's path relative to its class folder ("sub/x.jpg")


def is_data(name: str) -> bool:
    """False for names that are never data: hidden ones, `__MACOSX`, `Thumbs.db`, `desktop.ini` ("The data"
    of 01, 02 and 04)."""
    return not name.startswith(".") and name.lower() not in NOT_DATA


def data_files(folder: Path) -> list[Path]:
    """Every data file below `folder`, links to nothing included, sorted (`scan_folder`: "The data" of 01,
    02 and 04; `course.predict`)."""
    found = []
    for top, dirs, names in os.walk(folder):
        dirs[:] = [d for d in dirs if is_data(d)]
        found += [Path(top, name) for name in names if is_data(name)]
    return sorted(found)


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
        atomic_write(target, lambda tmp: image.save(tmp, format="PNG"))
    return str(target)


_NATIVE = {"JPEG": {"RGB", "L"}, "PNG": {"RGB", "RGBA", "L", "P"}, "GIF": {"P", "L", "RGB"},
           "BMP": {"RGB", "L", "P"}}  # what tf.io.decode_image reads correctly with channels=3


def check_image(path: Path) -> tuple[str | None, str | None, bool]:
    """Decode one file fully: (usable path, reason skipped, converted?) (01, 02, 04: "The data")."""
    if path.is_symlink() and not path.exists():
        return None, "link to nothing", False
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        return None, "not an image", False
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
        with Image.open(io.BytesIO(data)) as image:  # PIL refuses the worst bombs here
            fmt, mode, (width, height) = image.format, image.mode, image.size
            if width * height > (Image.MAX_IMAGE_PIXELS or np.inf):
                return None, TOO_LARGE, False
            if fmt == "JPEG":
                image.draft(mode if mode in ("RGB", "L") else None, (256, 256))
            image.load()
            if mode in _NATIVE.get(fmt, set()) and width * height <= MAX_PIXELS:
                return str(path), None, False
        with Image.open(io.BytesIO(data)) as image:  # decoded again in full, to convert
            if image.format == "JPEG":
                image.draft("RGB", (4096, 4096))
            image.load()
            return _convert_into_cache(path, image), None, True
    except Image.DecompressionBombError:
        return None, TOO_LARGE, False
    except Image.UnidentifiedImageError:
        return None, "not an image", False
    except (OSError, SyntaxError, ValueError):
        return None, "truncated or corrupt image", False


def _class_folders(root: Path, expected: Sequence[str] | None = None) -> list[Path]:
    if not root.is_dir():
        raise DataError(f"{root} is not a folder.")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and is_data(p.name))
    if expected is not None:
        missing = [c for c in expected if c not in [p.name for p in folders]]
        if missing:
            raise DataError(f"{root} has no {missing[0]}/ folder; expected one subfolder per class: "
                            f"{', '.join(expected)}.")
        folders = [root / c for c in expected]
    if not folders:
        raise DataError(f"{root} has no class subfolders; put each class's images in its own subfolder "
                        f"({root}/<class name>/<image>.jpg).")
    if len(folders) == 1:
        raise DataError(f"{root} has only one class folder ({folders[0].name}/); a classifier needs at least "
                        "two, one subfolder per class.")
    return folders


def scan_folder(root: Path | str, expected: Sequence[str] | None = None) -> FolderScan:
    """List and check every file of a class-per-subfolder tree, in parallel (01, 02, 04: "The data")."""
    root = Path(root)
    folders = _class_folders(root, expected)
    entries = [(path, label) for label, folder in enumerate(folders) for path in data_files(folder)]
    scan = FolderScan(root, [f.name for f in folders], [], np.zeros(0, np.int32), [], 0, [])
    labels: list[int] = []
    with concurrent.futures.ThreadPoolExecutor(min(16, 2 * (os.cpu_count() or 1))) as pool:
        results = pool.map(check_image, [path for path, _ in entries])
        if len(entries) >= PROGRESS_FROM:
            results = progress.bar(results, len(entries), f"checking the images in {root.name}/")
        for (path, label), (usable, reason, converted) in zip(entries, results):
            if usable is None:
                scan.skipped.append((path.relative_to(root).as_posix(), reason or "unreadable"))
            else:
                scan.paths.append(usable)
                scan.names.append(path.relative_to(folders[label]).as_posix())
                labels.append(label)
                scan.converted += converted
    scan.labels = np.asarray(labels, np.int32)
    for folder, count in zip(folders, np.bincount(scan.labels, minlength=len(folders))):
        if count == 0:
            raise DataError(f"Class folder {folder} has no readable images; add images to it or remove it.")
    return scan
