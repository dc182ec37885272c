"""Data: seeded splits without overlap, the layouts of notebook 04's folder, the sources of
notebook 05 in their order, tensorflow_datasets through mock data, and the errors of each."""

import sys
import tarfile
import types
from pathlib import Path

import numpy as np
import pytest
from conftest import write_cifar_batches, write_image_tree, write_jpeg

from helpers import data
from helpers.config import SettingsError
from helpers.data import DataError

ANIMALS = "04_animals_mobilenetv2_vs_efficientnetv2"
CATS_DOGS = "05_cats_vs_dogs_feature_extraction"
FLOWERS = "03_tf_flowers_unfreezing_strategies"
FIVE = ("cat", "cow", "dog", "elephant", "horse")
FALLBACK = "fallback: the public 2,000-image subset, not the article's 8,000"


def _pixel_set(examples) -> set[bytes]:
    return {image.numpy().tobytes() for image, _ in examples}


def _labels(examples) -> list[int]:
    return [int(label) for _, label in examples]


def _sizes(d) -> tuple[int, int, int]:
    return d.size("train"), d.size("val"), d.size("test")


# -------------------------------------------------------------------- splits


def test_stratified_split_is_seeded_disjoint_and_covers_every_class():
    labels = np.repeat(np.arange(5), [30, 12, 7, 3, 50])
    parts = data.stratified_split(labels, (0.8, 0.1, 0.1), seed=3)
    again = data.stratified_split(labels, (0.8, 0.1, 0.1), seed=3)
    other = data.stratified_split(labels, (0.8, 0.1, 0.1), seed=4)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again))
    assert not all(np.array_equal(a, b) for a, b in zip(parts, other))
    joined = np.concatenate(parts)
    assert len(joined) == len(labels) == len(set(joined.tolist()))
    for part in parts:
        assert set(labels[part]) == set(range(5))
    # round-robin order: the first five of a split hold one image of each class
    assert sorted(labels[parts[0][:5]]) == [0, 1, 2, 3, 4]


def test_stratified_split_per_class_takes_exact_counts_and_leaves_the_rest():
    labels = np.repeat([0, 1, 2], [50, 40, 12])
    train, val = data.stratified_split(labels, None, seed=1, per_class=(10, 4))
    assert list(np.bincount(labels[train])) == [10, 10, 10] and list(np.bincount(labels[val])) == [4, 4, 2]
    assert not set(train) & set(val)
    assert sorted(labels[train[:3]]) == [0, 1, 2]  # round-robin: a LIMIT stays balanced
    again = data.stratified_split(labels, None, seed=1, per_class=(10, 4))
    assert np.array_equal(train, again[0]) and np.array_equal(val, again[1])


# ------------------------------------------------------ animals (notebook 04)


def test_single_folder_is_split_with_the_seed_without_overlap_and_every_class_everywhere(
        make_settings, tmp_path, class_folder):
    root = class_folder(tmp_path / "animals", classes=FIVE, per_class=10)
    settings = make_settings(ANIMALS, data_dir=root, batch_size=4, image_size=32)
    d = data.load_animals(settings)
    assert d.class_names == list(FIVE)
    assert list(_sizes(d)) == [40, 5, 5]  # 80 / 10 / 10 per class
    assert d.layout == "one folder per class, split 80/10/10 (stratified, seed 42)"
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


@pytest.mark.parametrize("names", [("train", "val", "test"), ("Train", "valid", "Test"),
                                   ("TRAIN", "Validation", "test"), ("training", "validation", "testing")])
def test_presplit_folders_are_found_in_any_case_and_used_as_they_are(make_settings, tmp_path,
                                                                     class_folder, names):
    root = tmp_path / "pre"
    for name, per_class in zip(names, (4, 2, 3)):
        class_folder(root / name, classes=FIVE, per_class=per_class)
    d = data.load_animals(make_settings(ANIMALS, data_dir=root, batch_size=4, image_size=32))
    assert _sizes(d) == (20, 10, 15) and d.class_names == list(FIVE)
    assert d.layout == "pre-split: {}/, {}/, {}/".format(*names)
    assert d.layout in d.report()
    scan = data.scan_folder(root / names[2])
    assert _pixel_set(d.test) == _pixel_set(data.examples_from_files(scan.paths, scan.labels, 32))
    assert sorted(_labels(d.test)) == sorted(scan.labels.tolist())


def test_train_and_test_only_carve_validation_from_train_with_the_seed(make_settings, tmp_path,
                                                                       class_folder):
    root = tmp_path / "pre"
    class_folder(root / "Train", classes=FIVE, per_class=10)
    class_folder(root / "test", classes=FIVE, per_class=3)
    settings = make_settings(ANIMALS, data_dir=root, batch_size=4, image_size=32)
    d = data.load_animals(settings)
    assert _sizes(d) == (45, 5, 15) and list(d.counts["val"]) == [1] * 5
    assert d.layout == "pre-split: Train/, test/; validation carved from Train/ (10%, stratified, seed 42)"
    scan = data.scan_folder(root / "Train")
    train, val = _pixel_set(d.train), _pixel_set(d.val)
    assert not train & val
    assert train | val == _pixel_set(data.examples_from_files(scan.paths, scan.labels, 32))
    assert data.load_animals(settings).fingerprint == d.fingerprint
    other = data.load_animals(make_settings(ANIMALS, data_dir=root, batch_size=4, image_size=32, seed=3))
    assert _pixel_set(other.val) != val and _pixel_set(other.test) == _pixel_set(d.test)


def test_presplit_folder_missing_a_class_says_so(make_settings, tmp_path, class_folder):
    root = tmp_path / "pre"
    class_folder(root / "train", classes=FIVE, per_class=4)
    class_folder(root / "val", classes=FIVE, per_class=2)
    class_folder(root / "test", classes=FIVE[:4], per_class=2)  # no horse/
    with pytest.raises(DataError, match=r"test has classes .*, but .* were found beside it; every "
                                        r"split needs the same class folders"):
        data.load_animals(make_settings(ANIMALS, data_dir=root, batch_size=4, image_size=32))


def test_the_classes_are_checked_against_the_articles_five(make_settings, tmp_path, class_folder):
    five = data.load_animals(make_settings(ANIMALS, data_dir=class_folder(tmp_path / "five", classes=FIVE),
                                           batch_size=4, image_size=32))
    check = data.check_classes(five, data.ANIMAL_CLASSES)
    assert check == "5 classes, as in the article's data set: cat, cow, dog, elephant, horse."
    six = class_folder(tmp_path / "six", classes=(*FIVE, "zebra"))
    d = data.load_animals(make_settings(ANIMALS, data_dir=six, batch_size=4, image_size=32))
    assert d.num_classes == 6  # your own folder is legitimate: nothing stops
    assert data.check_classes(d, data.ANIMAL_CLASSES) == (
        "6 classes (cat, cow, dog, elephant, horse, zebra) where the article's data set has 5 (cat, "
        "cow, dog, elephant, horse): fine for your own images, but the results are then not "
        "comparable with the article's."
    )


def test_limit_caps_every_split_and_stays_balanced(make_settings, tmp_path, class_folder):
    root = class_folder(tmp_path / "many", per_class=20)
    s = make_settings(ANIMALS, data_dir=root, limit=4, batch_size=2, image_size=32)
    d = data.load_animals(s)
    assert list(_sizes(d)) == [4, 4, 4]
    assert list(d.counts["train"]) == [2, 2]


def test_batch_size_larger_than_training_set_is_one_sentence(make_settings, tmp_path, class_folder):
    root = class_folder(tmp_path / "few", per_class=10)
    s = make_settings(ANIMALS, data_dir=root, batch_size=64, image_size=32)
    with pytest.raises(SettingsError, match="BATCH_SIZE 64 is larger than the 16 training images; use 16 or fewer"):
        data.load_animals(s)


def test_class_imbalance_is_reported(make_settings, tmp_path, class_folder):
    root = class_folder(tmp_path / "imb", per_class=4)
    for i in range(4, 30):
        write_jpeg(root / "red" / f"extra_{i}.jpg", (200, 30, 30))
    s = make_settings(ANIMALS, data_dir=root, batch_size=4, image_size=32)
    d = data.load_animals(s)
    assert d.imbalance() > 5
    assert "class imbalance: the largest training class is" in d.report()


def test_without_data_the_message_names_the_layout_and_the_kaggle_option(make_settings, tmp_path,
                                                                        monkeypatch):
    monkeypatch.setenv("COURSE_ROOT", str(tmp_path))
    with pytest.raises(DataError) as error:
        data.load_animals(make_settings(ANIMALS, profile="laptop", batch_size=4))
    message = str(error.value)
    assert str(tmp_path / "data" / "animals") in message
    assert data.ANIMALS_LAYOUT in message and "KAGGLE_DATASET" in message


def test_a_local_folder_wins_over_a_kaggle_download(make_settings, tmp_path, class_folder, monkeypatch):
    monkeypatch.setenv("COURSE_ROOT", str(tmp_path))
    class_folder(tmp_path / "data" / "animals", classes=FIVE, per_class=10)
    monkeypatch.setattr(data, "download_kaggle", lambda dataset: pytest.fail("must not download"))
    d = data.load_animals(make_settings(ANIMALS, profile="laptop", batch_size=4, image_size=32),
                          kaggle_dataset="someone/animals")
    assert d.class_names == list(FIVE)


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
    monkeypatch.setattr(data, "can_download", lambda url: True)
    d = data.load_animals(make_settings(ANIMALS, profile="laptop", batch_size=4, image_size=32),
                          kaggle_dataset="someone/animals")
    assert asked == ["someone/animals"]
    assert d.class_names == list(FIVE) and d.size("test") == 5
    shown = d.report() + capsys.readouterr().out
    assert "secret-key-123" not in shown


def test_kaggle_needs_credentials_and_never_shows_them(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KAGGLE_USERNAME", raising=False)
    monkeypatch.delenv("KAGGLE_KEY", raising=False)
    monkeypatch.delenv("KAGGLE_CONFIG_DIR", raising=False)
    with pytest.raises(DataError, match="needs credentials: set KAGGLE_USERNAME and KAGGLE_KEY"):
        data.download_kaggle("someone/animals")
    monkeypatch.setenv("KAGGLE_USERNAME", "user")
    monkeypatch.setenv("KAGGLE_KEY", "secret-key-123")
    with pytest.raises(DataError) as error:
        data.download_kaggle("someone/animals")
    assert "cannot be reached" in str(error.value) and "secret-key-123" not in str(error.value)


# -------------------------------------------------- cats vs dogs (notebook 05)


@pytest.fixture
def nothing_here(tmp_path, monkeypatch):
    """A course checkout and a tensorflow_datasets folder with nothing in them yet."""
    monkeypatch.setenv("COURSE_ROOT", str(tmp_path / "course"))
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
    return tmp_path


def _reachable(monkeypatch, *urls):
    monkeypatch.setattr(data, "can_download", lambda url, timeout=3.0: url in urls)


def test_cats_vs_dogs_test_set_is_carved_from_validation_without_overlap(make_settings, tmp_path, class_folder):
    root = tmp_path / "cd"
    class_folder(root / "train", classes=("cats", "dogs"), per_class=8)
    class_folder(root / "validation", classes=("cats", "dogs"), per_class=10)
    s = make_settings(data_dir=root, batch_size=4, image_size=32)
    d = data.load_cats_vs_dogs(s)
    assert _sizes(d) == (16, 16, 4) and d.source == str(root)
    assert d.layout == "train/ trains; validation/ is split 80/20 (stratified, seed 42) into validation and test"
    val, test, train = _pixel_set(d.val), _pixel_set(d.test), _pixel_set(d.train)
    assert not (val & test) and not (train & test)
    assert list(d.counts["test"]) == [2, 2]
    again = data.load_cats_vs_dogs(s)
    assert again.fingerprint == d.fingerprint
    assert data.load_cats_vs_dogs(make_settings(data_dir=root, batch_size=4, image_size=32, seed=7)).fingerprint != d.fingerprint


def test_cats_vs_dogs_through_tfds_is_a_seeded_stratified_subset(make_settings, nothing_here, monkeypatch):
    import tensorflow_datasets as tfds

    _reachable(monkeypatch, data.CATS_DOGS_TFDS_URL)  # mock_data stands in for the download
    s = make_settings(CATS_DOGS, profile="laptop", limit=1000, image_size=32, batch_size=4)
    with tfds.testing.mock_data(num_examples=200):
        d = data.load_cats_vs_dogs(s, per_class=(30, 10))
        assert d.class_names == ["cats", "dogs"] and d.source.startswith("tensorflow_datasets cats_vs_dogs")
        assert [list(d.counts[k]) for k in ("train", "val", "test")] == [[30, 30], [8, 8], [2, 2]]
        assert d.layout.startswith("a seeded, stratified subset: 30 training and 10 validation images per class")
        train, val, test = _pixel_set(d.train), _pixel_set(d.val), _pixel_set(d.test)
        assert len(train | val | test) == 80  # 80 distinct examples, each in one split
        images, labels = data.take_images(d.train, 60)
        assert images.shape == (60, 32, 32, 3) and list(np.bincount(labels)) == [30, 30]
        assert data.load_cats_vs_dogs(s, per_class=(30, 10)).fingerprint == d.fingerprint
        other = data.load_cats_vs_dogs(make_settings(CATS_DOGS, profile="laptop", image_size=32, batch_size=4,
                                                     seed=5), per_class=(30, 10))
        assert other.fingerprint != d.fingerprint
        limited = data.load_cats_vs_dogs(make_settings(CATS_DOGS, profile="laptop", limit=6, image_size=32,
                                                       batch_size=4), per_class=(30, 10))
        assert _sizes(limited) == (6, 6, 4) and list(limited.counts["train"]) == [3, 3]


def test_cats_vs_dogs_sources_come_in_order(make_settings, nothing_here, class_folder, monkeypatch):
    import tensorflow_datasets as tfds

    s = make_settings(CATS_DOGS, profile="laptop", image_size=32, batch_size=4)
    tree = nothing_here / "course" / "data" / "cats_and_dogs_filtered"
    class_folder(tree / "train", classes=data.CATS_DOGS_CLASSES, per_class=6)
    class_folder(tree / "validation", classes=data.CATS_DOGS_CLASSES, per_class=5)
    _reachable(monkeypatch, data.CATS_DOGS_TFDS_URL, data.CATS_DOGS_URL)
    with tfds.testing.mock_data(num_examples=100):
        # a tree in data/ comes before any download, and says when it is the public subset
        d = data.load_cats_vs_dogs(s, per_class=(20, 10))
        assert d.source == f"{tree} ({FALLBACK})" and _sizes(d) == (12, 8, 2)
        assert FALLBACK in d.report()
        # tfds cats_vs_dogs prepared here comes before the tree
        monkeypatch.setattr(tfds.core.DatasetBuilder, "is_prepared", lambda self: True)
        assert data.load_cats_vs_dogs(s, per_class=(20, 10)).source.startswith("tensorflow_datasets")


def test_cats_vs_dogs_falls_back_to_the_public_zip_and_says_so(make_settings, nothing_here, monkeypatch):
    import keras

    _reachable(monkeypatch, data.CATS_DOGS_URL)  # tensorflow_datasets' source is not
    fetched = []

    def get_file(fname, origin, extract, cache_dir, cache_subdir):
        fetched.append(origin)
        unzipped = Path(cache_dir) / "cats_and_dogs_filtered"
        write_image_tree(unzipped / "train", data.CATS_DOGS_CLASSES, 6)
        write_image_tree(unzipped / "validation", data.CATS_DOGS_CLASSES, 5)
        return str(Path(cache_dir) / fname)

    monkeypatch.setattr(keras.utils, "get_file", get_file)
    d = data.load_cats_vs_dogs(make_settings(CATS_DOGS, profile="laptop", image_size=32, batch_size=4))
    assert fetched == [data.CATS_DOGS_URL]
    assert FALLBACK in d.source and _sizes(d) == (12, 8, 2)


# ------------------------------------------------------ tf_flowers (notebook 03)


def test_tf_flowers_through_tfds_mock_data(make_settings, monkeypatch):
    import tensorflow_datasets as tfds

    # mock_data replaces download_and_prepare and as_dataset; let the loader get that far
    monkeypatch.setattr(data, "can_download", lambda url, timeout=3.0: True)
    s = make_settings(FLOWERS, profile="laptop", image_size=32, batch_size=4)
    with tfds.testing.mock_data(num_examples=60):
        d = data.load_tfds_flowers(s)
        assert sorted(d.class_names) == sorted(data.FLOWER_CLASSES)  # in tfds's own label order
        sizes = _sizes(d)
        assert sum(sizes) == 60 and sizes[0] > sizes[1] > 0 and sizes[2] > 0
        assert d.layout == "tensorflow_datasets' one split, split 80/10/10 (stratified, seed 42)"
        images, labels = data.take_images(d.train, d.size("train"))
        assert images.shape == (sizes[0], 32, 32, 3) and images.dtype == np.uint8
        assert np.array_equal(np.bincount(labels, minlength=5), d.counts["train"])
        assert d.fingerprint == data.load_tfds_flowers(s).fingerprint
        test_a = data.take_images(d.test, 100)[0]
        test_b = data.take_images(d.test, 100)[0]
        assert np.array_equal(test_a, test_b)  # evaluation order never changes


def test_tf_flowers_folder_on_the_laptop_profile_names_its_folder(make_settings, tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_ROOT", str(tmp_path))
    folder = write_image_tree(tmp_path / "data" / "flower_photos", data.FLOWER_CLASSES, 10)
    d = data.load_tf_flowers(make_settings(FLOWERS, profile="laptop", image_size=32, batch_size=4))
    assert d.source == str(folder) and _sizes(d) == (40, 5, 5)


# ------------------------------------------------------------------- samples


def test_sample_folders_are_generated_once_and_learnable(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path))
    root = data.sample_folder("demo", ("x", "y", "z"), {"": 4}, odd_files=True)
    assert data.sample_folder("demo", ("x", "y", "z"), {"": 4}, odd_files=True) == root
    scan = data.scan_folder(root)
    assert len(scan.skipped) == 3 and scan.converted == 2
    images, labels = data.sample_arrays(300, 3, 32, seed=0)
    means = np.stack([images[labels == k].mean(axis=0).ravel() for k in range(3)])
    # class means differ clearly: colour and shape carry the label
    assert np.min(np.linalg.norm(means[:, None] - means[None], axis=-1)[~np.eye(3, dtype=bool)]) > 200


# ---------------------------------------------------------------- CIFAR-10


def test_cifar10_reads_the_official_folder_and_archive(tmp_path):
    write_cifar_batches(tmp_path / "cifar-10-batches-py")
    (x_train, y_train), (x_test, y_test) = data.read_cifar10(tmp_path / "cifar-10-batches-py")
    assert x_train.shape == (100, 32, 32, 3) and x_test.shape == (20, 32, 32, 3)
    assert int(x_train[3, 5, 5, 1]) == 60 and int(y_train[3]) == 3  # channels-last, label kept
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    (x2, y2), _ = data.read_cifar10(archive)
    assert np.array_equal(x2, x_train) and np.array_equal(y2, y_train)
    assert data.find_cifar10(tmp_path) == tmp_path / "cifar-10-batches-py"


@pytest.mark.parametrize(("notebook", "fraction"), [
    ("01_cifar10_resnet50_vs_mobilenet", 0.3),
    ("02_cifar10_resnet50_upsampling_finetune", 0.1),
])
def test_cifar10_validation_split_per_article(make_settings, tmp_path, notebook, fraction):
    write_cifar_batches(tmp_path / "cifar-10-batches-py", per_batch=40)
    s = make_settings(notebook, data_dir=tmp_path, batch_size=8)
    d = data.load_cifar10(s, val_fraction=fraction)
    assert d.size("val") == round(200 * fraction) and d.size("train") == 200 - round(200 * fraction)
    assert d.size("test") == 40
    assert d.fingerprint == data.load_cifar10(s, val_fraction=fraction).fingerprint
    assert d.layout.startswith(f"the official test set; {fraction:.0%} of the training set held out")


# ------------------------------------------------------------------ sources


def test_offline_sources_fail_at_once_naming_where_files_go(make_settings, nothing_here, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(nothing_here / "keras"))
    laptop = dict(profile="laptop", batch_size=4)
    with pytest.raises(DataError) as error:
        data.load_cats_vs_dogs(make_settings(CATS_DOGS, **laptop))
    message = str(error.value)
    assert message.startswith(f"Cats vs dogs is neither prepared by tensorflow_datasets in {nothing_here / 'tfds'}")
    for named in (data.CATS_DOGS_TFDS_URL, data.CATS_DOGS_URL, str(nothing_here / "course" / "data"),
                  "cats_and_dogs_filtered.zip into", "DATA_DIR"):
        assert named in message
    with pytest.raises(DataError, match=r"CIFAR-10 is not on this machine and .* cannot be reached; put"):
        data.load_cifar10(make_settings("01_cifar10_resnet50_vs_mobilenet", **laptop), 0.3)
    with pytest.raises(DataError, match=r"tf_flowers is not prepared in .*tfds.* cannot be reached; extract"):
        data.load_tf_flowers(make_settings(FLOWERS, **laptop))
    with pytest.raises(DataError, match=r"No animal images found: put them in .*animals"):
        data.load_animals(make_settings(ANIMALS, **laptop))
