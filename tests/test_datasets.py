"""Data: seeded splits without overlap and their fingerprints, the pipelines' per-epoch orders, the
layouts of notebook 02's folder, the sources of notebook 01 in their order, CIFAR-10 in its official
formats, tensorflow_datasets through mock data, and the one-sentence errors of each."""

import http.server
import sys
import tarfile
import threading
import types
import urllib.request
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import write_cifar_batches, write_image_tree, write_jpeg

from helpers import datasets, pipelines, samples, sources, splits
from helpers.errors import DataError, SettingsError
from helpers.folders import scan_folder
from helpers.sources import CATS_DOGS_CLASSES, FLOWER_CLASSES

CATS_DOGS = "01_cats_vs_dogs_feature_extraction"
ANIMALS = "02_animals_mobilenetv2_vs_efficientnetv2"
UPSAMPLING = "03_cifar10_resnet50_upsampling_finetune"
FLOWERS = "04_tf_flowers_unfreezing_strategies"
CIFAR_BOTH = "05_cifar10_resnet50_vs_mobilenet"
FIVE = ("cat", "cow", "dog", "elephant", "horse")
FALLBACK = "fallback: the public 2,000-image subset, not the article's 8,000"
SPLITS = ("train", "val", "test")


def _pixel_set(examples) -> set[bytes]:
    return {image.numpy().tobytes() for image, _ in examples}


def _labels(examples) -> list[int]:
    return [int(label) for _, label in examples]


def _sizes(d) -> tuple[int, int, int]:
    return d.size("train"), d.size("val"), d.size("test")


def _counts(d, split) -> list[int]:
    return np.bincount(d.labels[split], minlength=len(d.class_names)).tolist()


def _order(batched) -> list[int]:
    """The labels of one pass over a batched split, in the order read."""
    return np.concatenate([y.numpy() for _, y in batched]).tolist()


def _numbered(n=24) -> tf.data.Dataset:
    """n examples whose label is their index (and whose single feature is too)."""
    return pipelines.examples_from_arrays(np.arange(n, dtype=np.float32).reshape(n, 1), np.arange(n))


# -------------------------------------------------------------------- splits


def test_stratified_split_is_seeded_disjoint_and_covers_every_class():
    labels = np.repeat(np.arange(5), [30, 12, 7, 3, 50])
    parts = splits.stratified(labels, (0.8, 0.1, 0.1), seed=3)
    again = splits.stratified(labels, (0.8, 0.1, 0.1), seed=3)
    other = splits.stratified(labels, (0.8, 0.1, 0.1), seed=4)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again))
    assert not all(np.array_equal(a, b) for a, b in zip(parts, other))
    joined = np.concatenate(parts)
    assert len(joined) == len(labels) == len(set(joined.tolist()))
    for part in parts:
        assert set(labels[part]) == set(range(5))  # the class of 3 images still reaches every split
    # round-robin order: the first five of a split hold one image of each class
    assert sorted(labels[parts[0][:5]]) == [0, 1, 2, 3, 4]


def test_stratified_split_per_class_takes_exact_counts_and_leaves_the_rest():
    labels = np.repeat([0, 1, 2], [50, 40, 12])
    train, val = splits.stratified(labels, None, seed=1, per_class=(10, 4))
    assert list(np.bincount(labels[train])) == [10, 10, 10] and list(np.bincount(labels[val])) == [4, 4, 2]
    assert not set(train) & set(val)
    assert sorted(labels[train[:3]]) == [0, 1, 2]  # round-robin: a LIMIT stays balanced
    again = splits.stratified(labels, None, seed=1, per_class=(10, 4))
    assert np.array_equal(train, again[0]) and np.array_equal(val, again[1])


def test_limited_keeps_the_first_indices_and_a_balanced_part():
    labels = np.repeat([0, 1], [40, 8])
    train, = splits.stratified(labels, (1.0,), seed=0)
    assert np.array_equal(splits.limited(train, None), train)
    assert np.array_equal(splits.limited(train, 6), train[:6])
    assert list(np.bincount(labels[splits.limited(train, 6)])) == [3, 3]
    assert splits.describe((0.8, 0.1, 0.1), 42) == "split 80/10/10 (stratified, seed 42)"


def test_fingerprints_are_equal_for_equal_splits_and_change_when_an_image_moves():
    a = splits.fingerprint([1, 2, 3], [4], [5])
    assert a == splits.fingerprint([1, 2, 3], [4], [5])
    assert a != splits.fingerprint([1, 2, 4], [3], [5])  # two images swapped between splits
    assert a != splits.fingerprint([1, 2], [3, 4], [5])  # one image moved to the next split
    assert a != splits.fingerprint([1, 2, 3], [4], [6])
    assert len(a) == 16


# ------------------------------------------------------------------ pipelines


def test_a_shuffled_split_reads_pass_n_in_an_order_fixed_by_the_seed_and_n():
    first = pipelines.batches(_numbered(), 5, shuffle_seed=3)
    passes = [_order(first) for _ in range(3)]
    assert all(sorted(p) == list(range(24)) for p in passes)  # every example once per pass
    assert len({tuple(p) for p in passes}) == 3  # reshuffled every pass
    again = pipelines.batches(_numbered(), 5, shuffle_seed=3)
    assert [_order(again) for _ in range(3)] == passes  # a new pipeline: the same orders
    other = pipelines.batches(_numbered(), 5, shuffle_seed=4)
    assert _order(other) != passes[0]
    fixed = pipelines.batches(_numbered(), 5)
    assert _order(fixed) == _order(fixed) == list(range(24))  # unshuffled: in the split's order


def test_the_order_of_pass_n_does_not_depend_on_the_global_seed_when_the_dataset_is_made():
    orders = []
    for global_seed in (1, 999):
        tf.random.set_seed(global_seed)
        batched = pipelines.batches(_numbered(), 5, shuffle_seed=3)
        orders.append([_order(batched) for _ in range(3)])
    assert orders[0] == orders[1]


def test_making_a_shuffled_pipeline_leaves_the_global_seed_as_it_is():
    tf.random.set_seed(7)
    expected = tf.random.uniform([4]).numpy()
    tf.random.set_seed(7)
    _order(pipelines.batches(_numbered(), 5, shuffle_seed=3))
    # the same op, same seed state: equal bit for bit unless the pipeline reset the global seed
    assert np.array_equal(tf.random.uniform([4]).numpy(), expected)


def test_seed_zero_shuffles_like_any_other_seed():
    """SEED = 0 is a valid seed: its op seed of pass 0 is 0 too, and TensorFlow treats the pair
    (0, 0) apart (a graph seed of 0 made the first pass fail)."""
    passes = pipelines.batches(_numbered(), 5, shuffle_seed=0)
    first, second = _order(passes), _order(passes)
    assert sorted(first) == sorted(second) == list(range(24)) and first != second


class _Recorder(keras.Model):
    """Records the labels of every batch `fit` gives it (run eagerly), and learns nothing."""

    def __init__(self):
        super().__init__()
        self.dense = keras.layers.Dense(1)
        self.seen: list[int] = []
        self.epochs: dict[int, list[int]] = {}

    def call(self, x):
        return self.dense(x)

    def train_step(self, data):
        _, y = data
        self.seen += np.asarray(y).tolist()
        return {"examples": float(len(y))}


class _PerEpoch(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        self.model.epochs[epoch], self.model.seen = self.model.seen, []


def test_epoch_order_makes_epoch_n_of_fit_read_order_n_whatever_ran_before():
    reference = pipelines.batches(_numbered(), 5, shuffle_seed=11)
    orders = [_order(reference) for _ in range(4)]

    def fit(callbacks):
        batched = pipelines.batches(_numbered(), 5, shuffle_seed=11)
        for _ in range(2):  # two passes before fit: its own count is at 2
            _order(batched)
        model = _Recorder()
        model(np.zeros((1, 1), np.float32))
        model.compile(optimizer="sgd", loss="mse", run_eagerly=True)
        model.fit(batched, epochs=3, initial_epoch=1, callbacks=[*callbacks, _PerEpoch()], verbose=0)
        return model.epochs, batched

    epochs, batched = fit([pipelines.EpochOrder()])
    assert epochs == {1: orders[1], 2: orders[2]}  # as an uninterrupted fit from epoch 0 read them
    without, _ = fit([])
    assert without[1] != orders[1]  # without it, fit reads the split's own next pass (order 2)
    # after fit, the split counts its own passes again: two passes differ
    assert _order(batched) != _order(batched)


def test_batches_are_float32_images_and_int32_labels_and_count_counts_unknown_cardinality():
    images = np.arange(6 * 2 * 2 * 3, dtype=np.uint8).reshape(6, 2, 2, 3)
    examples = pipelines.examples_from_arrays(images, np.arange(6) % 2)
    x, y = next(iter(pipelines.batches(examples, 4, shuffle_seed=2)))
    assert x.dtype == tf.float32 and y.dtype == tf.int32 and x.shape == (4, 2, 2, 3)
    filtered = examples.filter(lambda _, label: label == 1)
    assert int(filtered.cardinality()) < 0 and pipelines.count(filtered) == 3
    assert pipelines.count(examples) == 6


# ------------------------------------------------------ animals (notebook 02)


def test_single_folder_is_split_with_the_seed_without_overlap_and_every_class_everywhere(
        make_settings, tmp_path, class_folder):
    root = class_folder(tmp_path / "animals", classes=FIVE, per_class=10)
    settings = make_settings(ANIMALS, data_dir=root, batch_size=4, image_size=32)
    d = datasets.animals(settings)
    assert d.class_names == list(FIVE) and d.source == str(root) and d.image_size == 32
    assert list(_sizes(d)) == [40, 5, 5]  # 80 / 10 / 10 per class
    assert d.layout == "one folder per class, split 80/10/10 (stratified, seed 42)"
    for split in SPLITS:
        assert _labels(getattr(d, split)) == d.labels[split].tolist()  # the labels, in the split's order
        assert min(_counts(d, split)) > 0
    train, val, test = _pixel_set(d.train), _pixel_set(d.val), _pixel_set(d.test)
    assert len(train) + len(val) + len(test) == 50  # 50 distinct images, each in one split
    assert not (train & val) and not (train & test) and not (val & test)
    again = datasets.animals(settings)
    assert again.fingerprint == d.fingerprint and _pixel_set(again.test) == test
    other = datasets.animals(make_settings(ANIMALS, data_dir=root, batch_size=4, image_size=32, seed=7))
    assert other.fingerprint != d.fingerprint and _pixel_set(other.test) != test


def test_image_data_batches_shuffle_training_only(make_settings, tmp_path, class_folder):
    root = class_folder(tmp_path / "animals", classes=FIVE, per_class=10)
    d = datasets.animals(make_settings(ANIMALS, data_dir=root, batch_size=4, image_size=32))
    train_ds, val_ds, test_ds = d.batches(4, shuffle_seed=1)
    assert _order(val_ds) == _order(val_ds) == d.labels["val"].tolist()
    assert _order(test_ds) == d.labels["test"].tolist()
    first, second = _order(train_ds), _order(train_ds)
    assert sorted(first) == sorted(second) == sorted(d.labels["train"].tolist())
    assert first != second and first != d.labels["train"].tolist()
    images, _ = next(iter(train_ds))
    assert images.shape == (4, 32, 32, 3) and images.dtype == tf.float32


@pytest.mark.parametrize("names", [("train", "val", "test"), ("Train", "valid", "Test"),
                                   ("TRAIN", "Validation", "test"), ("training", "validation", "testing")])
def test_presplit_folders_are_found_in_any_case_and_used_as_they_are(make_settings, tmp_path,
                                                                     class_folder, names):
    root = tmp_path / "pre"
    for name, per_class in zip(names, (4, 2, 3)):
        class_folder(root / name, classes=FIVE, per_class=per_class)
    d = datasets.animals(make_settings(ANIMALS, data_dir=root, batch_size=4, image_size=32))
    assert _sizes(d) == (20, 10, 15) and d.class_names == list(FIVE)
    assert d.layout == "pre-split: {}/, {}/, {}/".format(*names)
    assert d.layout in d.report()
    scan = scan_folder(root / names[2])
    assert _pixel_set(d.test) == _pixel_set(pipelines.examples_from_files(scan.paths, scan.labels, 32))
    assert sorted(_labels(d.test)) == sorted(scan.labels.tolist())


def test_train_and_test_only_carve_validation_from_train_with_the_seed(make_settings, tmp_path,
                                                                       class_folder):
    root = tmp_path / "pre"
    class_folder(root / "Train", classes=FIVE, per_class=10)
    class_folder(root / "test", classes=FIVE, per_class=3)
    settings = make_settings(ANIMALS, data_dir=root, batch_size=4, image_size=32)
    d = datasets.animals(settings)
    assert _sizes(d) == (45, 5, 15) and _counts(d, "val") == [1] * 5
    assert d.layout == "pre-split: Train/, test/; validation carved from Train/ (10%, stratified, seed 42)"
    scan = scan_folder(root / "Train")
    train, val = _pixel_set(d.train), _pixel_set(d.val)
    assert not train & val
    assert train | val == _pixel_set(pipelines.examples_from_files(scan.paths, scan.labels, 32))
    assert datasets.animals(settings).fingerprint == d.fingerprint
    other = datasets.animals(make_settings(ANIMALS, data_dir=root, batch_size=4, image_size=32, seed=3))
    assert _pixel_set(other.val) != val and _pixel_set(other.test) == _pixel_set(d.test)


def test_presplit_folder_missing_a_class_says_so(make_settings, tmp_path, class_folder):
    root = tmp_path / "pre"
    class_folder(root / "train", classes=FIVE, per_class=4)
    class_folder(root / "val", classes=FIVE, per_class=2)
    class_folder(root / "test", classes=FIVE[:4], per_class=2)  # no horse/
    with pytest.raises(DataError, match=r"test has classes .*, but .* were found beside it; every "
                                        r"split needs the same class folders"):
        datasets.animals(make_settings(ANIMALS, data_dir=root, batch_size=4, image_size=32))


def test_a_folder_with_other_classes_than_the_articles_is_used_as_it_is(make_settings, tmp_path,
                                                                        class_folder):
    six = class_folder(tmp_path / "six", classes=(*FIVE, "zebra"))
    d = datasets.animals(make_settings(ANIMALS, data_dir=six, batch_size=4, image_size=32))
    assert d.class_names == [*FIVE, "zebra"]  # your own folder is legitimate: nothing stops
    assert f"animals: 6 classes from {six}" in d.report()


def test_limit_caps_every_split_and_stays_balanced(make_settings, tmp_path, class_folder):
    root = class_folder(tmp_path / "many", per_class=20)
    d = datasets.animals(make_settings(ANIMALS, data_dir=root, limit=4, batch_size=2, image_size=32))
    assert list(_sizes(d)) == [4, 4, 4]
    assert _counts(d, "train") == [2, 2]
    assert all(len(_labels(getattr(d, split))) == 4 for split in SPLITS)


def test_batch_size_larger_than_training_set_is_one_sentence(make_settings, tmp_path, class_folder):
    root = class_folder(tmp_path / "few", per_class=10)
    with pytest.raises(SettingsError, match=r"^BATCH_SIZE 64 is larger than the 16 training images; use 16 "
                                            r"or fewer, or raise LIMIT\.$"):
        datasets.animals(make_settings(ANIMALS, data_dir=root, batch_size=64, image_size=32))
    # a LIMIT below BATCH_SIZE is refused the same way
    with pytest.raises(SettingsError, match="BATCH_SIZE 8 is larger than the 6 training images"):
        datasets.animals(make_settings(ANIMALS, data_dir=root, batch_size=8, limit=6, image_size=32))
    assert datasets.animals(make_settings(ANIMALS, data_dir=root, batch_size=16, image_size=32)).size("train") == 16


def test_class_imbalance_is_reported(make_settings, tmp_path, class_folder):
    balanced = class_folder(tmp_path / "balanced", per_class=4)
    d = datasets.animals(make_settings(ANIMALS, data_dir=balanced, batch_size=4, image_size=32))
    assert "class imbalance" not in d.report()
    root = class_folder(tmp_path / "imb", per_class=4)
    for i in range(4, 30):
        write_jpeg(root / "red" / f"extra_{i}.jpg", (200, 30, 30))
    d = datasets.animals(make_settings(ANIMALS, data_dir=root, batch_size=4, image_size=32))
    assert _counts(d, "train") == [2, 24]
    assert "class imbalance: the largest training class is 12.0x the smallest" in d.report()


def test_without_data_the_message_names_the_layout_and_the_kaggle_option(make_settings, tmp_path,
                                                                        monkeypatch):
    monkeypatch.setenv("COURSE_ROOT", str(tmp_path))
    with pytest.raises(DataError) as error:
        datasets.animals(make_settings(ANIMALS, profile="laptop", batch_size=4))
    message = str(error.value)
    assert str(tmp_path / "data" / "animals") in message
    assert sources.ANIMALS_LAYOUT in message and "KAGGLE_DATASET" in message


def test_a_local_folder_wins_over_a_kaggle_download(make_settings, tmp_path, class_folder, monkeypatch):
    monkeypatch.setenv("COURSE_ROOT", str(tmp_path))
    class_folder(tmp_path / "data" / "animals", classes=FIVE, per_class=10)
    monkeypatch.setattr(sources, "download_kaggle", lambda dataset: pytest.fail("must not download"))
    d = datasets.animals(make_settings(ANIMALS, profile="laptop", batch_size=4, image_size=32),
                         kaggle_dataset="someone/animals")
    assert d.class_names == list(FIVE) and d.source == str(tmp_path / "data" / "animals")


def test_kaggle_download_unwraps_archive_folders_and_never_shows_the_key(
        make_settings, tmp_path, class_folder, monkeypatch, capsys):
    monkeypatch.setenv("COURSE_ROOT", str(tmp_path / "course"))
    monkeypatch.setenv("KAGGLE_USERNAME", "user")
    monkeypatch.setenv("KAGGLE_KEY", "secret-key-123")
    download = tmp_path / "kagglehub" / "someone" / "animals" / "versions" / "1"
    class_folder(download / "Animals" / "dataset", classes=FIVE, per_class=10)  # two wrapper folders
    (download / "__MACOSX").mkdir()  # not a wrapper to keep
    asked = []
    fake = types.ModuleType("kagglehub")
    fake.dataset_download = lambda dataset: asked.append(dataset) or str(download)
    monkeypatch.setitem(sys.modules, "kagglehub", fake)
    monkeypatch.setattr(sources, "can_download", lambda url, timeout=5.0: True)
    d = datasets.animals(make_settings(ANIMALS, profile="laptop", batch_size=4, image_size=32),
                         kaggle_dataset="someone/animals")
    assert asked == ["someone/animals"]
    assert d.class_names == list(FIVE) and d.size("test") == 5
    assert d.source == str(download / "Animals" / "dataset")
    shown = d.report() + capsys.readouterr().out
    assert "secret-key-123" not in shown


def test_kaggle_needs_credentials_and_never_shows_them(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KAGGLE_USERNAME", raising=False)
    monkeypatch.delenv("KAGGLE_KEY", raising=False)
    monkeypatch.delenv("KAGGLE_CONFIG_DIR", raising=False)
    with pytest.raises(DataError, match="needs credentials: set KAGGLE_USERNAME and KAGGLE_KEY"):
        sources.download_kaggle("someone/animals")
    monkeypatch.setenv("KAGGLE_USERNAME", "user")
    monkeypatch.setenv("KAGGLE_KEY", "secret-key-123")
    with pytest.raises(DataError) as error:
        sources.download_kaggle("someone/animals")
    assert "www.kaggle.com cannot be reached" in str(error.value)
    assert "secret-key-123" not in str(error.value)


# -------------------------------------------------- cats vs dogs (notebook 01)


@pytest.fixture
def nothing_here(tmp_path, monkeypatch):
    """A course checkout and a tensorflow_datasets folder with nothing in them yet."""
    monkeypatch.setenv("COURSE_ROOT", str(tmp_path / "course"))
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
    return tmp_path


def _reachable(monkeypatch, *urls):
    monkeypatch.setattr(sources, "can_download", lambda url, timeout=5.0: url in urls)


def test_cats_vs_dogs_test_set_is_carved_from_validation_without_overlap(make_settings, tmp_path, class_folder):
    root = tmp_path / "cd"
    class_folder(root / "train", classes=CATS_DOGS_CLASSES, per_class=8)
    class_folder(root / "validation", classes=CATS_DOGS_CLASSES, per_class=10)
    s = make_settings(CATS_DOGS, data_dir=root, batch_size=4, image_size=32)
    d = datasets.cats_vs_dogs(s)
    assert _sizes(d) == (16, 16, 4) and d.source == str(root)
    assert d.layout == "train/ trains; validation/ is split 80/20 (stratified, seed 42) into validation and test"
    val, test, train = _pixel_set(d.val), _pixel_set(d.test), _pixel_set(d.train)
    assert not (val & test) and not (train & test)
    assert _counts(d, "test") == [2, 2]
    assert datasets.cats_vs_dogs(s).fingerprint == d.fingerprint
    other = datasets.cats_vs_dogs(make_settings(CATS_DOGS, data_dir=root, batch_size=4, image_size=32, seed=7))
    assert other.fingerprint != d.fingerprint


def test_cats_vs_dogs_data_dir_without_the_tree_names_it(make_settings, tmp_path, class_folder):
    root = class_folder(tmp_path / "flat", classes=CATS_DOGS_CLASSES)
    with pytest.raises(DataError, match=rf"^{root} has no train/ and validation/ folders; expected train/cats"):
        datasets.cats_vs_dogs(make_settings(CATS_DOGS, data_dir=root, batch_size=4, image_size=32))


def test_cats_vs_dogs_through_tfds_is_a_seeded_stratified_subset(make_settings, nothing_here, monkeypatch):
    import tensorflow_datasets as tfds

    _reachable(monkeypatch, sources.CATS_DOGS_TFDS_URL)  # mock_data stands in for the download
    monkeypatch.setattr(datasets, "ARTICLE_CATS_DOGS", (30, 10))  # the article's 4,000 + 1,000, scaled down
    s = make_settings(CATS_DOGS, profile="laptop", limit=1000, image_size=32, batch_size=4)
    with tfds.testing.mock_data(num_examples=200):
        d = datasets.cats_vs_dogs(s)
        assert d.class_names == ["cats", "dogs"]
        assert d.source.startswith("tensorflow_datasets cats_vs_dogs (")  # (mock_data's folder)
        assert [_counts(d, k) for k in SPLITS] == [[30, 30], [8, 8], [2, 2]]
        assert d.layout == ("a seeded, stratified subset of 30 training and 10 validation images per class; "
                            "validation/ is split 80/20 (stratified, seed 42) into validation and test")
        train, val, test = _pixel_set(d.train), _pixel_set(d.val), _pixel_set(d.test)
        assert len(train | val | test) == 80  # 80 distinct examples, each in one split
        images, labels = pipelines.take_images(d.train, 60)
        assert images.shape == (60, 32, 32, 3) and images.dtype == np.uint8
        assert np.array_equal(labels, d.labels["train"])
        assert datasets.cats_vs_dogs(s).fingerprint == d.fingerprint
        other = datasets.cats_vs_dogs(make_settings(CATS_DOGS, profile="laptop", image_size=32, batch_size=4,
                                                    seed=5))
        assert other.fingerprint != d.fingerprint
        limited = datasets.cats_vs_dogs(make_settings(CATS_DOGS, profile="laptop", limit=6, image_size=32,
                                                      batch_size=4))
        assert _sizes(limited) == (6, 6, 4) and _counts(limited, "train") == [3, 3]


def test_cats_vs_dogs_sources_come_in_order(make_settings, nothing_here, class_folder, monkeypatch):
    import tensorflow_datasets as tfds

    monkeypatch.setattr(datasets, "ARTICLE_CATS_DOGS", (20, 10))
    s = make_settings(CATS_DOGS, profile="laptop", image_size=32, batch_size=4)
    tree = nothing_here / "course" / "data" / "cats_and_dogs_filtered"
    class_folder(tree / "train", classes=CATS_DOGS_CLASSES, per_class=6)
    class_folder(tree / "validation", classes=CATS_DOGS_CLASSES, per_class=5)
    _reachable(monkeypatch, sources.CATS_DOGS_TFDS_URL, sources.CATS_DOGS_URL)
    with tfds.testing.mock_data(num_examples=100):
        # a tree in data/ comes before any download, and says when it is the public subset
        d = datasets.cats_vs_dogs(s)
        assert d.source == f"{tree} ({FALLBACK})" and _sizes(d) == (12, 8, 2)
        assert FALLBACK in d.report()
        # tfds cats_vs_dogs prepared here comes before the tree
        monkeypatch.setattr(tfds.core.DatasetBuilder, "is_prepared", lambda self: True)
        assert datasets.cats_vs_dogs(s).source.startswith("tensorflow_datasets cats_vs_dogs")


def test_cats_vs_dogs_falls_back_to_the_public_zip_and_says_so(make_settings, nothing_here, monkeypatch):
    _reachable(monkeypatch, sources.CATS_DOGS_URL)  # tensorflow_datasets' source is not
    fetched = []

    def get_file(fname, origin, extract, cache_dir, cache_subdir):
        fetched.append(origin)
        unzipped = Path(cache_dir) / "cats_and_dogs_filtered"
        write_image_tree(unzipped / "train", CATS_DOGS_CLASSES, 6)
        write_image_tree(unzipped / "validation", CATS_DOGS_CLASSES, 5)
        return str(Path(cache_dir) / fname)

    monkeypatch.setattr(keras.utils, "get_file", get_file)
    d = datasets.cats_vs_dogs(make_settings(CATS_DOGS, profile="laptop", image_size=32, batch_size=4))
    assert fetched == [sources.CATS_DOGS_URL]
    assert d.source == f"{nothing_here / 'course' / 'data' / 'cats_and_dogs_filtered'} ({FALLBACK})"
    assert _sizes(d) == (12, 8, 2)


# ------------------------------------------------------ tf_flowers (notebook 04)


def test_tf_flowers_through_tfds_mock_data(make_settings, nothing_here, monkeypatch):
    import tensorflow_datasets as tfds

    # mock_data replaces download_and_prepare and as_dataset; let the loader get that far
    _reachable(monkeypatch, sources.FLOWERS_URL)
    s = make_settings(FLOWERS, profile="laptop", image_size=32, batch_size=4)
    with tfds.testing.mock_data(num_examples=60):
        d = datasets.tf_flowers(s)
        assert sorted(d.class_names) == sorted(FLOWER_CLASSES)  # in tfds's own label order
        assert d.source.startswith("tensorflow_datasets tf_flowers (")  # (mock_data's folder)
        sizes = _sizes(d)
        assert sum(sizes) == 60 and sizes[0] > sizes[1] > 0 and sizes[2] > 0
        assert d.layout == "tensorflow_datasets' one split, split 80/10/10 (stratified, seed 42)"
        images, labels = pipelines.take_images(d.train, d.size("train"))
        assert images.shape == (sizes[0], 32, 32, 3) and images.dtype == np.uint8
        assert np.array_equal(labels, d.labels["train"])
        assert d.fingerprint == datasets.tf_flowers(s).fingerprint
        test_a = pipelines.take_images(d.test, 100)[0]
        test_b = pipelines.take_images(d.test, 100)[0]
        assert np.array_equal(test_a, test_b)  # evaluation order never changes
        limited = datasets.tf_flowers(make_settings(FLOWERS, profile="laptop", image_size=32, batch_size=4,
                                                    limit=5))
        assert _sizes(limited) == (5, 5, 5)


def test_tf_flowers_folder_on_the_laptop_profile_names_its_folder(make_settings, tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_ROOT", str(tmp_path))
    folder = write_image_tree(tmp_path / "data" / "flower_photos", FLOWER_CLASSES, 10)
    d = datasets.tf_flowers(make_settings(FLOWERS, profile="laptop", image_size=32, batch_size=4))
    assert d.source == str(folder) and _sizes(d) == (40, 5, 5)
    assert d.class_names == list(FLOWER_CLASSES)


def test_tf_flowers_data_dir_without_flower_photos_names_it(make_settings, tmp_path, class_folder):
    root = class_folder(tmp_path / "not_flowers")
    with pytest.raises(DataError) as error:
        datasets.tf_flowers(make_settings(FLOWERS, data_dir=root, image_size=32, batch_size=4))
    assert str(error.value).startswith(f"{root} has no flower_photos/ folder")
    assert sources.FLOWERS_URL in str(error.value)


# ------------------------------------------------------------------- samples


def test_sample_folders_are_generated_once_and_learnable(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path))
    root = samples.sample_folder("demo", ("x", "y", "z"), {"": 4}, odd_files=True)
    assert samples.sample_folder("demo", ("x", "y", "z"), {"": 4}, odd_files=True) == root
    scan = scan_folder(root)
    assert len(scan.skipped) == 3 and scan.converted == 2
    images, labels = samples.sample_arrays(300, 3, 32, seed=0)
    means = np.stack([images[labels == k].mean(axis=0).ravel() for k in range(3)])
    # class means differ clearly: colour and shape carry the label
    assert np.min(np.linalg.norm(means[:, None] - means[None], axis=-1)[~np.eye(3, dtype=bool)]) > 200


# ---------------------------------------------------------------- CIFAR-10


def test_cifar10_reads_the_official_folder_and_archive(tmp_path):
    write_cifar_batches(tmp_path / "cifar-10-batches-py")
    (x_train, y_train), (x_test, y_test) = sources.read_cifar10(tmp_path / "cifar-10-batches-py")
    assert x_train.shape == (100, 32, 32, 3) and x_test.shape == (20, 32, 32, 3)
    assert int(x_train[3, 5, 5, 1]) == 60 and int(y_train[3]) == 3  # channels-last, label kept
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    (x2, y2), (x3, y3) = sources.read_cifar10(archive)
    assert np.array_equal(x2, x_train) and np.array_equal(y2, y_train)
    assert np.array_equal(x3, x_test) and np.array_equal(y3, y_test)
    assert sources.find_cifar10(tmp_path) == tmp_path / "cifar-10-batches-py"


def test_cifar10_archive_missing_a_batch_says_which(tmp_path):
    folder = write_cifar_batches(tmp_path / "cifar-10-batches-py")
    (folder / "test_batch").unlink()
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")
    with pytest.raises(DataError, match=r"does not hold the CIFAR-10 batch test_batch; is it the python version\?"):
        sources.read_cifar10(archive)


def test_cifar10_is_found_in_data_or_in_keras_cache(make_settings, nothing_here, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(nothing_here / "keras"))
    archive_source = write_cifar_batches(nothing_here / "made" / "cifar-10-batches-py")
    cached = nothing_here / "keras" / "datasets" / "cifar-10-python.tar.gz"
    cached.parent.mkdir(parents=True)
    with tarfile.open(cached, "w:gz") as tar:
        tar.add(archive_source, arcname="cifar-10-batches-py")
    d = datasets.cifar10(make_settings(CIFAR_BOTH, profile="laptop", batch_size=8), val_fraction=0.3)
    assert d.source == str(cached) and _sizes(d) == (70, 30, 20)
    in_data = write_cifar_batches(nothing_here / "course" / "data" / "cifar-10-batches-py")
    d = datasets.cifar10(make_settings(CIFAR_BOTH, profile="laptop", batch_size=8), val_fraction=0.3)
    assert d.source == str(in_data)  # data/ comes before Keras's cache


@pytest.mark.parametrize(("notebook", "fraction"), [(CIFAR_BOTH, 0.3), (UPSAMPLING, 0.1)])
def test_cifar10_validation_split_per_article(make_settings, tmp_path, notebook, fraction):
    write_cifar_batches(tmp_path / "cifar-10-batches-py", per_batch=40)
    s = make_settings(notebook, data_dir=tmp_path, batch_size=8)
    d = datasets.cifar10(s, val_fraction=fraction)
    assert d.size("val") == round(200 * fraction) and d.size("train") == 200 - round(200 * fraction)
    assert d.size("test") == 40 and d.image_size == 32 and d.class_names == list(sources.CIFAR10_CLASSES)
    assert d.source == str(tmp_path / "cifar-10-batches-py")
    assert _labels(d.val) == d.labels["val"].tolist()
    assert d.fingerprint == datasets.cifar10(s, val_fraction=fraction).fingerprint
    assert d.layout.startswith(f"the official test set; {fraction:.0%} of the training set held out")
    limited = datasets.cifar10(make_settings(notebook, data_dir=tmp_path, batch_size=8, limit=10), fraction)
    assert _sizes(limited) == (10, 10, 10) and _counts(limited, "train") == [1] * 10


def test_cifar10_data_dir_without_it_names_the_folder_and_the_download(make_settings, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=rf"^{tmp_path / 'empty'} holds neither cifar-10-batches-py/ nor "
                                        r"cifar-10-python\.tar\.gz; download https://"):
        datasets.cifar10(make_settings(CIFAR_BOTH, data_dir=tmp_path / "empty", batch_size=8), 0.3)


# ------------------------------------------------------------------ sources


def test_offline_sources_fail_at_once_naming_the_source_and_where_files_go(make_settings, nothing_here,
                                                                           monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(nothing_here / "keras"))
    laptop = dict(profile="laptop", batch_size=4)
    data_folder = str(nothing_here / "course" / "data")
    with pytest.raises(DataError) as error:
        datasets.cats_vs_dogs(make_settings(CATS_DOGS, **laptop))
    message = str(error.value)
    assert message.startswith(f"Cats vs dogs is neither prepared by tensorflow_datasets in {nothing_here / 'tfds'}")
    for named in (sources.CATS_DOGS_TFDS_URL, sources.CATS_DOGS_URL, data_folder,
                  "cats_and_dogs_filtered.zip into", "DATA_DIR"):
        assert named in message
    with pytest.raises(DataError) as error:
        datasets.cifar10(make_settings(CIFAR_BOTH, **laptop), 0.3)
    message = str(error.value)
    assert message.startswith(f"CIFAR-10 is not on this machine and {sources.CIFAR10_URL} cannot be reached; put")
    assert f"{data_folder}/" in message and f"{nothing_here / 'keras' / 'datasets'}/" in message
    with pytest.raises(DataError) as error:
        datasets.tf_flowers(make_settings(FLOWERS, **laptop))
    message = str(error.value)
    assert message.startswith(f"tf_flowers is not prepared in {nothing_here / 'tfds'}")
    assert f" and {sources.FLOWERS_URL} cannot be reached; extract flower_photos.tgz into" in message
    assert f"{data_folder}/flower_photos/daisy" in message
    with pytest.raises(DataError, match=r"^No animal images found: put them in .*animals"):
        datasets.animals(make_settings(ANIMALS, **laptop))
    assert not (nothing_here / "course" / "data").exists()  # nothing was downloaded or created


class _Answers(http.server.BaseHTTPRequestHandler):
    """A local server that records each request line and answers with `status`."""
    status = 200
    seen: list[str] = []

    def do_HEAD(self):
        self.seen.append(self.requestline)
        self.send_response(self.status)
        self.end_headers()

    def do_CONNECT(self):  # as a proxy: refuse the tunnel after noting where it was to go
        self.seen.append(self.requestline)
        self.send_response(403)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def local_server(monkeypatch):
    """(port, requests seen): a server on this machine, and no proxy unless a test sets one."""
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy",
                 "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    # urllib builds its default opener, and reads the proxy variables, on its first call: start afresh
    monkeypatch.setattr(urllib.request, "_opener", None)
    seen: list[str] = []
    handler = type("Handler", (_Answers,), {"seen": seen})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], seen, handler
    server.shutdown()
    server.server_close()


def test_can_download_asks_with_a_head_request_and_never_when_offline(local_server, monkeypatch):
    port, seen, handler = local_server
    url = f"http://127.0.0.1:{port}/weights.h5"
    assert sources.can_download(url) is False  # COURSE_OFFLINE is set for the tests
    assert seen == []
    monkeypatch.delenv("COURSE_OFFLINE")
    assert sources.can_download(url) is True
    assert seen == ["HEAD /weights.h5 HTTP/1.1"]
    handler.status = 405  # it answered: the host is there
    assert sources.can_download(url) is True
    closed = http.server.HTTPServer(("127.0.0.1", 0), _Answers)
    closed_port = closed.server_address[1]
    closed.server_close()
    assert sources.can_download(f"http://127.0.0.1:{closed_port}/x") is False


def test_can_download_goes_through_https_proxy(local_server, monkeypatch):
    port, seen, _ = local_server
    monkeypatch.delenv("COURSE_OFFLINE")
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{port}")
    assert sources.can_download("https://weights.example.invalid/file.h5") is False  # the proxy refused
    assert len(seen) == 1 and seen[0].startswith("CONNECT weights.example.invalid:443 ")
