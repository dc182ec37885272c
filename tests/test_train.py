"""Around fit: the precision policy and XLA choice, resuming an interrupted fit exactly, and
a training step under tf.distribute.MirroredStrategy on two CPU devices."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from helpers import data, models, train


@pytest.mark.parametrize("asked, gpu, policy", [
    (None, True, "mixed_float16"),
    (True, True, "mixed_float16"),
    (False, True, "float32"),
    (None, False, "float32"),
    (True, False, "float32"),  # asked for, but a CPU computes float16 slowly: stays off
    (False, False, "float32"),
])
def test_precision_policy(asked, gpu, policy):
    assert train.precision_policy(asked, gpu) == policy


def test_on_this_cpu_float32_determinism_and_no_xla_unless_asked(make_settings):
    assert not tf.config.list_physical_devices("GPU")
    try:
        device = train.configure_device(make_settings(mixed_precision=True))
        assert keras.mixed_precision.global_policy().name == "float32"
        assert not device.mixed_precision and device.gpus == 0 and device.strategy.num_replicas_in_sync == 1
        assert device.xla is False and device.deterministic
        asked = train.configure_device(make_settings(xla=True))
        # Keras refuses jit_compile while op determinism is on, so asking for XLA switches it off
        assert asked.xla and not asked.deterministic and "XLA asked for" in asked.describe()
    finally:
        train.configure_device(make_settings())  # back to the course's CPU defaults


def test_mixed_precision_classifier_has_float32_logits():
    try:
        keras.mixed_precision.set_global_policy("mixed_float16")
        model, base = models.gap_classifier("mobilenet_v2", 32, 3)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert base.layers[2].compute_dtype == "float16"  # the work is done in float16
    assert model.get_layer("logits").compute_dtype == "float32" and model.outputs[0].dtype == "float32"
    logits = model(np.full((2, 32, 32, 3), 100.0, np.float32), training=False)
    assert logits.dtype == tf.float32 and np.all(np.isfinite(logits.numpy()))


# --------------------------------------------------------------------- resume


class Interrupt(keras.callbacks.Callback):
    """Stands in for a killed kernel: raises once epoch `after` has been backed up."""

    def __init__(self, after):
        super().__init__()
        self.after = after

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.after:
            raise KeyboardInterrupt


def _fit(folder, epochs=4, extra=(), initial_epoch=0, early=None):
    """A small model, the same every time; Resume comes last, as in experiment.Run."""
    keras.utils.set_random_seed(3)
    x = np.random.default_rng(0).normal(size=(64, 8)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    inputs = keras.Input((8,))
    hidden = keras.layers.Dropout(0.3)(keras.layers.Dense(16, activation="relu")(inputs))
    model = keras.Model(inputs, keras.layers.Dense(2)(hidden))  # Dropout: its random state resumes too
    model.compile(keras.optimizers.Adam(0.01), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    examples = tf.data.Dataset.from_tensor_slices((x, y))
    batches = data.batches(examples, 16, shuffle_seed=1)  # each epoch's order: seed and epoch only
    resume = train.Resume(folder)
    callbacks = [*([early] if early else []), resume, *extra]
    history = model.fit(batches, validation_data=data.batches(examples, 16), epochs=epochs, initial_epoch=initial_epoch,
                        callbacks=callbacks, verbose=0)
    return model, history, resume


def test_an_interrupted_fit_continues_where_it_stopped_and_ends_like_an_uninterrupted_one(tmp_path):
    whole, whole_history, _ = _fit(tmp_path / "whole")
    with pytest.raises(KeyboardInterrupt):
        _fit(tmp_path / "cut", extra=[Interrupt(2)])
    model, history, resume = _fit(tmp_path / "cut")
    assert resume.resumed == 2 and history.epoch == [2, 3]  # only the epochs left ran
    for a, b in zip(model.get_weights(), whole.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert history.history["val_loss"] == pytest.approx(whole_history.history["val_loss"][2:], rel=1e-5)


def test_a_finished_phase_is_restored_whole_and_runs_no_epoch(tmp_path):
    trained, _, _ = _fit(tmp_path / "b")
    again, history, resume = _fit(tmp_path / "b")
    assert history.epoch == [] and resume.resumed == 4
    for a, b in zip(again.get_weights(), trained.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_early_stopping_best_weights_are_what_a_rerun_restores(tmp_path):
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=1, restore_best_weights=True,
                                         mode="max")  # "max" stops at once, keeping epoch 1
    trained, history, _ = _fit(tmp_path / "e", epochs=6, early=stop)
    assert len(history.epoch) < 6
    again, rerun, _ = _fit(tmp_path / "e", epochs=6)
    assert rerun.epoch == []  # the stopped phase counts as finished
    for a, b in zip(again.get_weights(), trained.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert json.loads((tmp_path / "e" / "state.json").read_text())["done"]


def test_read_log_keeps_the_last_row_of_an_epoch_run_twice(tmp_path):
    log = tmp_path / "log.csv"
    log.write_text("epoch,loss,val_loss\n0,1.0,1.1\n1,0.9,1.0\n1,0.8,0.95\n2,0.7,0.9\n")
    rows = train.read_log(log, "head")
    assert [(r["epoch"], r["loss"]) for r in rows] == [(1, 1.0), (2, 0.8), (3, 0.7)]
    assert {r["phase"] for r in rows} == {"head"}
    with pytest.raises(train.TrainingDiverged, match="became nan in epoch 2 \\(head\\); lower the learning rate"):
        train.check_finite([{"epoch": 2, "loss": float("nan")}], "head")


# ---------------------------------------------------------------- distribution

MIRRORED = textwrap.dedent("""
    import json, sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]  # before TensorFlow initializes
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    import numpy as np
    sys.path.insert(0, sys.argv[1])
    from helpers import models, samples

    x, y = samples.sample_arrays(8, 3, 32, seed=0)
    out = {}
    for name, strategy in (("mirrored", tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])),
                           ("single", tf.distribute.get_strategy())):
        keras.utils.set_random_seed(0)
        with strategy.scope():  # as the notebooks build and compile
            model, base = models.gap_classifier("resnet50", 32, 3)
            for layer in base.layers[:-4]:
                layer.trainable = False
            model.compile(keras.optimizers.SGD(0.1),
                          keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        before = [w.copy() for w in model.get_weights()]
        history = model.fit(x.astype("float32"), y.astype("int32"), batch_size=8, epochs=1, verbose=0,
                            shuffle=False)
        out[name] = {
            "replicas": strategy.num_replicas_in_sync,
            "loss": history.history["loss"][-1],
            "variable": type(model.get_layer("logits").kernel.value).__name__,
            "weights": [w.tolist() for w in model.get_layer("logits").get_weights()],
            "moved": max(float(np.abs(a - b).max()) for a, b in zip(model.get_weights(), before)),
        }
    print("RESULT " + json.dumps(out))
""")


def test_one_step_under_mirrored_strategy_on_two_cpu_devices(tmp_path):
    script = tmp_path / "mirrored.py"
    script.write_text(MIRRORED)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "COURSE_OFFLINE": "1"}
    done = subprocess.run([sys.executable, str(script), root], capture_output=True, text=True,
                          env=env, timeout=600)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, done.stderr[-3000:]
    result = json.loads(lines[-1].removeprefix("RESULT "))
    mirrored, single = result["mirrored"], result["single"]
    assert mirrored["replicas"] == 2 and single["replicas"] == 1
    assert mirrored["variable"] == "MirroredVariable"
    assert np.isfinite(mirrored["loss"]) and mirrored["moved"] > 0
    # Two replicas of 4 images each take the same step as one device on all 8.
    assert mirrored["loss"] == pytest.approx(single["loss"], rel=1e-4)
    for a, b in zip(mirrored["weights"], single["weights"]):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)
