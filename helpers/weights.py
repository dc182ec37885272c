"""What a `keras.applications` base receives as `weights=`: "imagenet" (checked to be on this
machine or downloadable), the smoke profile's stand-in file, a weights file, or None (random).
Used by the setup section of notebooks 01-05."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from helpers import backbones, progress, samples
from helpers.errors import CourseError
from helpers.records import atomic_write
from helpers.settings import cache_dir, keras_home
from helpers.sources import can_download

WEIGHTS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/"
STANDIN_VERSION = "v4"  # bump when the recipe below changes, so every machine makes new ones
STANDIN_SIZE = 64


def imagenet_file(name: str, image_size: int) -> Path:
    """Where Keras keeps a backbone's downloaded no-top ImageNet weights (`for_model`: the "Setup" of
    01-05)."""
    return keras_home() / "models" / backbones.get(name).weights_file(image_size)


def for_model(name: str, choice: str | None, image_size: int) -> str | None:
    """The `weights=` argument for `keras.applications.<name>` at this size (the "Setup" of notebooks 01-05):
    "imagenet" (when here or downloadable), the stand-in file ("standin"), a weights file, or None."""
    if choice == "standin":
        return str(standin(name, image_size))
    if choice == "imagenet":
        cached = imagenet_file(name, image_size)
        if not cached.exists() and not can_download(WEIGHTS_URL + cached.name):
            raise CourseError(f"The ImageNet weights of {backbones.get(name).title} are not in {cached.parent} and "
                              f"{WEIGHTS_URL} cannot be reached; download {WEIGHTS_URL}{cached.name} into "
                              f"{cached.parent}/, or set WEIGHTS = 'standin' or 'none'.")
    return choice


def standin(name: str, image_size: int = STANDIN_SIZE) -> Path:
    """Offline stand-in for ImageNet weights (the smoke profile of 01-05, "Setup"): the backbone trained briefly
    on a generated source task (`samples.source_task`) at 64x64, made once per machine; at another size
    the same weights (trained briefly at that size if 32 or less), BatchNorm statistics reset to those of the
    source images at that size (call it before seeding: it seeds itself)."""
    from filelock import FileLock
    spec = backbones.get(name)
    folder = cache_dir() / "weights"
    suffix = "" if image_size == STANDIN_SIZE else f"-{image_size}px"
    path = folder / f"{name}-standin-{STANDIN_VERSION}{suffix}.weights.h5"
    if path.exists():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path.with_suffix(".lock"))):  # a second process waits, then finds the file
        if not path.exists():
            start = None if image_size == STANDIN_SIZE else standin(name)
            what = "Making" if start is None else f"Adapting to {image_size}x{image_size}"
            print(f"{what} stand-in weights for {spec.title} (once per machine)")
            _make_standin(name, path, image_size, start)
    return path


def _make_standin(name: str, path: Path, size: int, start: Path | None) -> None:
    # At another size the learned filters serve as they are, except at 32x32 and below, where the last
    # feature map is a single pixel: there they learn two epochs more (without, 05's MobileNet misses its check).
    epochs = 4 if start is None else 2 if size <= 32 else 0
    keras.utils.set_random_seed(1234)
    x, y = samples.source_task(1000 if epochs else 256, size)
    x = x.astype("float32")
    spec = backbones.get(name)  # the backbone's preprocessing, the base, average pooling and 10 logits
    base = spec.constructor()(include_top=False, weights=None, input_shape=(size, size, 3))
    inputs = keras.Input((size, size, 3))
    features = base(spec.preprocess_input()(inputs))
    model = keras.Model(inputs, keras.layers.Dense(10)(keras.layers.GlobalAveragePooling2D()(features)))
    if start is not None:
        base.load_weights(start)
        if epochs:  # train from this size's statistics
            reset_batchnorm_statistics(model, base, x[:256])
    if epochs:
        model.compile(keras.optimizers.Adam(1e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=1234).batch(32)
        model.fit(ds, epochs=epochs, verbose=2 if progress.headless() else 1)
    reset_batchnorm_statistics(model, base, x[:256])
    atomic_write(path, base.save_weights)


def reset_batchnorm_statistics(model: keras.Model, base: keras.Model, images: np.ndarray) -> None:
    """Set every BatchNorm's moving statistics to those of one batch, momentum 0 in training mode
    (`standin`: the "Setup" of 01-05 on the smoke profile)."""
    norms = [layer for layer in base.layers if isinstance(layer, keras.layers.BatchNormalization)]
    saved = [layer.momentum for layer in norms]
    for layer in norms:
        layer.momentum = 0.0
    model(images, training=True)
    for layer, momentum in zip(norms, saved):
        layer.momentum = momentum
