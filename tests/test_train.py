"""Training: the cached-feature fast path against end to end, the precision policy,
and a step under tf.distribute.MirroredStrategy."""

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

SEED = 7
# ResNet50 with random weights still passes signal at 32x32 (MobileNets do not), so the
# head really learns from the features and the comparison is not between two constants.
BACKBONE, SIZE, CLASSES, BATCH = "resnet50", 32, 3, 16


def generated(n_train=50, n_val=18, size=SIZE, classes=CLASSES):
    """Learnable generated images; 50 training images give a last batch of 2."""
    x, y = data.sample_arrays(n_train + n_val, classes, size, seed=3)
    train, val = (x[:n_train], y[:n_train]), (x[n_train:], y[n_train:])
    return data.image_data_from_arrays("generated", {"train": train, "val": val, "test": val},
                                       [str(k) for k in range(classes)], "generated")


def build():
    """The same classifier every time: a head with two Dropout layers, so both paths must
    draw the same dropout masks in the same order to agree."""
    keras.utils.set_random_seed(SEED)
    return models.build_classifier(BACKBONE, SIZE, CLASSES, weights=None,
                                   hidden=((16, 0.5),), dropout=0.25)


@pytest.fixture(scope="module")
def image_data():
    return generated()


def run(image_data, cached, **plan):
    classifier = build()
    start = [w.copy() for w in classifier.head.get_weights()]
    plan = train.TrainPlan(**{"optimizer": "adam", "learning_rate": 1e-3, "epochs": 3,
                              "cached_features": cached, **plan})
    history = train.train(classifier, image_data, plan, batch_size=BATCH, seed=SEED, verbose=0)
    return classifier, history, start


def assert_same_rows(a, b):
    assert [r["epoch"] for r in a] == [r["epoch"] for r in b]
    assert [r["phase"] for r in a] == [r["phase"] for r in b]
    for left, right in zip(a, b):
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
            assert left[key] == pytest.approx(right[key], rel=1e-5, abs=1e-6), (left["epoch"], key)


def test_cached_features_train_the_same_head_as_end_to_end(image_data):
    e2e, e2e_history, start = run(image_data, cached=False)
    fast, fast_history, _ = run(image_data, cached=True)
    assert not e2e_history.cached_features and fast_history.cached_features
    assert len(fast_history.rows) == 3
    assert_same_rows(e2e_history.rows, fast_history.rows)
    for a, b, before in zip(e2e.head.get_weights(), fast.head.get_weights(), start):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
        assert not np.allclose(a, before)  # the head trained
    losses = [r["loss"] for r in fast_history.rows]
    assert losses[-1] < losses[0]  # and learned something
    # The whole models agree on new images, not only the heads.
    x, _ = data.take_images(image_data.val, 8)
    np.testing.assert_allclose(e2e.model(x.astype("float32"), training=False),
                               fast.model(x.astype("float32"), training=False),
                               rtol=1e-4, atol=1e-5)


def test_fine_tuning_continues_from_the_cached_head(image_data):
    plan = {"epochs": 2, "strategy": "layers:4", "fine_tune_epochs": 1}
    e2e, e2e_history, _ = run(image_data, cached=False, **plan)
    fast, fast_history, _ = run(image_data, cached=True, **plan)
    assert fast_history.cached_features and fast_history.fine_tune_start == 3
    assert [r["phase"] for r in fast_history.rows] == ["head", "head", "fine-tune"]
    assert_same_rows(e2e_history.rows, fast_history.rows)
    for a, b in zip(e2e.model.get_weights(), fast.model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_features_on_disk_equal_those_in_memory(image_data, tmp_path):
    classifier = build()
    examples = image_data.train.filter(lambda x, y: True)  # unknown length: counted first
    in_memory = list(train.extract_features(classifier, examples, BATCH).as_numpy_iterator())
    on_disk = train.extract_features(classifier, examples, BATCH, workdir=tmp_path,
                                     memory_budget=0)
    assert any(tmp_path.iterdir())  # written to the work folder and read back from there
    from_disk = list(on_disk.as_numpy_iterator())
    assert len(from_disk) == len(in_memory) == image_data.size("train")
    images, labels = data.take_images(image_data.train, image_data.size("train"))
    direct = classifier.features(images.astype("float32"), training=False).numpy()
    for (f_mem, y_mem), (f_disk, y_disk), f, y in zip(in_memory, from_disk, direct, labels):
        assert y_mem == y_disk == y  # same order as the split
        assert f_mem.dtype == f_disk.dtype == np.float32
        np.testing.assert_allclose(f_mem, f_disk, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(f_mem, f, rtol=1e-4, atol=1e-5)
    # One trace of the base serves both calls, full batches and the last, smaller one.
    assert train.feature_function(classifier).experimental_get_tracing_count() == 1


# ------------------------------------------------------------------- precision


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


def test_configure_device_keeps_float32_and_no_xla_on_this_cpu(make_settings):
    assert not tf.config.list_physical_devices("GPU")
    try:
        device = train.configure_device(make_settings(mixed_precision=True))
        assert keras.mixed_precision.global_policy().name == "float32"
        assert not device.mixed_precision and device.gpus == 0
        assert device.xla is False  # the default on a CPU
        assert device.strategy.num_replicas_in_sync == 1
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_mixed_precision_classifier_has_float32_logits():
    try:
        keras.mixed_precision.set_global_policy("mixed_float16")
        classifier = models.build_classifier("mobilenet_v2", 32, 3, weights=None,
                                             hidden=((8, 0.0),))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    hidden = classifier.head.get_layer("dense_8_0")
    assert hidden.compute_dtype == "float16"  # the work is done in float16
    assert classifier.head.get_layer("logits").compute_dtype == "float32"
    assert classifier.model.outputs[0].dtype == "float32"
    logits = classifier.model(np.full((2, 32, 32, 3), 100.0, np.float32), training=False)
    assert logits.dtype == tf.float32 and np.all(np.isfinite(logits.numpy()))


# ---------------------------------------------------------------- distribution

MIRRORED = textwrap.dedent("""
    import json, sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]  # before TensorFlow initializes
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    import numpy as np
    sys.path.insert(0, sys.argv[1])
    from helpers import data, models, train

    x, y = data.sample_arrays(12, 3, 32, seed=0)
    split = data.image_data_from_arrays(
        "generated", {"train": (x[:8], y[:8]), "val": (x[8:], y[8:]), "test": (x[8:], y[8:])},
        ["a", "b", "c"], "generated")
    plan = train.TrainPlan(optimizer="sgd", learning_rate=0.1, epochs=1, first_phase="layers:4")
    out = {}
    for name, strategy in (("mirrored", tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])),
                           ("single", tf.distribute.get_strategy())):
        keras.utils.set_random_seed(0)
        with strategy.scope():  # as experiment.run_config builds it
            classifier = models.build_classifier("resnet50", 32, 3, weights=None)
        before = [w.copy() for w in classifier.head.get_weights()]
        history = train.train(classifier, split, plan, batch_size=8, seed=0, verbose=0)
        out[name] = {
            "replicas": strategy.num_replicas_in_sync,
            "loss": history.rows[-1]["loss"],
            "variable": type(classifier.head.weights[0].value).__name__,
            "head": [w.tolist() for w in classifier.head.get_weights()],
            "moved": max(float(np.abs(a - b).max()) for a, b in
                         zip(classifier.head.get_weights(), before)),
        }
    print("RESULT " + json.dumps(out))
""")


def test_one_step_under_mirrored_strategy_on_two_cpu_devices(tmp_path):
    script = tmp_path / "mirrored.py"
    script.write_text(MIRRORED)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "COURSE_OFFLINE": "1"}
    env.pop("TF_CONFIG", None)
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
    for a, b in zip(mirrored["head"], single["head"]):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)


def test_plan_description_counts_epochs_in_words():
    plan = train.TrainPlan(optimizer="adam", learning_rate=1e-3, epochs=1, strategy="blocks:2",
                           fine_tune_epochs=1, fine_tune_learning_rate=1e-5, early_stopping=3)
    text = plan.describe()
    assert "Adam at 0.001, 1 epoch\n" in text
    assert "not improved for 3 epochs" in text
    assert text.endswith("phase 2: unfreeze blocks:2, recompile at 1e-05, 1 more epoch")
