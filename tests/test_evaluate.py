"""Evaluation: metrics from logits, predictions in the split's order, and how latency and
throughput are measured (on a fake clock: no test here depends on how fast this machine is)."""

import gc
import weakref

import keras
import numpy as np
import pytest

from helpers import evaluate, pipelines


def _log_softmax(z):
    z = z.astype(np.float64)
    shifted = z - z.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def test_metrics_match_the_cross_entropy_of_the_logits():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(50, 4)).astype(np.float32)
    labels = rng.integers(0, 4, 50)
    p = evaluate.Predictions(labels, logits)
    # Keras's loss in float32 against a float64 reference: equal up to rounding
    expected = -np.mean(_log_softmax(logits)[np.arange(50), labels])
    assert p.loss == pytest.approx(expected, rel=1e-5)
    keras_loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(labels, logits)
    assert p.loss == pytest.approx(float(keras_loss), rel=1e-5)  # as the models' own loss
    assert p.accuracy == np.mean(logits.argmax(1) == labels)
    assert np.array_equal(p.y_pred, logits.argmax(1))


def test_a_single_logit_is_class_one_against_zero():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(40, 1)).astype(np.float32)
    labels = rng.integers(0, 2, 40)
    binary = evaluate.Predictions(labels, logits)
    x = logits[:, 0].astype(np.float64)
    # float32 against a float64 reference: equal up to rounding
    expected = np.mean(np.maximum(x, 0) - x * labels + np.log1p(np.exp(-np.abs(x))))
    assert binary.loss == pytest.approx(expected, rel=1e-5)
    assert np.array_equal(binary.y_pred, (logits[:, 0] > 0).astype(int))  # threshold at logit 0
    assert binary.accuracy == np.mean((logits[:, 0] > 0).astype(int) == labels)
    np.testing.assert_allclose(binary.probabilities[:, 1], 1 / (1 + np.exp(-x)), rtol=1e-6)
    np.testing.assert_allclose(binary.probabilities.sum(1), 1, rtol=1e-6)


def test_probabilities_are_a_stable_softmax():
    logits = np.array([[1000.0, 0.0, -1000.0], [0.0, 0.0, 0.0], [2.0, 1.0, 0.0]])
    p = evaluate.probabilities(logits)
    assert np.all(np.isfinite(p))
    np.testing.assert_allclose(p[0], [1, 0, 0], atol=1e-12)
    np.testing.assert_allclose(p[1], [1 / 3] * 3)
    np.testing.assert_allclose(p[2], np.exp(_log_softmax(logits[2:]))[0])
    np.testing.assert_allclose(p.sum(1), 1)


def _identity_model(size=4):
    """Logit 0 of an image: the mean of its pixels."""
    inputs = keras.Input((size, size, 3))
    return keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(inputs)[:, :1])


def test_predict_keeps_the_split_order():
    images = np.arange(10, dtype=np.uint8)[:, None, None, None] * np.ones((1, 4, 4, 3), np.uint8)
    examples = pipelines.examples_from_arrays(images, np.arange(10) % 3)
    p = evaluate.predict(_identity_model(), examples, batch_size=3)
    assert np.array_equal(p.y_true, np.arange(10) % 3) and p.y_true.dtype.kind == "i"
    assert p.logits.dtype == np.float32 and p.logits.shape == (10, 1)
    np.testing.assert_allclose(p.logits[:, 0], np.arange(10))


def test_predict_with_calls_on_each_batch_in_order():
    images = np.arange(7, dtype=np.uint8)[:, None, None, None] * np.ones((1, 2, 2, 3), np.uint8)
    examples = pipelines.examples_from_arrays(images, np.zeros(7))
    sizes = []

    def call(batch):
        sizes.append(int(batch.shape[0]))
        return np.asarray(batch)[:, 0, 0, :2]

    p = evaluate.predict_with(call, examples, batch_size=3)
    assert sizes == [3, 3, 1]
    np.testing.assert_array_equal(p.logits[:, 0], np.arange(7))


def test_the_inference_function_is_made_once_and_calls_in_inference_mode():
    inputs = keras.Input((8,))
    model = keras.Model(inputs, keras.layers.Dropout(0.9)(inputs))
    f = evaluate.inference_function(model)
    assert evaluate.inference_function(model) is f
    x = np.ones((4, 8), "float32")
    np.testing.assert_array_equal(np.asarray(f(x)), x)  # no dropout: training=False


def test_the_inference_function_does_not_keep_a_model_alive():
    model = _identity_model()
    evaluate.inference_function(model)(np.zeros((1, 4, 4, 3), "float32"))
    gone = weakref.ref(model)
    del model
    gc.collect()
    assert gone() is None


class Clock:
    """A fake `time` module: its time moves only when a timed call says so."""

    def __init__(self):
        self.now = 0.0

    def perf_counter(self):
        return self.now


class TimedCall:
    """Stands in for a model (or notebook 07's LiteRT one): each call takes the next duration."""

    def __init__(self, clock, durations, input_shape=(None, 8, 8, 3)):
        self.clock, self.durations, self.input_shape, self.batches = clock, list(durations), input_shape, []

    def __call__(self, x):
        self.batches.append(tuple(x.shape))
        self.clock.now += self.durations.pop(0)
        return np.zeros((x.shape[0], 1), "float32")


@pytest.fixture
def clock(monkeypatch):
    fake = Clock()
    monkeypatch.setattr(evaluate, "time", fake)
    return fake


def test_call_times_skip_the_warmup_and_stop_at_repeats(clock):
    durations = iter([9.0, 9.0, 0.1, 0.2, 0.3, 0.4, 0.5])

    def call():
        clock.now += next(durations)

    times = evaluate.call_times(call, repeats=4, warmup=2, max_seconds=100, at_least=1)
    np.testing.assert_allclose(times, [0.1, 0.2, 0.3, 0.4])


def test_call_times_stop_after_max_seconds_but_not_before_at_least(clock):
    def call():
        clock.now += 1.0

    assert len(evaluate.call_times(call, repeats=100, warmup=0, max_seconds=2.5, at_least=1)) == 3
    assert len(evaluate.call_times(call, repeats=100, warmup=0, max_seconds=2.5, at_least=6)) == 6
    assert len(evaluate.call_times(call, repeats=2, warmup=0, max_seconds=100, at_least=6)) == 2


def test_latency_is_the_median_batch1_call_after_warmup(clock):
    model = TimedCall(clock, [5.0, 5.0] + [0.010, 0.030, 0.020, 0.500, 0.015])
    ms = evaluate.latency_ms(model, repeats=5, warmup=2, max_seconds=100)
    assert ms == pytest.approx(20.0)  # the median of 10, 30, 20, 500, 15 ms; the warm-up not counted
    assert set(model.batches) == {(1, 8, 8, 3)}


def test_throughput_counts_images_per_second(clock):
    model = TimedCall(clock, [7.0] + [0.1, 0.2, 0.1])
    rate = evaluate.throughput(model, batch_size=40, repeats=3, max_seconds=100)
    assert rate == pytest.approx(3 * 40 / 0.4)  # three calls of 40 images in 0.4 s
    assert set(model.batches) == {(40, 8, 8, 3)}


def test_a_keras_model_is_timed_through_its_inference_function(clock, monkeypatch):
    model = _identity_model(8)
    calls = []
    real = evaluate.inference_function(model)

    def timed(x):
        calls.append(tuple(x.shape))
        clock.now += 0.002
        return real(x)

    monkeypatch.setitem(evaluate._COMPILED, model, timed)
    assert evaluate.latency_ms(model, repeats=3, warmup=1) == pytest.approx(2.0)
    assert calls == [(1, 8, 8, 3)] * 4


def test_count_params():
    inputs = keras.Input((4,))
    dense = keras.layers.Dense(10)
    model = keras.Model(inputs, keras.layers.BatchNormalization()(dense(inputs)))
    assert evaluate.count_params(dense.weights) == 4 * 10 + 10
    assert evaluate.count_params(model.weights) == 4 * 10 + 10 + 4 * 10
    assert evaluate.count_params(model.trainable_weights) == 4 * 10 + 10 + 2 * 10
    assert evaluate.count_params([]) == 0
