"""What the notebooks need besides `keras.applications`: the weights (ImageNet, stand-ins, or
none), each backbone's preprocessing as a layer, and a layer keeping a base in inference mode."""

from __future__ import annotations

import os
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from helpers import backbones, progress, samples
from helpers.config import CourseError, Settings, SettingsError, cache_dir, keras_home


@keras.saving.register_keras_serializable(package="helpers")
class CaffePreprocess(keras.layers.Layer):
    """ResNet50's `preprocess_input` as a layer: RGB to BGR, minus the ImageNet channel means."""
    MEAN_BGR = (103.939, 116.779, 123.68)

    def call(self, inputs):
        bgr = keras.ops.flip(inputs, axis=-1)
        return bgr - keras.ops.convert_to_tensor(self.MEAN_BGR, dtype=bgr.dtype)


@keras.saving.register_keras_serializable(package="helpers")
class InferenceMode(keras.layers.Layer):
    """Calls the wrapped base with `training=False` also under `fit`, which Keras 3 overrides in
    a functional model (keras-team/keras#20285): BatchNorm keeps its pre-trained averages."""

    def __init__(self, inner: keras.Model, **kwargs):
        super().__init__(**kwargs)
        self.inner = inner

    def call(self, inputs, training=None):
        return self.inner(inputs, training=False)

    def compute_output_spec(self, inputs, training=None):
        return self.inner.compute_output_spec(inputs)

    def get_config(self):
        return {**super().get_config(), "inner": keras.saving.serialize_keras_object(self.inner)}

    @classmethod
    def from_config(cls, config):
        return cls(keras.saving.deserialize_keras_object(config.pop("inner")), **config)


def preprocessing(name: str) -> keras.layers.Layer | None:
    """The layer turning raw 0-255 pixels into what a backbone expects (None: it rescales itself)."""
    kind = backbones.get(name).preprocessing
    if kind == "tf":  # MobileNet's preprocess_input: 0-255 to [-1, 1]
        return keras.layers.Rescaling(1 / 127.5, offset=-1, name="preprocess")
    if kind == "caffe":
        return CaffePreprocess(name="preprocess")
    return None


def check_raw_pixels(images) -> None:
    """Stop when a batch looks already scaled to [0, 1]: the models expect raw 0-255 pixels."""
    peak = float(np.max(np.asarray(images)))
    if peak <= 1.0:
        raise CourseError(f"This batch peaks at {peak:.2f}, so it looks already divided by 255; "
                          "the models do their own preprocessing and expect raw 0-255 pixels, so "
                          "remove the rescaling.")


WEIGHTS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/"


def imagenet_file(name: str, image_size: int) -> Path:
    """Where Keras keeps a backbone's downloaded no-top ImageNet weights."""
    return keras_home() / "models" / backbones.get(name).weights_file(image_size)


def weights(name: str, settings: Settings) -> str | None:
    """The `weights=` argument of a `keras.applications` constructor for this run: "imagenet"
    (checked reachable), the stand-in weights' path, a weights file, or None."""
    choice = settings.weights
    if choice == "standin":
        return str(standin_weights(name, settings.image_size))
    if choice == "imagenet":
        from helpers.data import can_download

        cached = imagenet_file(name, settings.image_size)
        if not cached.exists() and not can_download(WEIGHTS_URL):  # offline: not even tried
            raise CourseError(f"The ImageNet weights of {backbones.get(name).title} are not in "
                              f"{cached.parent} and {WEIGHTS_URL} cannot be reached; download "
                              f"{WEIGHTS_URL}{cached.name} into {cached.parent}/, or set WEIGHTS = "
                              "'standin' or None.")
    return choice


def build_base(name: str, image_size: int, weights: str | None = None) -> keras.Model:
    """`keras.applications.<Backbone>(include_top=False)` at `image_size` with these weights."""
    spec = backbones.get(name)
    if image_size < spec.min_size:
        raise SettingsError(f"{spec.title} needs images of at least "
                            f"{spec.min_size}x{spec.min_size}, got {image_size}.")
    shape = (image_size, image_size, 3)
    return spec.constructor()(include_top=False, weights=weights, input_shape=shape)


def gap_classifier(name: str, image_size: int, num_classes: int, weights: str | None = None, *,
                   inference_mode: bool = True) -> tuple[keras.Model, keras.Model]:
    """(model, base): raw pixels -> preprocessing -> base -> average pooling -> Dense logits."""
    base = build_base(name, image_size, weights)
    inputs = keras.Input((image_size, image_size, 3))
    x = inputs
    layer = preprocessing(name)
    if layer is not None:
        x = layer(x)
    x = InferenceMode(base, name="base")(x) if inference_mode else base(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = keras.layers.Dense(1 if num_classes == 2 else num_classes, dtype="float32",
                                 name="logits")(x)
    return keras.Model(inputs, outputs, name=f"{name}_classifier"), base


STANDIN_VERSION = "v3"
STANDIN_SIZE = 64


def standin_weights(name: str, image_size: int = STANDIN_SIZE) -> Path:
    """Offline stand-in for ImageNet weights: the backbone trained briefly on a generated source
    task (`samples.source_task`), made once per machine and size (call this before seeding)."""
    from filelock import FileLock
    spec = backbones.get(name)
    folder = cache_dir() / "weights"
    base_path = folder / f"{name}-standin-{STANDIN_VERSION}.weights.h5"
    path = base_path if image_size == STANDIN_SIZE else folder / (
        f"{name}-standin-{STANDIN_VERSION}-{image_size}px.weights.h5")
    if path.exists():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path.with_suffix(".lock"))):  # a second process waits, then finds the file
        if not path.exists():
            if path == base_path:
                print(f"Making stand-in weights for {spec.title} (once per machine, about a minute)")
                _make_standin(spec.name, path, STANDIN_SIZE, 1000, 4)
            else:
                print(f"Adapting {spec.title}'s stand-in weights to {image_size}x{image_size} "
                      "(once per machine)")
                _make_standin(spec.name, path, image_size, 1000, 2, start=standin_weights(name))
    return path


def _make_standin(name: str, path: Path, size: int, images: int, epochs: int,
                  start: Path | None = None) -> None:
    keras.utils.set_random_seed(1234)
    x, y = samples.source_task(images, size)
    x = x.astype("float32")
    model, base = gap_classifier(name, size, 10, inference_mode=False)
    if start is not None:
        base.load_weights(start)
        reset_batchnorm_statistics(model, base, x[:256])
    model.compile(keras.optimizers.Adam(1e-3),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=1234).batch(32)
    model.fit(ds, epochs=epochs, verbose=progress.keras_verbose(), shuffle=False)
    reset_batchnorm_statistics(model, base, x[:256])
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
