"""Notebook 07's chores around the LiteRT conversion it shows on its page: the light models notebooks
01, 02 and 05 saved (or which notebook to run), their training data rebuilt, calibration images, a
float32 copy of a mixed-precision model, and the converted models' records."""

import tempfile

import keras
import nbformat
import numpy as np
import papermill
import pytest
import tensorflow as tf

from helpers import datasets, evaluate, lite, pipelines, records, settings
from helpers.records import ARTICLES

CATS_DOGS = "01_cats_vs_dogs_feature_extraction"
ANIMALS = "02_animals_mobilenetv2_vs_efficientnetv2"
CIFAR = "05_cifar10_resnet50_vs_mobilenet"
DEVICE = "07_light_models_on_device"


def small_model(classes: int = 3, size: int = 16) -> keras.Model:
    """Raw pixels -> rescaling -> a convolution -> logits, with augmentation and dropout (both off
    at inference) as notebook 05's model has them."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((size, size, 3))
    x = keras.layers.RandomFlip("horizontal")(inputs)
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(x)
    x = keras.layers.Conv2D(8, 3, activation="relu")(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(0.2)(x)
    return keras.Model(inputs, keras.layers.Dense(classes)(x))


def images(count: int = 12, size: int = 16, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, (count, size, size, 3)).astype(np.float32)


def keras_logits(model: keras.Model, x: np.ndarray) -> np.ndarray:
    return keras.ops.convert_to_numpy(model(x, training=False))


class LiteModel:
    """A .tflite model in the LiteRT interpreter, called like the Keras model (what notebook 07's
    LiteModel is to `lite.new_record`): float32 batches in, logits out, with `input_shape` and
    `size_mb`."""

    def __init__(self, content: bytes):
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(model_content=content)
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        self.input_shape = (None, *self.input["shape"][1:])
        self.size_mb, self._batch = len(content) / 2**20, None

    def __call__(self, batch) -> np.ndarray:
        batch = np.asarray(batch, dtype=np.float32)
        if len(batch) != self._batch:
            self.interpreter.resize_tensor_input(self.input["index"], batch.shape)
            self.interpreter.allocate_tensors()
            self._batch = len(batch)
        self.interpreter.set_tensor(self.input["index"], batch)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.output["index"])




@pytest.fixture(scope="module")
def tflite():
    """A small model converted to a float32 .tflite file as notebook 07 does (a SavedModel of the
    inference call, then TensorFlow's converter)."""
    model = small_model()
    with tempfile.TemporaryDirectory() as folder:
        archive = keras.export.ExportArchive()
        archive.track(model)
        archive.add_endpoint("serve", lambda x: model(x, training=False),
                             input_signature=[tf.TensorSpec((None, 16, 16, 3), tf.float32)])
        archive.write_out(folder, verbose=False)
        content = tf.lite.TFLiteConverter.from_saved_model(folder).convert()
    converted = LiteModel(content)
    x = images(4)
    # LiteRT's kernels against Keras's: the same float32 arithmetic in another order, so a tolerance
    np.testing.assert_allclose(converted(x), keras_logits(model, x), rtol=1e-4, atol=1e-4)
    return converted


def test_a_mixed_precision_model_is_copied_in_float32():
    keras.config.set_dtype_policy("mixed_float16")
    try:
        model = small_model()
    finally:
        keras.config.set_dtype_policy("float32")
    assert "float16" in {layer.dtype_policy.compute_dtype for layer in model.layers}
    copy = lite.float32_copy(model)
    assert copy is not model
    assert {layer.dtype_policy.compute_dtype for layer in copy.layers} == {"float32"}
    for ours, theirs in zip(copy.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(ours, theirs)  # copied, not recomputed
    x = images(4)
    # float16 arithmetic against float32: float16 keeps about three significant digits
    np.testing.assert_allclose(keras_logits(copy, x), keras_logits(model, x), rtol=0.05, atol=0.05)
    assert keras_logits(copy, x).dtype == np.float32
    plain = small_model()
    assert lite.float32_copy(plain) is plain


def test_representative_images_are_seeded_training_images():
    x = np.repeat(np.arange(30), 4 * 4 * 3).reshape(30, 4, 4, 3)  # image k is all k: thirty different
    split = pipelines.examples_from_arrays(x.astype(np.uint8), np.zeros(30))
    first = lite.representative_images(split, 10, seed=1)
    assert first.shape == (10, 4, 4, 3) and first.dtype == np.float32
    np.testing.assert_array_equal(first, lite.representative_images(split, 10, seed=1))
    rows = [tuple(image.ravel()) for image in x.astype(np.float32)]
    picked = [tuple(image.ravel()) for image in first]
    assert all(image in rows for image in picked) and len(set(picked)) == 10  # ten different training images
    other = {tuple(image.ravel()) for image in lite.representative_images(split, 10, seed=2)}
    assert other != set(picked)  # the seed chooses
    assert len(lite.representative_images(split, 100, seed=1)) == 30


def _source_record(make_settings, notebook, model, strategy="frozen", name=None, profile="smoke", **values):
    settings = make_settings(notebook, profile=profile)
    record = records.new_record(settings, model, strategy, title=model, **values)
    path = records.record_path(settings, model, strategy)
    return records.write_record(record, path.with_name(name) if name else path)


def test_light_models_finds_saved_models_and_names_the_notebook_to_run(make_settings):
    folder = make_settings(ANIMALS).record_dir
    folder.mkdir(parents=True)
    kept = folder / "mobilenet_v2__frozen.keras"
    kept.write_bytes(b"")
    (folder / "mobilenet_v2__frozen__equal-epochs.keras").write_bytes(b"")
    _source_record(make_settings, ANIMALS, "mobilenet_v2", model_file=kept.name)
    _source_record(make_settings, ANIMALS, "mobilenet_v2", name="mobilenet_v2__frozen__equal-epochs.json",
                   variant="equal-epochs", model_file="mobilenet_v2__frozen__equal-epochs.keras")
    path = _source_record(make_settings, ANIMALS, "efficientnetv2_b0")
    path.with_suffix(".keras").write_bytes(b"")  # a file, but the record does not name it
    _source_record(make_settings, CATS_DOGS, "mobilenet_v2", status="failed", model_file="mobilenet_v2__frozen.keras")
    laptop = _source_record(make_settings, CATS_DOGS, "mobilenet_v2", name="laptop.json", profile="laptop",
                            model_file="laptop.keras")
    laptop.with_suffix(".keras").write_bytes(b"")  # another profile's model: not this profile's
    resnet = _source_record(make_settings, CIFAR, "resnet50", "all", model_file="resnet50__all.keras")
    resnet.with_suffix(".keras").write_bytes(b"")  # not a light model

    found = lite.light_models(make_settings(DEVICE))

    assert [(s.notebook[:2], s.model) for s in found] == [("01", "mobilenet_v2"), ("02", "mobilenet_v2"),
                                                          ("02", "efficientnetv2_b0"), ("05", "mobilenet")]
    by_key = {(s.notebook[:2], s.model): s for s in found}
    ready = by_key[("02", "mobilenet_v2")]
    assert ready.problem is None and ready.model_path == kept  # the plain run's, not the variant's
    assert ready.record["variant"] is None and ready.title == "MobileNetV2 from notebook 02"
    failed = by_key[("01", "mobilenet_v2")]
    assert failed.problem == (f"its run failed: run notebooks/{CATS_DOGS}.ipynb on the smoke profile with "
                              "REDO = True")
    assert failed.model_path is None
    assert "SAVE_MODELS = True" in by_key[("02", "efficientnetv2_b0")].problem
    missing = by_key[("05", "mobilenet")]
    assert missing.problem == f"no record: run notebooks/{CIFAR}.ipynb on the smoke profile"
    assert missing.record is None and missing.title == "MobileNet (v1) from notebook 05"


def test_a_model_file_named_but_absent_is_a_problem_until_it_is_there(make_settings):
    path = _source_record(make_settings, CIFAR, "mobilenet", "all", model_file="mobilenet__all.keras")
    source = next(s for s in lite.light_models(make_settings(DEVICE)) if s.notebook == CIFAR)
    assert source.problem.startswith(f"{path.with_suffix('.keras')} is missing: run notebooks/{CIFAR}.ipynb")
    path.with_suffix(".keras").write_bytes(b"")
    source = next(s for s in lite.light_models(make_settings(DEVICE)) if s.notebook == CIFAR)
    assert source.problem is None and source.model_path == path.with_suffix(".keras")


@pytest.mark.notebook
def test_notebook_07_names_a_saved_model_that_cannot_be_loaded_and_goes_on(make_settings, tmp_path):
    path = _source_record(make_settings, CATS_DOGS, "mobilenet_v2", model_file="mobilenet_v2__frozen.keras")
    model_file = path.with_suffix(".keras")
    small_model().save(model_file)
    model_file.write_bytes(model_file.read_bytes()[:500])  # a copy cut short
    output = tmp_path / f"{DEVICE}.ipynb"
    papermill.execute_notebook(str(settings.project_root() / "notebooks" / f"{DEVICE}.ipynb"), str(output),
                               parameters={"PROFILE": "smoke", "RESULTS_DIR": str(make_settings(DEVICE).results_dir)},
                               cwd=str(settings.project_root() / "notebooks"), progress_bar=False,
                               kernel_name="python3")
    printed = "".join(o.get("text", "") for c in nbformat.read(output, 4).cells for o in c.get("outputs", []))
    assert ("MobileNetV2 from notebook 01" in printed
            and "skipped, mobilenet_v2__frozen.keras cannot be loaded (" in printed
            and "rerun notebook 01, which trains it again" in printed)
    assert "0 converted models measured" in printed  # the notebook went on to its end without it


def test_a_converted_model_gets_a_complete_record(make_settings, tflite):
    trained = dict(dataset="cats vs dogs", image_size=160, batch_size=32, epochs=10, fine_tune_epochs=0,
                   optimizer="Adam", learning_rate=1e-4, train_accuracy=0.97, train_loss=0.1,
                   val_accuracy=0.5, val_loss=2.0, test_accuracy=0.5, test_loss=2.0,
                   trainable_params=1281, total_params=2259265, train_seconds=30.0, skipped_files=0,
                   inference_ms_per_image=99.0, throughput_images_per_s=1.0, device="elsewhere",
                   split_fingerprint="abc123", class_names=["cats", "dogs"], model_file="mobilenet_v2__frozen.keras")
    source_record = records.new_record(make_settings(CATS_DOGS), "mobilenet_v2", "frozen", **trained)
    source = lite.Source(CATS_DOGS, "mobilenet_v2", source_record)
    settings = make_settings(DEVICE)
    split = pipelines.examples_from_arrays(images(6).astype(np.uint8), np.zeros(6))
    measured = evaluate.predict_with(lambda x: tflite(x.numpy()), split, 4)  # as notebook 07 measures
    val = evaluate.Predictions(measured.y_pred, measured.logits)  # every class right
    test = evaluate.Predictions((measured.y_pred + 1) % 3, measured.logits)  # every class wrong

    record = lite.new_record(settings, source, "float32", tflite, val, test, model_file="x.tflite")
    path = lite.record_path(settings, source, "float32")
    assert path.name == "mobilenet_v2__tflite-float32__from-01.json"
    assert path.parent == settings.record_dir
    records.write_record(record, path)
    checked = records.check_record(path)  # every contract field has a value

    assert (checked["notebook"], checked["model"], checked["strategy"], checked["variant"]) == (
        DEVICE, "mobilenet_v2", "tflite-float32", "from-01")
    assert checked["title"] == "MobileNetV2 from notebook 01, LiteRT float32"
    assert checked["article"] == ARTICLES[CATS_DOGS]  # the source's: notebook 07 has no article
    for field in ("dataset", "image_size", "batch_size", "epochs", "train_accuracy", "trainable_params",
                  "split_fingerprint", "class_names"):
        assert checked[field] == source_record[field], field
    assert checked["val_accuracy"] == 1.0 and checked["test_accuracy"] == 0.0  # its own, not the source's
    # the same function of the same logits evaluated again; a tolerance for the JSON round trip
    assert checked["val_loss"] == pytest.approx(val.loss, rel=1e-6)
    assert checked["test_loss"] == pytest.approx(test.loss, rel=1e-6)
    assert checked["test_loss"] > checked["val_loss"]
    assert checked["model_size_mb"] == tflite.size_mb and checked["model_file"] == "x.tflite"
    assert checked["inference_ms_per_image"] > 0 and checked["inference_ms_per_image"] != 99.0
    assert checked["throughput_images_per_s"] > 0 and checked["throughput_batch_size"] == 32
    assert checked["device"] != "elsewhere"  # measured here


def test_training_data_rebuilds_the_split_of_a_record(make_settings):
    settings = make_settings(CATS_DOGS, image_size=32, limit=10, batch_size=4)
    original = datasets.cats_vs_dogs(settings)
    record = records.new_record(settings, "mobilenet_v2", "frozen")
    rebuilt = lite.training_data(record)
    assert rebuilt.fingerprint == original.fingerprint and rebuilt.class_names == original.class_names
    assert rebuilt.image_size == 32 and rebuilt.size("test") == original.size("test")
    for split in ("train", "val", "test"):
        np.testing.assert_array_equal(rebuilt.labels[split], original.labels[split])
    first = next(iter(rebuilt.test.take(1)))[0]
    assert first.dtype == tf.uint8 and first.shape == (32, 32, 3)


def test_training_data_splits_cifar10_as_notebook_05_does(make_settings):
    settings = make_settings(CIFAR, limit=40, batch_size=4)
    record = records.new_record(settings, "mobilenet", "all")
    rebuilt = lite.training_data(record)
    assert rebuilt.fingerprint == datasets.cifar10(settings, val_fraction=0.3).fingerprint
    assert rebuilt.fingerprint != datasets.cifar10(settings, val_fraction=0.1).fingerprint  # notebook 03's
