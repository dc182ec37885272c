"""Generated, learnable sample data for the offline smoke profile: coloured shapes (the data
sections of notebooks 01-05 on `PROFILE = "smoke"`)."""

from __future__ import annotations

import colorsys
import hashlib
import io
import os
import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from helpers.settings import cache_dir

SAMPLE_VERSION = "v1"  # bump when the generator changes, so caches are rebuilt

SHAPES = ("circle", "square", "triangle", "cross", "ring", "diamond", "hbar", "vbar", "x", "dots")


def draw_sample(label: int, num_classes: int, size: int, rng: np.random.Generator,
                colour_shift: int = 0) -> np.ndarray:
    """One generated image: class `label` is shape `label` in colour `label + colour_shift` of a
    `num_classes`-colour palette, at a random place and size on a noisy background (smoke profile)."""
    background = rng.integers(60, 190, size=3)
    array = np.clip(background + rng.normal(0, 18, size=(size, size, 3)), 0, 255)
    image = Image.fromarray(array.astype(np.uint8))
    draw = ImageDraw.Draw(image)
    hue = ((label + colour_shift) % num_classes) / num_classes
    colour = np.array([int(255 * c) for c in colorsys.hsv_to_rgb(hue, 0.85, 0.95)]) + rng.integers(-25, 26, size=3)
    fill = tuple(int(c) for c in np.clip(colour, 0, 255))
    extent = rng.uniform(0.35, 0.6) * size
    cx, cy = rng.uniform(0.3, 0.7, size=2) * size
    x0, y0, x1, y1 = cx - extent / 2, cy - extent / 2, cx + extent / 2, cy + extent / 2
    width = max(2, int(extent / 5))
    box, h_bar, v_bar = (x0, y0, x1, y1), (x0, cy - width, x1, cy + width), (cx - width, y0, cx + width, y1)
    r, q = max(1.5, extent / 8), extent / 4
    strokes = {  # each shape as the ImageDraw calls that draw it
        "circle": [("ellipse", box)], "square": [("rectangle", box)], "ring": [("ellipse", box)],
        "triangle": [("polygon", [(cx, y0), (x1, y1), (x0, y1)])], "hbar": [("rectangle", h_bar)],
        "diamond": [("polygon", [(cx, y0), (x1, cy), (cx, y1), (x0, cy)])], "vbar": [("rectangle", v_bar)],
        "cross": [("rectangle", v_bar), ("rectangle", h_bar)], "x": [("line", box), ("line", (x0, y1, x1, y0))],
        "dots": [("ellipse", (cx + dx * q - r, cy + dy * q - r, cx + dx * q + r, cy + dy * q + r))
                 for dx, dy in ((-1, -1), (1, -1), (-1, 1), (1, 1))]}
    shape = SHAPES[label % len(SHAPES)]
    for method, xy in strokes[shape]:
        if shape == "ring":
            draw.ellipse(xy, outline=fill, width=width)
        else:
            getattr(draw, method)(xy, fill=fill, **({"width": width} if method == "line" else {}))
    return np.asarray(image)


def source_task(count: int, size: int, seed: int = 1234) -> tuple[np.ndarray, np.ndarray]:
    """The task the stand-in weights learn (smoke profile, "Setup" of 01-05): ten shapes in ten colours. The
    sample data sets pair shapes and colours differently: a smoke run transfers to a related, new task."""
    images, labels = sample_arrays(count, 10, size, seed)
    return images, labels.astype(np.int32)


def sample_arrays(count: int, num_classes: int, size: int, seed: int,
                  colour_shift: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Generated, learnable images in memory, class k shape k in colour k + colour_shift ("The data" of 03
    and 05 on the smoke profile)."""
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


def sample_folder(name: str, class_names: Sequence[str], per_class: dict[str, int], *,
                  odd_files: bool = True, seed: int = 0) -> Path:
    """Generate once into the cache a folder data set with `per_class[subfolder]` images per class, e.g.
    {"train": 200, "validation": 100}; `odd_files` adds broken and odd files (01, 02, 04: smoke data)."""
    fields = repr((list(class_names), sorted(per_class.items()), odd_files))
    key = f"{name}-{SAMPLE_VERSION}-{seed}-" + hashlib.sha1(fields.encode()).hexdigest()[:8]
    root = cache_dir() / "samples" / key
    if (root / ".complete").exists():
        return root
    tmp = root.with_name(f".{root.name}.{uuid.uuid4().hex}")  # this process's own
    shutil.rmtree(tmp, ignore_errors=True)
    rng = np.random.default_rng(seed)
    for sub_index, (sub, count) in enumerate(per_class.items()):
        for label, cls in enumerate(class_names):
            folder = tmp / sub / cls if sub else tmp / cls
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                image = draw_sample(label, len(class_names), int(rng.integers(72, 129)), rng)
                Image.fromarray(image).save(folder / f"{cls}.{i:04d}.jpg", quality=90)
            if odd_files and sub_index == 0 and label == 0:
                _write_odd_files(folder, label, len(class_names), rng)
    (tmp / ".complete").write_text("ok\n")
    try:
        os.replace(tmp, root)
    except OSError:  # another process finished first
        shutil.rmtree(tmp, ignore_errors=True)
    return root
