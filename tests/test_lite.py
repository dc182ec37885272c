"""Converting models to LiteRT: the four formats, their agreement with Keras, their sizes, and
the bookkeeping of notebook 07 (finding the light models, its records)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from helpers import data, evaluate, lite, models, results


def small_model(classes: int = 3, size: int = 16) -> keras.Model:
    """Raw pixels -> rescaling -> a few convolutions -> logits, with augmentation and dropout
    (both off at inference) as notebook 05's model has them."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((size, size, 3))
    x = keras.layers.RandomFlip("horizontal")(inputs)
    x = keras.layers.RandomRotation(0.2)(x)
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(x)
    x = keras.layers.Conv2D(8, 3, activation="relu")(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(0.2)(x)
    return keras.Model(inputs, keras.layers.Dense(classes)(x))


def images(count: int = 12, size: int = 16, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, (count, size, size, 3)).astype(np.float32)


def keras_logits(model: keras.Model, x: np.ndarray) -> np.ndarray:
    return np.asarray(model(x, training=False))


@pytest.fixture(scope="module")
def converted():
    model = small_model()
    return model, lite.convert(model, images(20, seed=1))


def test_four_formats_run_and_float32_matches_keras(converted):
    model, files = converted
    assert list(files) == list(lite.FORMATS)
    x = images()
    expected = keras_logits(model, x)
    for kind, content in files.items():
        logits = lite.LiteModel(content)(x)
        assert logits.shape == expected.shape and logits.dtype == np.float32, kind
        assert np.isfinite(logits).all(), kind
    np.testing.assert_allclose(lite.LiteModel(files["float32"])(x), expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(lite.LiteModel(files["float16"])(x), expected, rtol=1e-2, atol=1e-2)


def test_batches_of_any_size_and_single_images_give_the_same_logits(converted):
    _, files = converted
    tflite = lite.LiteModel(files["int8"])
    x = images(5)
    one_by_one = np.concatenate([tflite(x[i:i + 1]) for i in range(len(x))])
    np.testing.assert_allclose(tflite(x), one_by_one, atol=1e-6)


def test_predict_on_a_split_keeps_its_order_and_agrees_with_keras(converted):
    model, files = converted
    x = images(10).round().astype(np.uint8)
    labels = np.arange(10) % 3
    split = data.examples_from_arrays(x, labels)
    reference = evaluate.predict(model, split, batch_size=4)
    predictions = lite.LiteModel(files["float32"]).predict(split, batch_size=4)
    np.testing.assert_array_equal(predictions.y_true, labels)
    # Two computations of the same logits (Keras, and the LiteRT kernels): compared on the images
    # whose two best logits lie further apart than the float32 tolerance of the first test.
    top2 = np.sort(reference.logits, axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 1e-3
    assert clear.sum() >= 5
    np.testing.assert_array_equal(predictions.y_pred[clear], reference.y_pred[clear])
    assert predictions.accuracy == reference.accuracy


def test_latency_and_throughput_are_positive(converted):
    _, files = converted
    tflite = lite.LiteModel(files["float32"])
    assert evaluate.latency_ms(tflite, repeats=5, warmup=1) > 0
    assert evaluate.throughput(tflite, batch_size=4, repeats=2) > 0
    assert tflite.size_mb == len(files["float32"]) / 2**20


def test_full_int8_is_at_least_three_times_smaller_for_a_mobilenet_v2():
    model, _ = models.gap_classifier("mobilenet_v2", 32, 5, None)
    files = lite.convert(model, images(8, size=32), formats=("float32", "int8"))
    assert len(files["float32"]) >= 3 * len(files["int8"])
    tflite = lite.LiteModel(files["int8"])
    assert tflite.input["dtype"] == np.float32 and tflite.output["dtype"] == np.float32  # raw pixels in


def test_full_int8_needs_representative_images():
    with pytest.raises(ValueError, match="representative"):
        lite.convert(small_model(), None, formats=("int8",))


def test_caffe_preprocessing_and_inference_mode_convert():
    keras.utils.set_random_seed(0)
    inner = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Conv2D(4, 3),
                              keras.layers.BatchNormalization(), keras.layers.ReLU()])
    inputs = keras.Input((16, 16, 3))
    x = models.CaffePreprocess(name="preprocess")(inputs)
    x = models.InferenceMode(inner, name="base")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(2)(x))
    files = lite.convert(model, images(8), formats=("float32", "int8"))
    x = images(4)
    np.testing.assert_allclose(lite.LiteModel(files["float32"])(x), keras_logits(model, x), rtol=1e-4, atol=1e-3)


def test_a_mixed_precision_model_is_converted_in_float32():
    keras.config.set_dtype_policy("mixed_float16")
    try:
        model = small_model()
    finally:
        keras.config.set_dtype_policy("float32")
    copy = lite.float32_copy(model)
    assert copy is not model
    assert {layer.dtype_policy.compute_dtype for layer in copy.layers} == {"float32"}
    x = images(4)
    np.testing.assert_allclose(keras_logits(copy, x), keras_logits(model, x), rtol=0.05, atol=0.05)
    files = lite.convert(model, images(8), formats=("int8",))
    assert lite.LiteModel(files["int8"])(x).shape == (4, 3)
    plain = small_model()
    assert lite.float32_copy(plain) is plain


def test_representative_images_are_seeded_training_images():
    x = np.arange(30 * 4 * 4 * 3, dtype=np.int64).reshape(30, 4, 4, 3) % 256
    split = data.examples_from_arrays(x.astype(np.uint8), np.zeros(30))
    first = lite.representative_images(split, 10, seed=1)
    assert first.shape == (10, 4, 4, 3) and first.dtype == np.float32
    np.testing.assert_array_equal(first, lite.representative_images(split, 10, seed=1))
    rows = {tuple(image.ravel()) for image in x.astype(np.float32)}
    assert all(tuple(image.ravel()) in rows for image in first)
    assert len(lite.representative_images(split, 100, seed=1)) == 30


def _source_record(make_settings, notebook, model, **values):
    settings = make_settings(notebook)
    record = results.new_record(settings, model, "frozen", title=model, **values)
    path = results.record_path(settings, model, "frozen")
    results.write_record(record, path)
    return path


def test_light_models_finds_saved_models_and_names_the_notebook_to_run(make_settings):
    _source_record(make_settings, "04_animals_mobilenetv2_vs_efficientnetv2", "mobilenet_v2",
                   model_file="mobilenet_v2__frozen.keras")
    path = _source_record(make_settings, "04_animals_mobilenetv2_vs_efficientnetv2", "efficientnetv2_b0")
    path.with_suffix(".keras").write_bytes(b"")  # a file, but the record does not name it
    kept = make_settings("04_animals_mobilenetv2_vs_efficientnetv2").record_dir / "mobilenet_v2__frozen.keras"
    kept.write_bytes(b"")
    settings = make_settings("07_light_models_on_device")
    found = {(s.notebook[:2], s.model): s for s in lite.light_models(settings)}
    assert set(found) == {("01", "mobilenet"), ("04", "mobilenet_v2"), ("04", "efficientnetv2_b0"),
                          ("05", "mobilenet_v2")}
    assert found[("04", "mobilenet_v2")].problem is None
    assert found[("04", "mobilenet_v2")].model_path == kept
    assert "SAVE_MODELS = True" in found[("04", "efficientnetv2_b0")].problem
    assert "notebooks/01_cifar10_resnet50_vs_mobilenet.ipynb" in found[("01", "mobilenet")].problem
    assert "smoke" in found[("05", "mobilenet_v2")].problem


def test_a_converted_model_gets_a_complete_record(make_settings, converted):
    _, files = converted
    fields = {f: 1 for f in results.RECORD_FIELDS if f not in ("notebook", "profile", "model", "strategy")}
    fields.update(dataset="cats vs dogs", optimizer="Adam", device="CPU", tensorflow="x", keras="x",
                  git_commit="abc", created_at="now", article="an article")
    settings = make_settings("05_cats_vs_dogs_feature_extraction")
    source_record = results.new_record(settings, "mobilenet_v2", "frozen", **fields)
    source = lite.Source("05_cats_vs_dogs_feature_extraction", "mobilenet_v2", source_record)
    settings = make_settings("07_light_models_on_device")
    tflite = lite.LiteModel(files["int8"])
    split = data.examples_from_arrays(images(6).astype(np.uint8), np.arange(6) % 3)
    predictions = tflite.predict(split)
    record = lite.new_record(settings, source, "int8", tflite, predictions, predictions,
                             model_file="x.tflite")
    path = lite.record_path(settings, source, "int8")
    assert path.name == "mobilenet_v2__tflite-int8__from-05.json"
    assert path.parent == settings.record_dir
    results.write_record(record, path)
    checked = results.check_record(path)
    assert checked["notebook"] == "07_light_models_on_device"
    assert checked["strategy"] == "tflite-int8"
    assert checked["article"] == "an article"
    assert checked["test_accuracy"] == predictions.accuracy
    assert checked["model_size_mb"] == pytest.approx(tflite.size_mb)
    assert checked["inference_ms_per_image"] > 0


def test_training_data_rebuilds_the_split_of_a_record(make_settings):
    settings = make_settings("05_cats_vs_dogs_feature_extraction", image_size=32, limit=10, batch_size=4)
    original = data.load_cats_vs_dogs(settings)
    record = results.new_record(settings, "mobilenet_v2", "frozen")
    rebuilt = lite.training_data(record)
    assert rebuilt.fingerprint == original.fingerprint
    assert rebuilt.image_size == 32
    first = next(iter(rebuilt.test.take(1)))[0]
    assert first.dtype == tf.uint8
