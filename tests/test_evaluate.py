"""Evaluation: metrics from logits, batch-1 latency, throughput."""

import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from helpers import data, evaluate


def test_metrics_match_keras_losses():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(50, 4)).astype(np.float32)
    labels = rng.integers(0, 4, 50)
    p = evaluate.Predictions(labels, logits)
    expected = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(labels, logits)
    assert p.loss == pytest.approx(float(expected), rel=1e-5)
    assert p.accuracy == np.mean(logits.argmax(1) == labels)
    binary = evaluate.Predictions(labels % 2, logits[:, :1])
    expected = keras.losses.BinaryCrossentropy(from_logits=True)((labels % 2)[:, None], logits[:, :1])
    assert binary.loss == pytest.approx(float(expected), rel=1e-5)
    assert np.array_equal(binary.y_pred, (logits[:, 0] > 0).astype(int))  # threshold at logit 0
    assert np.allclose(binary.probabilities.sum(1), 1)


def test_predict_keeps_the_split_order():
    images = np.arange(10, dtype=np.uint8)[:, None, None, None] * np.ones((1, 4, 4, 3), np.uint8)
    examples = data.examples_from_arrays(images, np.arange(10) % 3)
    inputs = keras.Input((4, 4, 3))
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(inputs)[:, :1])
    p = evaluate.predict(model, examples, batch_size=3)
    assert np.array_equal(p.y_true, np.arange(10) % 3)
    assert np.allclose(p.logits[:, 0], np.arange(10))


class Sleep(keras.layers.Layer):
    """A layer that takes 20 ms per call, whatever the batch."""

    def call(self, x):
        def wait(value):
            time.sleep(0.02)
            return value

        out = tf.py_function(wait, [x], x.dtype)
        out.set_shape(x.shape)
        return out

    def compute_output_shape(self, shape):
        return shape


def test_latency_is_the_median_batch1_call_after_warmup():
    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(Sleep()(inputs)))
    ms = evaluate.latency_ms(model, repeats=9, warmup=2)
    assert 19.5 <= ms < 200
    # the compiled function is made once and reused
    assert evaluate.inference_function(model) is evaluate.inference_function(model)


def test_throughput_counts_images_per_second():
    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(Sleep()(inputs)))
    rate = evaluate.throughput(model, batch_size=40, repeats=3)
    assert 40 / 0.2 < rate <= 40 / 0.02  # 40 images per call of at least 20 ms


def test_count_params_and_least_confident():
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(10)(inputs))
    assert evaluate.count_params(model.weights) == 4 * 10 + 10
    p = evaluate.Predictions(np.array([0, 1, 0]), np.array([[3.0], [0.1], [-2.0]]))
    assert list(evaluate.least_confident(p, 2)) == [1, 2]  # probabilities 0.52 and 0.88


def test_accuracy_interval_is_wilsons_and_honest_at_the_edges():
    low, high = evaluate.accuracy_interval(0.5, 100)
    assert low == pytest.approx(0.4038, abs=1e-4) and high == pytest.approx(0.5962, abs=1e-4)
    low, high = evaluate.accuracy_interval(1.0, 35)  # all right on a small test set
    assert high == 1.0 and low == pytest.approx(0.9011, abs=1e-4)
    low, high = evaluate.accuracy_interval(0.0, 35)
    assert low == 0.0 and high == pytest.approx(1 - 0.9011, abs=1e-4)
    assert evaluate.accuracy_interval(0.9, 10_000)[1] - evaluate.accuracy_interval(0.9, 10_000)[0] < 0.013
    with pytest.raises(ValueError, match="at least one test image"):
        evaluate.accuracy_interval(0.9, 0)
