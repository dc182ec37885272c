"""A saved model reloads and predicts exactly as the trained one: on the smoke profile, the
way notebook 05 trains, and for ResNet50 with the course's own layers inside."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from helpers import config, data, experiment, models, predict, results


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Notebook 05 on the smoke profile, tiny: a frozen MobileNetV2 with the article's
    augmentation and dropout, one epoch, finished by a `Run`. Its random weights get BatchNorm
    statistics from the training images (as the stand-in weights do, in a fraction of the
    time): without them a random MobileNetV2's features at 32x32 are ~1e-13, all logits ~0."""
    folder = tmp_path_factory.mktemp("results")
    settings = config.resolve("05_cats_vs_dogs_feature_extraction", profile="smoke", limit=24,
                              image_size=32, batch_size=8, epochs=1, results_dir=folder)
    cats_dogs = data.load_cats_vs_dogs(settings)
    keras.utils.set_random_seed(settings.seed)
    base = models.build_base("mobilenet_v2", settings.image_size, weights=None)
    images, _ = data.take_images(cats_dogs.train, 24)
    models.reset_batchnorm_statistics(base, base, images.astype(np.float32) / 127.5 - 1)
    base.trainable = False
    inputs = keras.Input((settings.image_size, settings.image_size, 3))
    x = keras.layers.RandomFlip("horizontal")(inputs)
    x = keras.layers.RandomRotation(0.2)(x)
    x = models.preprocessing("mobilenet_v2")(x)
    x = models.InferenceMode(base, name="base")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(0.2)(x)
    outputs = keras.layers.Dense(1, name="logits")(x)
    model = keras.Model(inputs, outputs)
    model.compile(keras.optimizers.Adam(1e-4), keras.losses.BinaryCrossentropy(from_logits=True),
                  metrics=[keras.metrics.BinaryAccuracy(threshold=0.0)])
    run = experiment.Run(settings, "mobilenet_v2", "frozen")
    model.fit(data.batches(cats_dogs.train, 8, shuffle_seed=settings.seed),
              validation_data=data.batches(cats_dogs.val, 8), epochs=settings.epochs_for("mobilenet_v2"),
              callbacks=run.callbacks("head"), shuffle=False, verbose=0)
    record = run.finish(model, cats_dogs)
    return settings, cats_dogs, model, record


def test_the_saved_model_is_beside_its_record(trained):
    settings, cats_dogs, _, record = trained
    record_file = results.record_path(settings, "mobilenet_v2", "frozen")
    assert json.loads(record_file.read_text())["model_file"] == record["model_file"]
    assert (record_file.parent / record["model_file"]).is_file()
    assert record["model_file"] == record_file.with_suffix(".keras").name
    assert record["class_names"] == cats_dogs.class_names


def test_reloaded_model_predicts_identically_on_the_test_images(trained):
    settings, cats_dogs, model, record = trained
    images, _ = data.take_images(cats_dogs.test, 64)
    images = images.astype(np.float32)
    reloaded = keras.models.load_model(settings.record_dir / record["model_file"])
    assert np.std(model.predict(images, verbose=0)) > 0.01  # logits that tell images apart
    np.testing.assert_allclose(reloaded.predict(images, verbose=0), model.predict(images, verbose=0),
                               rtol=1e-6, atol=1e-6)
    assert [layer.name for layer in reloaded.layers] == [layer.name for layer in model.layers]


def test_predict_paths_on_written_test_images_agrees_with_the_trained_model(trained, tmp_path):
    settings, cats_dogs, model, record = trained
    folder = predict.write_examples(cats_dogs.test, tmp_path / "mine", 12, cats_dogs.class_names)
    loaded, class_names = predict.load_model(settings.record_dir / record["model_file"])
    assert class_names == cats_dogs.class_names
    table = predict.predict_paths(loaded, class_names, [folder])
    assert len(table) == 12 and (table["problem"] == "").all()
    assert list(table["file"]) == sorted(p.name for p in folder.iterdir())  # shown inside the folder given
    files = [folder / f for f in table["file"]]
    images, _ = predict.load_images(files, settings.image_size)
    p_dogs = 1 / (1 + np.exp(-model.predict(images.astype(np.float32), verbose=0)[:, 0]))
    expected = np.where(p_dogs > 0.5, "dogs", "cats")
    assert np.std(p_dogs) > 0.005
    # Two computations of the same logits (batches of different sizes): an image within the
    # tolerance below of p = 0.5 could go either way on another processor, so it is not compared.
    clear = np.abs(p_dogs - 0.5) > 1e-5
    assert clear.sum() >= 10
    np.testing.assert_array_equal(table["prediction"][clear], expected[clear])
    np.testing.assert_allclose(table["probability"], np.maximum(p_dogs, 1 - p_dogs), atol=1e-5)
    # the files hold the split's images, in its order, little changed by JPEG
    originals, labels = data.take_images(cats_dogs.test, 12)
    order = [int(f.stem.rsplit("_", 1)[1]) for f in files]
    assert [f.stem.rsplit("_", 1)[0] for f in files] == [class_names[k] for k in labels[order]]
    assert np.abs(images.astype(int) - originals[order].astype(int)).mean() < 5


def test_resnet50_with_the_course_layers_saves_and_reloads_identically(tmp_path):
    model, _ = models.gap_classifier("resnet50", 32, 3, weights=None)
    assert isinstance(model.get_layer("preprocess"), models.CaffePreprocess)
    assert isinstance(model.get_layer("base"), models.InferenceMode)
    path = tmp_path / "resnet50__frozen.keras"
    model.save(path)
    reloaded = keras.models.load_model(path)
    assert isinstance(reloaded.get_layer("preprocess"), models.CaffePreprocess)
    assert isinstance(reloaded.get_layer("base"), models.InferenceMode)
    images = tf.random.uniform((4, 32, 32, 3), 0, 255, seed=1).numpy()
    np.testing.assert_allclose(reloaded.predict(images, verbose=0), model.predict(images, verbose=0),
                               rtol=1e-6, atol=1e-6)
