"""Models: preprocessing inside the model, augmentation in training only, in-model
upsampling, and the fine-tune-from-layer-100 trainable set of notebook 02."""

import keras
import numpy as np
import pytest

from helpers import finetune, models


def _pixels(count=4, size=32, seed=0):
    """Raw 0-255 float pixels with structure (so flips and rotations change them)."""
    rng = np.random.default_rng(seed)
    images = rng.uniform(0, 255, size=(count, size, size, 3)).astype("float32")
    images[:, :, : size // 2] *= 0.3  # the left half darker: a flip is visible
    return images


# ---------------------------------------------------------------- preprocessing


def test_caffe_layer_equals_resnet50_preprocess_input():
    x = _pixels()
    ours = np.asarray(models.CaffePreprocess()(x))
    keras_version = keras.applications.resnet50.preprocess_input(x.copy())
    np.testing.assert_allclose(ours, keras_version, rtol=1e-6, atol=1e-4)
    # BGR order, ImageNet means subtracted: a pure red pixel lands in the last channel
    red = np.zeros((1, 1, 1, 3), "float32")
    red[..., 0] = 255.0
    np.testing.assert_allclose(np.asarray(models.CaffePreprocess()(red))[0, 0, 0],
                               [-103.939, -116.779, 255.0 - 123.68], atol=1e-4)


def test_tf_layer_equals_mobilenet_preprocess_input():
    x = _pixels()
    ours = np.asarray(models.backbone("mobilenet").preprocess_layer()(x))
    np.testing.assert_allclose(ours, keras.applications.mobilenet.preprocess_input(x.copy()),
                               rtol=1e-6, atol=1e-5)
    assert ours.min() >= -1.0 and ours.max() <= 1.0


def test_resnet50_classifier_preprocesses_raw_pixels_itself():
    c = models.build_classifier("resnet50", 32, 10, weights=None, pooling="flatten")
    assert isinstance(c.model.get_layer("preprocess"), models.CaffePreprocess)
    x = _pixels(2)
    expected = c.base(keras.applications.resnet50.preprocess_input(x.copy()), training=False)
    np.testing.assert_allclose(np.asarray(c.features(x, training=False)),
                               np.asarray(expected).reshape(2, -1), rtol=1e-4, atol=1e-4)


# ----------------------------------------------------------------- augmentation

ARTICLE_01_AUGMENTATION = {"flip": "horizontal", "rotation": 2 / 360, "zoom": 0.1}


def _pair(name="mobilenet", size=32, **build):
    """The same classifier with and without augmentation, sharing every weight."""
    augmented = models.build_classifier(name, size, 10, weights=None,
                                        augmentation=ARTICLE_01_AUGMENTATION, **build)
    plain = models.build_classifier(name, size, 10, weights=None, **build)
    plain.base.set_weights(augmented.base.get_weights())
    plain.head.set_weights(augmented.head.get_weights())
    return augmented, plain


def test_augmentation_layers_are_in_the_model_and_change_training_images_only():
    augmented, plain = _pair()
    names = [layer.name for layer in augmented.model.layers]
    assert names[1:4] == ["random_flip", "random_rotation", "random_zoom"]
    assert augmented.augmented and not plain.augmented
    x = _pixels(8)
    augment = keras.Sequential(augmented.model.layers[1:4])
    keras.utils.set_random_seed(3)
    changed = np.asarray(augment(x, training=True))
    assert changed.shape == x.shape
    assert np.abs(changed - x).max() > 1.0  # training mode: images are augmented
    np.testing.assert_array_equal(np.asarray(augment(x, training=False)), x)  # inference: untouched


def test_augmented_model_in_inference_mode_equals_the_same_weights_without_augmentation():
    # a frozen base and no dropout in the head: the only thing that differs between
    # training and inference mode is the augmentation
    augmented, plain = _pair("resnet50", pooling="flatten", hidden=((64, 0.0),))
    augmented.base.trainable = plain.base.trainable = False
    x = _pixels(8)
    inference = np.asarray(augmented.model(x, training=False))
    np.testing.assert_array_equal(inference, np.asarray(plain.model(x, training=False)))
    # without augmentation the two modes agree ...
    np.testing.assert_allclose(np.asarray(plain.model(x, training=True)), inference,
                               rtol=1e-5, atol=1e-5)
    # ... with it, training mode sees different images
    keras.utils.set_random_seed(3)
    trained = np.asarray(augmented.model(x, training=True))
    assert np.abs(trained - inference).max() > 1e-3 * np.abs(inference).max()


def test_article_01_head_is_flatten_and_dense_1024_512_256_128_with_dropout():
    c = models.build_classifier(
        "resnet50", 32, 10, weights=None, pooling="flatten",
        hidden=((1024, 0.0), (512, 0.4), (256, 0.3), (128, 0.2)),
    )
    assert c.features.output_shape == (None, 2048)  # 1x1x2048 flattened at 32x32
    dense = [layer.units for layer in c.head.layers if isinstance(layer, keras.layers.Dense)]
    drops = [layer.rate for layer in c.head.layers if isinstance(layer, keras.layers.Dropout)]
    assert dense == [1024, 512, 256, 128, 10] and drops == [0.4, 0.3, 0.2]
    assert c.model.output_shape == (None, 10)


# ------------------------------------------------------------------- upsampling


def test_article_02_upsampling_takes_32x32_to_224x224():
    c = models.build_classifier("resnet50", 224, 10, weights=None, upsample=7)
    assert c.model.input_shape == (None, 32, 32, 3)
    assert c.model.get_layer("upsample").output.shape == (None, 224, 224, 3)
    assert c.base.input_shape == (None, 224, 224, 3)
    assert c.features.output_shape == (None, 2048)  # global average pooling
    assert c.model.output_shape == (None, 10)


def test_upsampling_repeats_pixels_before_the_backbone_sees_them():
    c = models.build_classifier("resnet50", 64, 10, weights=None, upsample=2)
    assert c.model.input_shape == (None, 32, 32, 3) and c.model.output_shape == (None, 10)
    x = _pixels(2)
    big = np.repeat(np.repeat(x, 2, axis=1), 2, axis=2)  # nearest neighbour, x2
    pooled = np.asarray(c.base(keras.applications.resnet50.preprocess_input(big), training=False))
    np.testing.assert_allclose(np.asarray(c.features(x, training=False)),
                               pooled.mean(axis=(1, 2)), rtol=1e-4, atol=1e-4)
    assert c.model(x, training=False).shape == (2, 10)


# ------------------------------------------------------------ fine-tune at 100


@pytest.fixture(scope="module")
def upsampling_resnet():
    return models.build_classifier("resnet50", 64, 10, weights=None, upsample=2)


def test_fine_tune_from_layer_100_trains_exactly_layers_100_onwards(upsampling_resnet):
    c = upsampling_resnet
    base = c.base
    assert len(base.layers) == 175
    names = finetune.apply_strategy(base, "resnet50", "from:100")
    assert names == [layer.name for layer in base.layers[100:]]
    assert names[0] == "conv4_block2_3_bn"
    assert not any(layer.trainable for layer in base.layers[:100])
    assert all(layer.trainable for layer in base.layers[100:])
    assert finetune.trainable_layer_names(base) == names
    # what the optimizer updates: the weights of layers 100+ and the head, nothing earlier
    expected = {id(w) for layer in base.layers[100:] for w in layer.trainable_weights}
    expected |= {id(w) for w in c.head.trainable_weights}
    assert {id(w) for w in c.model.trainable_weights} == expected
    early = {id(w) for layer in base.layers[:100] for w in layer.weights}
    assert early and not early & {id(w) for w in c.model.trainable_weights}
    # BatchNorm moving statistics never train, even in unfrozen layers
    moving = [w for layer in base.layers[100:] if isinstance(layer, keras.layers.BatchNormalization)
              for w in (layer.moving_mean, layer.moving_variance)]
    assert moving and not {id(w) for w in moving} & expected


def test_the_articles_unapplied_fine_tune_at_would_train_every_layer(upsampling_resnet):
    c = upsampling_resnet
    finetune.apply_strategy(c.base, "resnet50", "from:100")
    partial = finetune.trainable_params(c.model)
    finetune.apply_strategy(c.base, "resnet50", "all")  # what base_model.trainable = True does
    everything = finetune.trainable_params(c.model)
    finetune.apply_strategy(c.base, "resnet50", "frozen")
    head_only = finetune.trainable_params(c.model)
    assert head_only == 2048 * 10 + 10
    assert head_only < partial < everything
    assert len(finetune.trainable_layer_names(c.base)) == 0


# --------------------------------------------------------------- stand-in weights


def test_first_run_on_a_fresh_machine_starts_like_later_runs(make_settings, tmp_path, monkeypatch):
    """Making the stand-in weights draws random numbers; the seeded head must not notice."""
    from types import SimpleNamespace

    import tensorflow as tf

    from helpers import experiment

    made = []

    def quick_standin(spec, path, images, epochs, verbose):  # the real one trains for a minute
        keras.utils.set_random_seed(1234)
        base = spec.constructor(include_top=False, weights=None, input_shape=(64, 64, 3))
        base.save_weights(path)
        made.append(path)

    monkeypatch.setenv("COURSE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(models, "_train_standin", quick_standin)
    settings = make_settings(image_size=64, weights="standin")
    device = SimpleNamespace(strategy=tf.distribute.get_strategy())
    split = SimpleNamespace(num_classes=3)

    first = experiment.new_classifier(settings, split, device, "mobilenet_v2")
    assert len(made) == 1  # the stand-in was made during the first build
    second = experiment.new_classifier(settings, split, device, "mobilenet_v2")
    assert len(made) == 1
    for a, b in zip(first.head.get_weights(), second.head.get_weights()):
        np.testing.assert_array_equal(a, b)
