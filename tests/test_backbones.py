"""What each backbone's first convolution receives from raw 0-255 pixels, the check that
stops pixels already divided by 255, and the animal folder of notebook 04."""

import sys
import types

import keras
import numpy as np
import pytest
from conftest import jpeg_bytes

from helpers import data, models
from helpers.config import CourseError
from helpers.data import DataError

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
# Where the preprocessing lives: a layer of the classifier in front of the base ("outside"),
# or the base's own first layers ("inside"). Never both: that would preprocess twice.
WHERE = {"mobilenet": "outside", "mobilenet_v2": "outside", "resnet50": "outside",
         "efficientnetv2_b0": "inside"}
PREPROCESSING_LAYERS = (keras.layers.Rescaling, keras.layers.Normalization, models.CaffePreprocess)

_BUILT: dict[str, models.Classifier] = {}


def classifier(name: str) -> models.Classifier:
    """A small classifier per backbone, built once (preprocessing has no learned weights)."""
    if name not in _BUILT:
        _BUILT[name] = models.build_classifier(name, 32, 5, weights=None)
    return _BUILT[name]


def _preprocessing_inside(base: keras.Model) -> list[keras.layers.Layer]:
    """The base's leading preprocessing layers (those before its first real layer)."""
    found = []
    for layer in base.layers[1:]:
        if not isinstance(layer, PREPROCESSING_LAYERS):
            break
        found.append(layer)
    return found


def stem_input(c: models.Classifier, pixels: np.ndarray) -> np.ndarray:
    """What the base's first convolution (or padding) receives for these classifier inputs."""
    into_base = keras.Model(c.model.input, c.model.get_layer(f"{c.backbone}_base").input)
    inside = _preprocessing_inside(c.base)
    x = into_base(pixels)
    if inside:
        x = keras.Model(c.base.input, inside[-1].output)(x)
    return np.asarray(x)


def _pixels(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 255, size=(2, 32, 32, 3)).astype("float32")
    x[0, 0, 0], x[0, 0, 1], x[0, 0, 2] = 0.0, 255.0, (255.0, 0.0, 0.0)  # black, white, red
    return x


def test_every_registry_backbone_has_a_pinned_input_range():
    assert set(PINNED) == set(models.BACKBONES) == set(WHERE)


@pytest.mark.parametrize("name", sorted(PINNED))
def test_raw_pixels_reach_the_first_convolution_in_the_range_the_weights_expect(name):
    black, white, reference = PINNED[name]
    x = _pixels()
    seen = stem_input(classifier(name), x)
    np.testing.assert_allclose(seen[0, 0, 0], black, atol=1e-3)
    np.testing.assert_allclose(seen[0, 0, 1], white, atol=1e-3)
    # and every other pixel exactly as Keras's own preprocessing for these weights
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
    outside = [layer for layer in c.model.layers if isinstance(layer, PREPROCESSING_LAYERS)]
    inside = _preprocessing_inside(c.base)
    if WHERE[name] == "outside":
        assert len(outside) == 1 and outside[0].name == "preprocess" and not inside
    else:
        assert not outside and [type(layer) for layer in inside] == [keras.layers.Rescaling,
                                                                      keras.layers.Normalization]
        assert models.backbone(name).preprocess_layer() is None


def test_keras_efficientnetv2_preprocess_input_is_a_pass_through():
    # the reason the classifier adds nothing in front of EfficientNetV2's base
    x = _pixels()
    np.testing.assert_array_equal(keras.applications.efficientnet_v2.preprocess_input(x.copy()), x)


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


# ------------------------------------------------------------ the raw-pixel check


def test_check_raw_pixels_passes_what_the_course_pipelines_produce(tmp_path):
    images = np.stack([np.full((8, 8, 3), 40, np.uint8), np.full((8, 8, 3), 230, np.uint8)])
    examples = data.examples_from_arrays(images, np.array([0, 1]))
    batch, _ = next(iter(data.batches(examples, 2)))
    assert models.check_raw_pixels(batch) is None
    assert models.check_raw_pixels(images) is None


@pytest.mark.parametrize("scale", ["divided by 255", "mapped to [-1, 1]"])
def test_check_raw_pixels_stops_scaled_batches_with_one_sentence(scale):
    x = _pixels() / 255.0
    if scale == "mapped to [-1, 1]":
        x = x * 2 - 1
    with pytest.raises(CourseError) as error:
        models.check_raw_pixels(x)
    message = str(error.value)
    assert "looks already divided by 255" in message and "expect raw 0-255 pixels" in message
    assert message.endswith(".") and ". " not in message and "\n" not in message


# --------------------------------------------------------------- the animal folder

ANIMALS = "04_animals_mobilenetv2_vs_efficientnetv2"
FIVE = ("cat", "cow", "dog", "elephant", "horse")


def _pixel_set(examples) -> set[bytes]:
    return {image.numpy().tobytes() for image, _ in examples}


def _labels(examples) -> list[int]:
    return [int(label) for _, label in examples]


def test_single_folder_is_split_with_the_seed_without_overlap_and_every_class_everywhere(
        make_settings, tmp_path, class_folder):
    root = class_folder(tmp_path / "animals", classes=FIVE, per_class=10)
    settings = make_settings(ANIMALS, data_dir=root, batch_size=4, image_size=32)
    d = data.load_animals(settings)
    assert d.class_names == list(FIVE)
    assert [d.size(s) for s in ("train", "val", "test")] == [40, 5, 5]  # 80 / 10 / 10 per class
    for split in ("train", "val", "test"):
        assert sorted(set(_labels(getattr(d, split)))) == list(range(5))
        assert all(d.counts[split] > 0)
    train, val, test = _pixel_set(d.train), _pixel_set(d.val), _pixel_set(d.test)
    assert len(train) + len(val) + len(test) == 50  # 50 distinct images, each in one split
    assert not (train & val) and not (train & test) and not (val & test)
    again = data.load_animals(settings)
    assert again.fingerprint == d.fingerprint and _pixel_set(again.test) == test
    other = data.load_animals(make_settings(ANIMALS, data_dir=root, batch_size=4, image_size=32, seed=7))
    assert other.fingerprint != d.fingerprint and _pixel_set(other.test) != test


@pytest.mark.parametrize("val_name", ["val", "valid", "validation"])
def test_presplit_folders_are_used_as_they_are(make_settings, tmp_path, class_folder, val_name):
    root = tmp_path / "pre"
    class_folder(root / "train", classes=FIVE, per_class=4)
    class_folder(root / val_name, classes=FIVE, per_class=2)
    class_folder(root / "test", classes=FIVE, per_class=3)
    d = data.load_animals(make_settings(ANIMALS, data_dir=root, batch_size=4, image_size=32))
    assert (d.size("train"), d.size("val"), d.size("test")) == (20, 10, 15)
    scan = data.scan_folder(root / "test")
    assert _pixel_set(d.test) == _pixel_set(data.examples_from_files(scan.paths, scan.labels, 32))
    assert sorted(_labels(d.test)) == sorted(scan.labels.tolist())


def test_presplit_folder_missing_a_class_says_so(make_settings, tmp_path, class_folder):
    root = tmp_path / "pre"
    class_folder(root / "train", classes=FIVE, per_class=4)
    class_folder(root / "val", classes=FIVE, per_class=2)
    class_folder(root / "test", classes=FIVE[:4], per_class=2)  # no horse/
    with pytest.raises(DataError, match=r"test has classes .*, but .* were found beside it; every "
                                        r"split needs the same class folders"):
        data.load_animals(make_settings(ANIMALS, data_dir=root, batch_size=4, image_size=32))


@pytest.mark.parametrize("content", ["nothing", "only broken files"])
def test_an_empty_class_folder_is_named(make_settings, tmp_path, class_folder, content):
    root = class_folder(tmp_path / "animals", classes=FIVE[:4], per_class=5)
    horse = root / "horse"
    horse.mkdir()
    if content == "only broken files":
        whole = jpeg_bytes()
        (horse / "cut.jpg").write_bytes(whole[: len(whole) // 3])
        (horse / "zero.jpg").write_bytes(b"")
        (horse / ".hidden.jpg").write_bytes(whole)
    with pytest.raises(DataError, match=r"Class folder .*horse has no readable images; add images to "
                                        r"it or remove it"):
        data.load_animals(make_settings(ANIMALS, data_dir=root, batch_size=4, image_size=32))


def test_without_data_the_message_names_the_layout_and_the_kaggle_option(make_settings, tmp_path,
                                                                        monkeypatch):
    monkeypatch.setenv("COURSE_ROOT", str(tmp_path))
    with pytest.raises(DataError) as error:
        data.load_animals(make_settings(ANIMALS, profile="full", batch_size=4))
    message = str(error.value)
    assert str(tmp_path / "data" / "animals") in message
    assert data.ANIMALS_LAYOUT in message and "KAGGLE_DATASET" in message


def test_a_local_folder_wins_over_a_kaggle_download(make_settings, tmp_path, class_folder, monkeypatch):
    monkeypatch.setenv("COURSE_ROOT", str(tmp_path))
    class_folder(tmp_path / "data" / "animals", classes=FIVE, per_class=10)
    monkeypatch.setattr(data, "download_kaggle", lambda dataset: pytest.fail("must not download"))
    d = data.load_animals(make_settings(ANIMALS, profile="full", batch_size=4, image_size=32),
                          kaggle_dataset="someone/animals")
    assert d.class_names == list(FIVE)


def test_kaggle_download_unwraps_archive_folders_and_never_shows_the_key(
        make_settings, tmp_path, class_folder, monkeypatch, capsys):
    monkeypatch.setenv("COURSE_ROOT", str(tmp_path / "course"))
    monkeypatch.setenv("KAGGLE_USERNAME", "user")
    monkeypatch.setenv("KAGGLE_KEY", "secret-key-123")
    download = tmp_path / "kagglehub" / "someone" / "animals" / "versions" / "1"
    class_folder(download / "Animals" / "dataset", classes=FIVE, per_class=10)  # two wrapper folders
    asked = []
    fake = types.ModuleType("kagglehub")
    fake.dataset_download = lambda dataset: asked.append(dataset) or str(download)
    monkeypatch.setitem(sys.modules, "kagglehub", fake)
    monkeypatch.setattr(data, "can_download", lambda url: True)
    d = data.load_animals(make_settings(ANIMALS, profile="full", batch_size=4, image_size=32),
                          kaggle_dataset="someone/animals")
    assert asked == ["someone/animals"]
    assert d.class_names == list(FIVE) and d.size("test") == 5
    shown = d.report() + capsys.readouterr().out
    assert "secret-key-123" not in shown
