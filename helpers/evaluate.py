"""Evaluation for the records of notebooks 01-05 and for notebook 07: a split's predictions with their
accuracy and loss, batch-1 latency (the median of direct calls of a compiled function) and throughput."""

from __future__ import annotations

import statistics
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from helpers import pipelines

_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> its compiled call


def inference_function(model: keras.Model):
    """A compiled `model(x, training=False)`, made once per model and reused (`predict`, `latency_ms`: 07,
    "The Keras models, measured here", and every record of 01-05)."""
    if model not in _COMPILED:
        held = weakref.ref(model)  # not the model itself: the cache must not keep it alive
        _COMPILED[model] = tf.function(lambda x: held()(x, training=False), reduce_retracing=True)
    return _COMPILED[model]


def probabilities(logits: np.ndarray) -> np.ndarray:
    """One probability per class: the sigmoid of one logit (class 1), else the softmax (`Predictions`; 02,
    "The images they get wrong")."""
    if logits.shape[1] == 1:
        p = 1 / (1 + np.exp(-logits[:, 0]))
        return np.stack([1 - p, p], axis=1)
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@dataclass
class Predictions:
    """Labels and logits of one split (what `model.predict` gives, with the labels beside): notebook 02,
    "Is the gap real?" and after; notebook 07's comparisons; every record's test metrics."""
    y_true: np.ndarray
    logits: np.ndarray

    @property
    def probabilities(self) -> np.ndarray:
        return probabilities(self.logits)

    @property
    def y_pred(self) -> np.ndarray:
        return (self.logits[:, 0] > 0).astype(int) if self.logits.shape[1] == 1 else self.logits.argmax(axis=1)

    @property
    def accuracy(self) -> float:
        return float(np.mean(self.y_pred == self.y_true))

    @property
    def loss(self) -> float:
        """Mean cross-entropy of the logits, as the models' losses compute it."""
        if self.logits.shape[1] == 1:
            loss = keras.losses.binary_crossentropy(self.y_true[:, None].astype("float32"), self.logits, from_logits=True)
        else:
            loss = keras.losses.sparse_categorical_crossentropy(self.y_true, self.logits, from_logits=True)
        return float(np.mean(keras.ops.convert_to_numpy(loss)))


def predict_with(call: Callable, examples: tf.data.Dataset, batch_size: int) -> Predictions:
    """Labels and the logits `call` gives for each batch of a split, in order (07, "Running them in LiteRT")."""
    labels, logits = [], []
    for images, y in pipelines.batches(examples, batch_size):
        logits.append(np.asarray(call(images), dtype=np.float32))
        labels.append(y.numpy())
    return Predictions(np.concatenate(labels).astype(int), np.concatenate(logits))


def predict(model: keras.Model, examples: tf.data.Dataset, batch_size: int = 64) -> Predictions:
    """Logits and labels of a split, in order (07, "The Keras models, measured here"; `Logbook.finish`)."""
    return predict_with(inference_function(model), examples, batch_size)


def call_times(call: Callable[[], object], *, repeats: int, warmup: int, max_seconds: float,
               at_least: int) -> list[float]:
    """Seconds of each call after `warmup` calls: `repeats` calls, or as many as fit in `max_seconds` (at
    least `at_least`): `latency_ms` and `throughput` (every record of 01-05; 07, "Running them in LiteRT")."""
    for _ in range(warmup):
        call()
    times: list[float] = []
    while len(times) < repeats and (len(times) < at_least or sum(times) < max_seconds):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return times


def _timed_call(model, batch_size: int) -> Callable[[], object]:
    """A call of the compiled Keras model (or of anything called like it) on a random batch."""
    call = inference_function(model) if isinstance(model, keras.Model) else model
    x = tf.random.uniform((batch_size, *model.input_shape[1:]), 0, 255, seed=0)
    return lambda: np.asarray(call(x))


def latency_ms(model, *, repeats: int = 100, warmup: int = 5, max_seconds: float = 1.5) -> float:
    """Median milliseconds of a batch-1 call after warm-up, of a Keras model or a LiteRT one (07, "The Keras
    models, measured here"; every record of 01-05, shown in their speed sections)."""
    return 1000 * statistics.median(call_times(_timed_call(model, 1), repeats=repeats, warmup=warmup,
                                               max_seconds=max_seconds, at_least=5))


def throughput(model, *, batch_size: int = 64, repeats: int = 10, max_seconds: float = 2.0) -> float:
    """Images per second at a large batch, after one warm-up call (every record of 01-05, shown in their
    speed sections; 07, "Running them in LiteRT")."""
    times = call_times(_timed_call(model, batch_size), repeats=repeats, warmup=1, max_seconds=max_seconds, at_least=1)
    return batch_size * len(times) / sum(times)


def count_params(weights) -> int:
    """Number of scalars in a list of variables, e.g. `model.trainable_weights` (every record of 01-05; 04,
    "Our numbers beside the article's")."""
    return int(sum(np.prod(w.shape) for w in weights))
