"""Evaluation beyond `model.evaluate`: predictions of a split with their accuracy and loss,
confusion matrices, per-class reports, paired tests and intervals, batch-1 latency (the median
of direct calls of a compiled function) and batched throughput."""

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

_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> compiled call


def inference_function(model: keras.Model):
    """A compiled `model(x, training=False)`, made once per model and reused."""
    if model not in _COMPILED:
        _COMPILED[model] = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    return _COMPILED[model]


def probabilities(logits: np.ndarray) -> np.ndarray:
    """One probability per class: sigmoid of a single logit (for class 1), softmax otherwise."""
    if logits.shape[1] == 1:
        p = 1 / (1 + np.exp(-logits[:, 0]))
        return np.stack([1 - p, p], axis=1)
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@dataclass
class Predictions:
    """Labels and logits of one split (what `model.predict` gives, with the labels beside)."""
    y_true: np.ndarray
    logits: np.ndarray

    @property
    def binary(self) -> bool:
        return self.logits.shape[1] == 1

    @property
    def probabilities(self) -> np.ndarray:
        return probabilities(self.logits)

    @property
    def y_pred(self) -> np.ndarray:
        if self.binary:
            return (self.logits[:, 0] > 0).astype(int)
        return self.logits.argmax(axis=1)

    @property
    def accuracy(self) -> float:
        return float(np.mean(self.y_pred == self.y_true))

    @property
    def loss(self) -> float:
        """Mean cross-entropy, computed stably from the logits."""
        z = self.logits.astype(np.float64)
        if self.binary:
            y = self.y_true.astype(np.float64)
            x = z[:, 0]
            return float(np.mean(np.maximum(x, 0) - x * y + np.log1p(np.exp(-np.abs(x)))))
        shifted = z - z.max(axis=1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        return float(-np.mean(log_probs[np.arange(len(z)), self.y_true]))


def predict_with(call: Callable, examples: tf.data.Dataset, batch_size: int) -> Predictions:
    """Labels and the logits `call` gives for each batch of a split, in its (fixed) order."""
    labels, logits = [], []
    for images, y in pipelines.batches(examples, batch_size):
        logits.append(np.asarray(call(images), dtype=np.float32))
        labels.append(y.numpy())
    return Predictions(np.concatenate(labels).astype(int), np.concatenate(logits))


def predict(model: keras.Model, examples: tf.data.Dataset, batch_size: int = 64) -> Predictions:
    """Logits and labels of a split, in its (fixed) order."""
    return predict_with(inference_function(model), examples, batch_size)


def confusion(predictions: Predictions, num_classes: int) -> np.ndarray:
    """Confusion matrix of counts (rows: true class)."""
    from sklearn.metrics import confusion_matrix
    return confusion_matrix(predictions.y_true, predictions.y_pred, labels=list(range(num_classes)))


def per_class_report(predictions: Predictions, class_names: list[str]):
    """Precision, recall, F1 and support per class, as a DataFrame."""
    import pandas as pd
    from sklearn.metrics import classification_report
    report = classification_report(predictions.y_true, predictions.y_pred,
                                   labels=list(range(len(class_names))), target_names=class_names,
                                   output_dict=True, zero_division=0)
    report.pop("accuracy", None)  # not a per-class row
    table = pd.DataFrame(report).T
    table["support"] = table["support"].astype(int)
    return table.round(3)


def misclassified(predictions: Predictions) -> np.ndarray:
    """Indices (in split order) of the wrongly classified examples."""
    return np.flatnonzero(predictions.y_pred != predictions.y_true)


def least_confident(predictions: Predictions, count: int) -> np.ndarray:
    """Indices of the `count` examples whose predicted class had the lowest probability."""
    return np.argsort(predictions.probabilities.max(axis=1))[:count]


def call_times(call: Callable[[], object], *, repeats: int, warmup: int, max_seconds: float,
               at_least: int) -> list[float]:
    """Seconds of each call after `warmup` calls: `repeats` calls, or as many as fit in
    `max_seconds` (at least `at_least`)."""
    for _ in range(warmup):
        call()
    times: list[float] = []
    while len(times) < repeats and (len(times) < at_least or sum(times) < max_seconds):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return times


def _timed_call(model, batch_size: int) -> Callable[[], object]:
    """A call of the compiled Keras model (or a `lite.LiteModel`) on a random batch."""
    call = inference_function(model) if isinstance(model, keras.Model) else model
    x = tf.random.uniform((batch_size, *model.input_shape[1:]), 0, 255, seed=0)
    return lambda: np.asarray(call(x))


def latency_ms(model, *, repeats: int = 100, warmup: int = 5, max_seconds: float = 1.5) -> float:
    """Median milliseconds of a batch-1 call after warm-up (`call_times`): the compiled Keras
    model, or a LiteRT one (`lite.LiteModel`)."""
    times = call_times(_timed_call(model, 1), repeats=repeats, warmup=warmup,
                       max_seconds=max_seconds, at_least=5)
    return 1000 * statistics.median(times)


def throughput(model, *, batch_size: int = 64, repeats: int = 10, max_seconds: float = 2.0) -> float:
    """Images per second at a large batch, after one warm-up call (`call_times`)."""
    times = call_times(_timed_call(model, batch_size), repeats=repeats, warmup=1,
                       max_seconds=max_seconds, at_least=1)
    return batch_size * len(times) / sum(times)


def count_params(weights) -> int:
    """Number of scalars in a list of variables (`model.trainable_weights`, `model.weights`)."""
    return int(sum(np.prod(w.shape) for w in weights))


def mcnemar(first: Predictions, second: Predictions) -> dict[str, float]:
    """Two models compared image by image on the same test set, with McNemar's exact p-value."""
    from scipy.stats import binomtest
    if not np.array_equal(first.y_true, second.y_true):
        raise ValueError("McNemar's test needs both models' predictions on the same images.")
    a = first.y_pred == first.y_true
    b = second.y_pred == second.y_true
    only_first, only_second = int(np.sum(a & ~b)), int(np.sum(~a & b))
    disagree = only_first + only_second
    p = binomtest(min(only_first, only_second), disagree, 0.5).pvalue if disagree else 1.0
    return {"images": len(a), "both right": int(np.sum(a & b)), "only first right": only_first,
            "only second right": only_second, "both wrong": int(np.sum(~a & ~b)),
            "p_value": float(p)}


def accuracy_interval(accuracy: float, images: int) -> tuple[float, float]:
    """Wilson's 95% interval for an accuracy measured on `images` test images (notebook 04)."""
    from scipy.stats import binomtest
    if images <= 0:
        raise ValueError("An accuracy interval needs at least one test image.")
    interval = binomtest(round(accuracy * images), images).proportion_ci(method="wilson")
    return float(interval.low), float(interval.high)
