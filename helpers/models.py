"""Backbones and classifiers.

The registry knows, for each backbone, its Keras constructor, the preprocessing it
expects (put inside the model, so a saved model takes raw 0-255 pixels) and how its
layers group into blocks. `build_classifier` assembles
input -> [augmentation] -> [upsampling] -> preprocessing -> base(training=False)
-> pooling -> head, and returns the parts a notebook needs to reach.
"""

from __future__ import annotations

import fcntl
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from helpers import data as data_module
from helpers.config import BACKBONES as FACTS
from helpers.config import CourseError, SettingsError, cache_dir

# ------------------------------------------------------------------ preprocessing


@keras.saving.register_keras_serializable(package="helpers")
class CaffePreprocess(keras.layers.Layer):
    """ResNet50's `preprocess_input` as a layer: RGB to BGR, minus the ImageNet channel means."""

    MEAN_BGR = (103.939, 116.779, 123.68)

    def call(self, inputs):
        bgr = keras.ops.flip(inputs, axis=-1)
        return bgr - keras.ops.convert_to_tensor(self.MEAN_BGR, dtype=bgr.dtype)


@keras.saving.register_keras_serializable(package="helpers")
class InferenceMode(keras.layers.Layer):
    """Calls the wrapped backbone with ``training=False``, always.

    In Keras 3 a ``training=False`` given while building a functional model is overridden
    by ``fit``'s ``training=True`` (keras-team/keras#20285), so unfrozen BatchNorm layers
    would switch to batch statistics and overwrite their pre-trained moving averages. This
    wrapper restores the intended behaviour: unfrozen BatchNorm layers learn their scale and
    offset, but normalize with the statistics learned in pre-training."""

    def __init__(self, inner: keras.Model, **kwargs):
        super().__init__(**kwargs)
        self.inner = inner

    def call(self, inputs, training=None):
        return self.inner(inputs, training=False)

    def compute_output_shape(self, input_shape):
        return self.inner.compute_output_shape(input_shape)

    def get_config(self):
        return {**super().get_config(), "inner": keras.saving.serialize_keras_object(self.inner)}

    @classmethod
    def from_config(cls, config):
        inner = keras.saving.deserialize_keras_object(config.pop("inner"))
        return cls(inner, **config)


def _tf_preprocess() -> keras.layers.Layer:
    """MobileNet's `preprocess_input` as a layer: 0-255 to [-1, 1]."""
    return keras.layers.Rescaling(1 / 127.5, offset=-1, name="preprocess")


# ----------------------------------------------------------------------- registry


@dataclass(frozen=True)
class Backbone:
    """One entry of the registry."""

    name: str
    constructor: Callable[..., keras.Model]
    preprocessing: str  # "tf": [-1, 1]; "caffe": BGR minus means; "inside": the base rescales itself
    block_pattern: str  # regex on layer names; group 1 names the block

    @property
    def title(self) -> str:
        return FACTS[self.name].title

    @property
    def min_size(self) -> int:
        return FACTS[self.name].min_size

    @property
    def default_size(self) -> int:
        return FACTS[self.name].default_size

    def preprocess_layer(self) -> keras.layers.Layer | None:
        """The layer that turns raw 0-255 pixels into what this backbone expects."""
        if self.preprocessing == "tf":
            return _tf_preprocess()
        if self.preprocessing == "caffe":
            return CaffePreprocess(name="preprocess")
        return None

    def block_of(self, layer_name: str) -> str | None:
        """The block a layer belongs to, or None for stem and top layers."""
        match = re.match(self.block_pattern, layer_name)
        return match.group(1) if match else None


BACKBONES: dict[str, Backbone] = {
    "resnet50": Backbone(
        "resnet50", keras.applications.ResNet50, "caffe", r"^(conv\d_block\d+)_"
    ),
    "mobilenet": Backbone(
        "mobilenet", keras.applications.MobileNet, "tf", r"^conv_(?:dw|pw|pad)_(\d+)(?:_|$)"
    ),
    "mobilenet_v2": Backbone(
        "mobilenet_v2", keras.applications.MobileNetV2, "tf", r"^(block_\d+|expanded_conv)_"
    ),
    "efficientnetv2_b0": Backbone(
        "efficientnetv2_b0", keras.applications.EfficientNetV2B0, "inside", r"^(block\d+[a-z])_"
    ),
}

# Each backbone expects raw pixels in 0-255 at the model input; what its first layers
# turn them into (checked by the tests).
EXPECTED_INPUT_RANGE = (0.0, 255.0)


def backbone(name: str) -> Backbone:
    """Look a backbone up by name, with the valid names in the error."""
    if name not in BACKBONES:
        raise SettingsError(f"Unknown model {name!r}; choose from {', '.join(BACKBONES)}.")
    return BACKBONES[name]


def check_raw_pixels(images) -> None:
    """Stop when a batch looks already scaled to [0, 1]: the models expect raw 0-255 pixels."""
    peak = float(np.max(np.asarray(images)))
    if peak <= 1.0:
        raise CourseError(
            f"This batch peaks at {peak:.2f}, so it looks already divided by 255; the models "
            "do their own preprocessing and expect raw 0-255 pixels, so remove the rescaling."
        )


# ---------------------------------------------------------------- stand-in weights

STANDIN_VERSION = "v3"
STANDIN_SIZE = 64


def standin_weights(name: str, image_size: int = STANDIN_SIZE, *, images: int = 1000,
                    epochs: int = 4, verbose: int = 0) -> Path:
    """Offline stand-in for ImageNet weights: the backbone trained briefly at 64x64 on a
    generated source task (`data.source_task`), then its BatchNorm moving statistics reset on
    that data (a few epochs leave them near their initial values, which would starve a frozen
    base of signal). For another input size the statistics are re-estimated at that size
    (at 32x32 the 64x64 ones leave much of MobileNet's output dead). Made once per machine
    and size, and cached, so every smoke run is a small but real transfer experiment."""
    spec = backbone(name)
    folder = cache_dir() / "weights"
    base_path = folder / f"{name}-standin-{STANDIN_VERSION}.weights.h5"
    path = base_path if image_size == STANDIN_SIZE else folder / (
        f"{name}-standin-{STANDIN_VERSION}-{image_size}px.weights.h5")
    if path.exists():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second process waits, then finds the file
        if not path.exists():
            if path == base_path:
                _train_standin(spec, path, images, epochs, verbose)
            else:
                _calibrate_standin(spec, standin_weights(name), path, image_size)
    return path


def _standin_model(spec: Backbone, size: int) -> tuple[keras.Model, keras.Model]:
    base = spec.constructor(include_top=False, weights=None, input_shape=(size, size, 3))
    inputs = keras.Input((size, size, 3))
    features = inputs
    layer = spec.preprocess_layer()
    if layer is not None:
        features = layer(features)
    features = keras.layers.GlobalAveragePooling2D()(base(features))
    return keras.Model(inputs, keras.layers.Dense(10)(features)), base


def _fit_source_task(model: keras.Model, x: np.ndarray, y: np.ndarray, epochs: int,
                     verbose: int) -> None:
    """Adam at 1e-3 on the source task, batches of 32, shuffled with a fixed seed."""
    model.compile(keras.optimizers.Adam(1e-3),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    ds = tf.data.Dataset.from_tensor_slices((x.astype("float32"), y))
    ds = ds.shuffle(len(x), seed=1234).batch(32).prefetch(tf.data.AUTOTUNE)
    model.fit(ds, epochs=epochs, verbose=verbose, shuffle=False)


def _train_standin(spec: Backbone, path: Path, images: int, epochs: int, verbose: int) -> None:
    print(f"Making stand-in weights for {spec.title} (once per machine, up to 2 minutes)...")
    keras.utils.set_random_seed(1234)
    x, y = data_module.source_task(images, STANDIN_SIZE)
    model, base = _standin_model(spec, STANDIN_SIZE)
    _fit_source_task(model, x, y, epochs, verbose)
    reset_batchnorm_statistics(model, base, x[:256].astype("float32"))
    tmp = path.with_name(f"tmp-{os.getpid()}-{path.name}")
    base.save_weights(tmp)
    os.replace(tmp, path)


def _calibrate_standin(spec: Backbone, source: Path, path: Path, size: int, images: int = 1000,
                       epochs: int = 2) -> None:
    """The 64x64 stand-in weights adapted to `size`: a short training on the source task at
    that size, then BatchNorm statistics re-estimated there."""
    print(f"Adapting {spec.title}'s stand-in weights to {size}x{size} (once per machine)...")
    keras.utils.set_random_seed(1234)
    x, y = data_module.source_task(images, size)
    model, base = _standin_model(spec, size)
    base.load_weights(source)
    reset_batchnorm_statistics(model, base, x[:256].astype("float32"))
    _fit_source_task(model, x, y, epochs, verbose=0)
    reset_batchnorm_statistics(model, base, x[:256].astype("float32"))
    tmp = path.with_name(f"tmp-{os.getpid()}-{path.name}")
    base.save_weights(tmp)
    os.replace(tmp, path)


def reset_batchnorm_statistics(model: keras.Model, base: keras.Model, images: np.ndarray) -> None:
    """Set every BatchNorm's moving statistics to those of one batch (momentum 0, training mode)."""
    norms = [layer for layer in base.layers if isinstance(layer, keras.layers.BatchNormalization)]
    saved = [layer.momentum for layer in norms]
    for layer in norms:
        layer.momentum = 0.0
    model(images, training=True)
    for layer, momentum in zip(norms, saved):
        layer.momentum = momentum


# ---------------------------------------------------------------------- building


def build_base(name: str, image_size: int, weights: str | None) -> keras.Model:
    """The backbone without its top, at `image_size`, with the requested weights:
    'imagenet', 'standin' (the smoke profile's), None, or a weights file."""
    spec = backbone(name)
    if image_size < spec.min_size:
        raise SettingsError(
            f"{spec.title} needs images of at least {spec.min_size}x{spec.min_size}, got {image_size}."
        )
    shape = (image_size, image_size, 3)
    if weights == "imagenet":
        try:
            return spec.constructor(include_top=False, weights="imagenet", input_shape=shape)
        except Exception as error:  # noqa: BLE001 - a download failure has many types
            if "URL fetch failure" in str(error) or "Name or service" in str(error) or isinstance(
                error, OSError
            ):
                raise CourseError(
                    f"The ImageNet weights of {spec.title} could not be downloaded (no network?); "
                    "run once with network access (Keras caches them in ~/.keras/models/) "
                    "or set WEIGHTS='standin' or None."
                ) from error
            raise
    base = spec.constructor(include_top=False, weights=None, input_shape=shape)
    if weights == "standin":
        base.load_weights(standin_weights(name, image_size))
    elif weights is not None:
        base.load_weights(weights)
    return base


@dataclass
class Classifier:
    """A built classifier and the parts notebooks reach into."""

    model: keras.Model  # raw 0-255 pixels in, logits out
    base: keras.Model  # the backbone, called with training=False
    head: keras.Model  # the trainable head on top of the pooled features
    features: keras.Model  # raw pixels in, pooled features out (no augmentation)
    backbone: str
    num_classes: int
    augmented: bool

    @property
    def binary(self) -> bool:
        return self.num_classes == 2 and self.model.output_shape[-1] == 1


def augmentation_layers(flip: str | None = None, rotation: float | None = None,
                        zoom: float | None = None) -> list[keras.layers.Layer]:
    """Random flip / rotation / zoom layers; active only in training, so validation and
    test images are never augmented."""
    layers = []
    if flip:
        layers.append(keras.layers.RandomFlip(flip, name="random_flip"))
    if rotation:
        layers.append(keras.layers.RandomRotation(rotation, name="random_rotation"))
    if zoom:
        layers.append(keras.layers.RandomZoom(zoom, name="random_zoom"))
    return layers


def build_classifier(
    name: str,
    image_size: int,
    num_classes: int,
    *,
    weights: str | None,
    pooling: str = "avg",
    hidden: tuple[tuple[int, float], ...] = (),
    dropout: float = 0.0,
    augmentation: dict | None = None,
    upsample: int = 1,
    input_size: int | None = None,
) -> Classifier:
    """Backbone + head. `pooling` is "avg" (global average pooling) or "flatten";
    `hidden` lists (units, dropout after) of ReLU layers before the output; `dropout`
    comes right before the output layer. Two classes give one logit, more give one
    logit per class. `upsample` enlarges `input_size` images inside the model."""
    spec = backbone(name)
    input_size = input_size or image_size // upsample
    base = build_base(name, image_size, weights)
    inputs = keras.Input((input_size, input_size, 3), name="pixels")
    x = inputs
    augment = augmentation_layers(**(augmentation or {}))
    for layer in augment:
        x = layer(x)
    if upsample > 1:
        x = keras.layers.UpSampling2D(upsample, name="upsample")(x)
    preprocess = spec.preprocess_layer()
    if preprocess is not None:
        x = preprocess(x)
    x = InferenceMode(base, name=f"{name}_base")(x)  # base(x, training=False), even under fit
    if pooling == "avg":
        pooled = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    elif pooling == "flatten":
        pooled = keras.layers.Flatten(name="pool")(x)
    else:
        raise SettingsError(f"pooling must be 'avg' or 'flatten', got {pooling!r}.")
    head_layers: list[keras.layers.Layer] = [keras.Input(pooled.shape[1:])]
    for i, (units, drop) in enumerate(hidden):
        head_layers.append(keras.layers.Dense(units, activation="relu", name=f"dense_{units}_{i}"))
        if drop:
            head_layers.append(keras.layers.Dropout(drop, name=f"dropout_{i}"))
    if dropout:
        head_layers.append(keras.layers.Dropout(dropout, name="dropout"))
    outputs = 1 if num_classes == 2 else num_classes
    head_layers.append(keras.layers.Dense(outputs, dtype="float32", name="logits"))
    head = keras.Sequential(head_layers, name="head")
    model = keras.Model(inputs, head(pooled), name=f"{name}_classifier")
    features = keras.Model(inputs, pooled, name=f"{name}_features")
    return Classifier(model, base, head, features, name, num_classes, bool(augment))
