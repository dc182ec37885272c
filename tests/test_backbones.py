"""The backbone registry, and what each backbone's first convolution receives from raw 0-255
pixels when a model is built the notebooks' way: `keras.applications.<module>.preprocess_input`
on the symbolic input, then the base."""

import re
from types import SimpleNamespace

import keras
import numpy as np
import pytest

from helpers import backbones
from helpers.errors import CourseError, SettingsError

IMAGENET_MEAN_RGB = np.array([0.485, 0.456, 0.406])
IMAGENET_STD_RGB = np.array([0.229, 0.224, 0.225])
CAFFE_MEAN_BGR = np.array([103.939, 116.779, 123.68])

# What a black (0) and a white (255) pixel become before the backbone's first convolution,
# per channel, and Keras's own preprocessing function for that backbone's weights.
PINNED = {
    "mobilenet": ([-1, -1, -1], [1, 1, 1], keras.applications.mobilenet.preprocess_input),
    "mobilenet_v2": ([-1, -1, -1], [1, 1, 1], keras.applications.mobilenet_v2.preprocess_input),
    # caffe: RGB to BGR, minus the ImageNet channel means, no scaling
    "resnet50": (-CAFFE_MEAN_BGR, 255 - CAFFE_MEAN_BGR, keras.applications.resnet50.preprocess_input),
    # the base's own Rescaling(1/255) and Normalization: (x / 255 - mean) / std, RGB
    "efficientnetv2_b0": (
        -IMAGENET_MEAN_RGB / IMAGENET_STD_RGB,
        (1 - IMAGENET_MEAN_RGB) / IMAGENET_STD_RGB,
        lambda x: keras.applications.imagenet_utils.preprocess_input(x, mode="torch"),
    ),
}
# Where the preprocessing happens: `preprocess_input` in front of the base ("outside"), or the
# base's own first layers ("inside", where `preprocess_input` passes pixels through). Never both:
# that would preprocess twice.
WHERE = {"mobilenet": "outside", "mobilenet_v2": "outside", "resnet50": "outside",
         "efficientnetv2_b0": "inside"}
PREPROCESSING_LAYERS = (keras.layers.Rescaling, keras.layers.Normalization)

_BUILT: dict[str, SimpleNamespace] = {}


def classifier(name: str) -> SimpleNamespace:
    """A small classifier per backbone, built as notebooks 02 and 04 build theirs (random weights:
    preprocessing has no learned weights); `into_base` is the model up to the base's input."""
    if name not in _BUILT:
        spec = backbones.get(name)
        base = spec.constructor()(include_top=False, weights=None, input_shape=(32, 32, 3))
        inputs = keras.Input((32, 32, 3))
        preprocessed = spec.preprocess_input()(inputs)
        x = keras.layers.GlobalAveragePooling2D()(base(preprocessed, training=False))
        model = keras.Model(inputs, keras.layers.Dense(5)(x))
        _BUILT[name] = SimpleNamespace(model=model, base=base, into_base=keras.Model(inputs, preprocessed))
    return _BUILT[name]


def _preprocessing_inside(base: keras.Model) -> list[keras.layers.Layer]:
    """The base's leading preprocessing layers (those before its first real layer)."""
    found = []
    for layer in base.layers[1:]:
        if not isinstance(layer, PREPROCESSING_LAYERS):
            break
        found.append(layer)
    return found


def stem_input(c: SimpleNamespace, pixels: np.ndarray) -> np.ndarray:
    """What the base's first convolution (or padding) receives for these classifier inputs."""
    inside = _preprocessing_inside(c.base)
    x = c.into_base(pixels)
    if inside:
        x = keras.Model(c.base.input, inside[-1].output)(x)
    return np.asarray(x)


def _pixels(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 255, size=(2, 32, 32, 3)).astype("float32")
    x[0, 0, 0], x[0, 0, 1], x[0, 0, 2] = 0.0, 255.0, (255.0, 0.0, 0.0)  # black, white, red
    return x


def test_every_registry_backbone_has_a_pinned_input_range():
    assert set(PINNED) == set(backbones.BACKBONES) == set(WHERE)


@pytest.mark.parametrize(("name", "application", "module"), [
    ("resnet50", "ResNet50", "resnet50"), ("mobilenet", "MobileNet", "mobilenet"),
    ("mobilenet_v2", "MobileNetV2", "mobilenet_v2"), ("efficientnetv2_b0", "EfficientNetV2B0", "efficientnet_v2"),
])
def test_constructor_and_preprocess_input_are_keras_own(name, application, module):
    spec = backbones.get(name)
    assert spec.name == name
    assert spec.constructor() is getattr(keras.applications, application)
    assert spec.preprocess_input() is getattr(keras.applications, module).preprocess_input


@pytest.mark.parametrize(("name", "count", "last"), [
    ("resnet50", 16, "conv5_block3"), ("mobilenet", 13, "13"), ("mobilenet_v2", 17, "block_16"),
    ("efficientnetv2_b0", 21, "block6h"),
])
def test_block_patterns_group_the_architectures_own_blocks(name, count, last):
    """`block_pattern` as notebook 04 reads it: group 1 of a match names a layer's block."""
    base = classifier(name).base
    pattern = backbones.get(name).block_pattern
    blocks = {}
    for layer in base.layers:
        match = re.match(pattern, layer.name)
        if match:
            blocks.setdefault(match.group(1), []).append(layer.name)
    assert len(blocks) == count and list(blocks)[-1] == last
    assert re.match(pattern, base.layers[1].name) is None  # the stem is in no block
    if name == "mobilenet":
        assert set(blocks["12"]) == {"conv_pad_12", "conv_dw_12", "conv_dw_12_bn", "conv_dw_12_relu",
                                     "conv_pw_12", "conv_pw_12_bn", "conv_pw_12_relu"}


def test_imagenet_file_names_are_keras_cache_names():
    assert backbones.get("mobilenet_v2").weights_file(160).endswith("_1.0_160_no_top.h5")
    assert backbones.get("mobilenet_v2").weights_file(64).endswith("_1.0_224_no_top.h5")
    assert backbones.get("resnet50").weights_file(32) == "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
    # MobileNet v1 has weights for 128, 160, 192 and 224 pixels (not 96, which MobileNetV2 has)
    assert backbones.get("mobilenet").weights_file(128) == "mobilenet_1_0_128_tf_no_top.h5"
    assert backbones.get("mobilenet").weights_file(96) == "mobilenet_1_0_224_tf_no_top.h5"
    assert backbones.get("mobilenet_v2").weights_file(96).endswith("_1.0_96_no_top.h5")
    assert backbones.get("efficientnetv2_b0").weights_file(64) == "efficientnetv2-b0_notop.h5"


def test_unknown_backbone_lists_the_valid_names():
    with pytest.raises(SettingsError, match="Unknown model 'vgg16' in MODELS; choose from resnet50, mobilenet"):
        backbones.get("vgg16")
    with pytest.raises(CourseError) as error:
        backbones.get("vgg16")
    assert str(error.value).endswith(".") and "\n" not in str(error.value)


@pytest.mark.parametrize("name", sorted(PINNED))
def test_raw_pixels_reach_the_first_convolution_in_the_range_the_weights_expect(name):
    black, white, reference = PINNED[name]
    x = _pixels()
    seen = stem_input(classifier(name), x)
    np.testing.assert_allclose(seen[0, 0, 0], black, atol=1e-3)
    np.testing.assert_allclose(seen[0, 0, 1], white, atol=1e-3)
    # and every other pixel as Keras's own preprocessing for these weights; a tolerance, as the
    # graph inside the model and the reference compute it in different orders
    np.testing.assert_allclose(seen, reference(x.copy()), rtol=1e-5, atol=1e-3)
    low, high = np.minimum(black, white).min(), np.maximum(black, white).max()
    assert seen.min() >= low - 1e-3 and seen.max() <= high + 1e-3


def test_the_preprocessing_is_in_channel_order_of_the_weights():
    red = _pixels()[:1, :1, 2:3]  # one pure red pixel
    red = np.broadcast_to(red, (1, 32, 32, 3)).copy()
    caffe = stem_input(classifier("resnet50"), red)[0, 0, 0]
    np.testing.assert_allclose(caffe, [-103.939, -116.779, 255 - 123.68], atol=1e-3)  # BGR
    torch = stem_input(classifier("efficientnetv2_b0"), red)[0, 0, 0]
    np.testing.assert_allclose(torch, (np.array([1, 0, 0]) - IMAGENET_MEAN_RGB) / IMAGENET_STD_RGB,
                               atol=1e-3)  # RGB


@pytest.mark.parametrize("name", sorted(PINNED))
def test_preprocessing_happens_in_exactly_one_place(name):
    c = classifier(name)
    x = _pixels()
    outside = np.asarray(c.into_base(x))
    inside = _preprocessing_inside(c.base)
    if WHERE[name] == "outside":
        assert not inside and np.abs(outside - x).max() > 1.0  # preprocess_input changed the pixels
    else:
        assert [type(layer) for layer in inside] == [keras.layers.Rescaling, keras.layers.Normalization]
        np.testing.assert_array_equal(outside, x)  # preprocess_input passed them through


def test_keras_efficientnetv2_preprocess_input_is_a_pass_through():
    # the reason nothing needs to go in front of EfficientNetV2's base
    x = _pixels()
    np.testing.assert_array_equal(backbones.get("efficientnetv2_b0").preprocess_input()(x.copy()), x)


@pytest.mark.parametrize("name", sorted(PINNED))
def test_pixels_divided_by_255_squeeze_the_input_into_a_sliver(name):
    c = classifier(name)
    x = _pixels()
    raw, scaled = stem_input(c, x), stem_input(c, x / 255.0)
    spread_raw = np.ptp(raw, axis=(0, 1, 2))
    spread_scaled = np.ptp(scaled, axis=(0, 1, 2))
    np.testing.assert_allclose(spread_scaled, spread_raw / 255, rtol=1e-3)
    # nothing fails: the model silently gets an almost constant image
    assert np.all(np.isfinite(np.asarray(c.model(x / 255.0))))


def test_minimum_sizes_are_what_the_constructors_accept():
    for spec in backbones.BACKBONES.values():
        assert spec.min_size == 32, spec.name
    with pytest.raises(ValueError):  # Keras itself refuses below 32 pixels
        keras.applications.ResNet50(include_top=False, weights=None, input_shape=(16, 16, 3))
