"""`tf.data` pipelines behind the data section of every notebook: decoded examples from files or
arrays, and the batches `fit` reads, the training split reshuffled every epoch in an order fixed by
the seed and the epoch's number (notebook 02 shuffles its features computed once the same way)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

AUTOTUNE = tf.data.AUTOTUNE

# During `fit` with `EpochOrder`, the epoch whose order a shuffled split is read in (so a resumed run
# sees the orders an uninterrupted one saw); -1 outside such a fit, where each split counts its passes.
_EPOCH = tf.Variable(-1, dtype=tf.int64, trainable=False)


class EpochOrder(keras.callbacks.Callback):
    """Makes epoch N of `fit` read the training split in order N, whatever ran before (`Logbook.callbacks`;
    notebook 04, "Train only what trains")."""

    def on_epoch_begin(self, epoch, logs=None):
        _EPOCH.assign(epoch)

    def on_train_end(self, logs=None):
        _EPOCH.assign(-1)


def batches(examples: tf.data.Dataset, batch_size: int, *, shuffle_seed: int | None = None) -> tf.data.Dataset:
    """Batches of (float32 images, labels) for Keras; with a seed, reshuffled in every pass, pass N in an order
    fixed by the seed and N ("The data" of 01-05; 02, "Step 3"; 04, "Train only what trains")."""
    ds = examples
    if shuffle_seed is not None:
        count = int(examples.cardinality())
        buffer = min(count if count > 0 else 10_000, 50_000)
        passes = tf.Variable(0, dtype=tf.int64, trainable=False)

        def epoch_order(_):
            # a fixed seed of this function's own graph: the orders depend on the shuffle seed
            # alone, not on TensorFlow's global seed when the dataset is made (which stays as it is)
            tf.random.set_seed(1)
            own = passes.assign_add(1) - 1
            epoch = tf.where(_EPOCH >= 0, _EPOCH, own)
            return examples.shuffle(buffer, seed=shuffle_seed * 1_000_003 + epoch, reshuffle_each_iteration=False)

        ds = tf.data.Dataset.from_tensors(tf.constant(0, tf.int64)).flat_map(epoch_order)
        if count > 0:  # so Keras knows the steps per epoch
            ds = ds.apply(tf.data.experimental.assert_cardinality(count))
    # not parallel: after the stateful epoch counter that logs a spurious error under determinism
    ds = ds.batch(batch_size).map(lambda x, y: (tf.nest.map_structure(
        lambda t: tf.cast(t, tf.float32) if t.dtype == tf.uint8 else t, x), y))
    return ds.prefetch(AUTOTUNE)


def count(examples: tf.data.Dataset) -> int:
    """Number of examples in a split, counted when tf.data does not know it (04, "Train only what trains";
    07, "Converting")."""
    known = int(examples.cardinality())
    return known if known >= 0 else int(examples.reduce(0, lambda n, _: n + 1))


def decode_resize(data: tf.Tensor, image_size: int) -> tf.Tensor:
    """An encoded image as uint8 RGB pixels at `image_size` ("The data" of 01, 02, 04; `course.predict`)."""
    image = tf.io.decode_image(data, channels=3, expand_animations=False, dtype=tf.uint8)
    image = tf.image.resize(image, (image_size, image_size), method="bilinear")
    image.set_shape((image_size, image_size, 3))
    return tf.cast(tf.round(tf.clip_by_value(image, 0.0, 255.0)), tf.uint8)


def decoded(encoded: tf.data.Dataset, image_size: int, count: int) -> tf.data.Dataset:
    """(encoded image, label) pairs decoded in parallel, in order, cached in memory when they take less than
    30% of it ("The data" of 01, 02 and 04)."""
    ds = encoded.map(lambda data, y: (decode_resize(data, image_size), tf.cast(y, tf.int32)),
                     num_parallel_calls=AUTOTUNE, deterministic=True)
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not on every system
        memory = 8 * 2**30
    return ds.cache() if count * image_size * image_size * 3 < 0.3 * memory else ds


def examples_from_files(paths: Sequence[str], labels: Sequence[int], image_size: int) -> tf.data.Dataset:
    """Decode and resize image files in parallel, in order, cached in memory when they fit ("The data" of
    01, 02 and 04)."""
    ds = tf.data.Dataset.from_tensor_slices((list(map(str, paths)), np.asarray(labels, np.int32)))
    files = ds.map(lambda p, y: (tf.io.read_file(p), y), num_parallel_calls=AUTOTUNE, deterministic=True)
    return decoded(files, image_size, len(paths))


def examples_from_arrays(images: np.ndarray, labels: np.ndarray) -> tf.data.Dataset:
    """Examples from in-memory images and their labels (notebooks 03 and 05, "The data")."""
    return tf.data.Dataset.from_tensor_slices((images, np.asarray(labels, np.int32).reshape(-1)))


def take_images(examples: tf.data.Dataset, count: int) -> tuple[np.ndarray, np.ndarray]:
    """The first `count` examples of a split as numpy arrays (the image grids of 01-05, "The data")."""
    pairs = [(image.numpy(), int(label)) for image, label in examples.take(count)]
    return np.stack([image for image, _ in pairs]), np.asarray([label for _, label in pairs])
