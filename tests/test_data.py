"""Data: broken and odd files, seeded splits without overlap, sources and their errors."""

import tarfile

import numpy as np
import pytest
from conftest import jpeg_bytes, write_cifar_batches, write_jpeg
from PIL import Image

from helpers import data
from helpers.config import SettingsError
from helpers.data import DataError

# ----------------------------------------------------------------- odd files


@pytest.fixture
def odd_folder(tmp_path):
    """Two classes of good images plus every kind of odd file a real folder holds."""
    root = tmp_path / "odd"
    for k, name in enumerate(("a", "b")):
        for i in range(5):
            write_jpeg(root / name / f"good_{i}.jpg", (200, 20, 20) if k else (20, 20, 200))
    a = root / "a"
    whole = jpeg_bytes()
    (a / "truncated.jpg").write_bytes(whole[: len(whole) // 2])
    (a / "zero.jpg").write_bytes(b"")
    (a / "readme.txt").write_text("hello")
    (a / "fake.png").write_bytes(b"\x89PNG but not really")
    (a / ".DS_Store").write_bytes(b"\x00\x01")
    base = Image.new("RGB", (50, 40), (20, 20, 200))
    base.convert("L").save(a / "gray.jpg")
    base.convert("CMYK").save(a / "cmyk.jpg")
    rgba = base.convert("RGBA")
    rgba.putalpha(128)
    rgba.save(a / "rgba.png")
    Image.fromarray(np.full((40, 50), 40000, np.uint16)).save(a / "deep16.png")
    base.convert("P").save(a / "palette.gif")
    Image.new("RGB", (9000, 5000), (20, 20, 200)).save(a / "huge.jpg", quality=50)
    return root


def test_scan_skips_and_counts_what_cannot_be_decoded(odd_folder):
    scan = data.scan_folder(odd_folder)
    reasons = dict(scan.skipped)
    assert reasons == {
        "a/truncated.jpg": "truncated or corrupt image",
        "a/zero.jpg": "empty file",
        "a/readme.txt": "not an image",
        "a/fake.png": "not an image",
    }
    # hidden files are not data; everything else decodes: 10 good + 6 odd but valid
    assert len(scan.paths) == 16
    assert list(np.bincount(scan.labels)) == [11, 5]


def test_odd_modes_arrive_as_rgb_uint8_and_nothing_fails_mid_epoch(odd_folder, tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path / "cache"))
    scan = data.scan_folder(odd_folder)
    assert scan.converted >= 3  # CMYK, 16-bit and the very large image are converted once
    examples = data.examples_from_files(scan.paths, scan.labels, 32)
    seen = 0
    for _ in range(2):  # two epochs over every file
        for image, _label in data.batches(examples, 4, shuffle_seed=1):
            assert image.shape[1:] == (32, 32, 3)
            seen += int(image.shape[0])
    assert seen == 2 * len(scan.paths)
    images, labels = data.take_images(examples, len(scan.paths))
    blueish = images[labels == 0].mean(axis=(0, 1, 2))
    assert blueish[2] > blueish[0]  # colours survive the conversions (grayscale pulls it a little)


def test_unreadable_file_is_skipped_with_its_reason(odd_folder, monkeypatch):
    target = odd_folder / "b" / "good_0.jpg"
    real_open = open

    def guarded(path, *args, **kwargs):
        if str(path) == str(target):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", guarded)
    scan = data.scan_folder(odd_folder)
    assert ("b/good_0.jpg", "unreadable (permission denied)") in scan.skipped


def test_folder_errors_say_what_to_do(tmp_path, class_folder):
    with pytest.raises(DataError, match="is not a folder"):
        data.scan_folder(tmp_path / "missing")
    (tmp_path / "empty_root").mkdir()
    with pytest.raises(DataError, match="has no class subfolders; put each class's images in its own"):
        data.scan_folder(tmp_path / "empty_root")
    one = class_folder(tmp_path / "one", classes=("only",))
    with pytest.raises(DataError, match=r"has only one class folder \(only/\); a classifier needs"):
        data.scan_folder(one)
    two = class_folder(tmp_path / "two")
    (two / "green").mkdir()
    (two / "green" / "notes.txt").write_text("x")
    with pytest.raises(DataError, match="green has no readable images; add images to it or remove it"):
        data.scan_folder(two)
    with pytest.raises(DataError, match="has no cats/ folder; expected one subfolder per class: cats, dogs"):
        data.scan_folder(class_folder(tmp_path / "three"), expected=("cats", "dogs"))


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


def test_cats_vs_dogs_test_set_is_carved_from_validation_without_overlap(make_settings, tmp_path, class_folder):
    root = tmp_path / "cd"
    class_folder(root / "train", classes=("cats", "dogs"), per_class=8)
    class_folder(root / "validation", classes=("cats", "dogs"), per_class=10)
    s = make_settings(data_dir=root, batch_size=4, image_size=32)
    d = data.load_cats_vs_dogs(s)
    assert (d.size("train"), d.size("val"), d.size("test")) == (16, 16, 4)
    val = {bytes(x.numpy().tobytes()) for x, _ in d.val}
    test = {bytes(x.numpy().tobytes()) for x, _ in d.test}
    train = {bytes(x.numpy().tobytes()) for x, _ in d.train}
    assert not (val & test) and not (train & test)
    assert list(d.counts["test"]) == [2, 2]
    again = data.load_cats_vs_dogs(s)
    assert again.fingerprint == d.fingerprint
    assert data.load_cats_vs_dogs(make_settings(data_dir=root, batch_size=4, image_size=32, seed=7)).fingerprint != d.fingerprint


def test_limit_caps_every_split_and_stays_balanced(make_settings, tmp_path, class_folder):
    root = class_folder(tmp_path / "many", per_class=20)
    s = make_settings("04_animals_mobilenetv2_vs_efficientnetv2", data_dir=root, limit=4, batch_size=2,
                      image_size=32)
    d = data.load_animals(s)
    assert [d.size(split) for split in ("train", "val", "test")] == [4, 4, 4]
    assert list(d.counts["train"]) == [2, 2]


def test_batch_size_larger_than_training_set_is_one_sentence(make_settings, tmp_path, class_folder):
    root = class_folder(tmp_path / "few", per_class=10)
    s = make_settings("04_animals_mobilenetv2_vs_efficientnetv2", data_dir=root, batch_size=64, image_size=32)
    with pytest.raises(SettingsError, match="BATCH_SIZE 64 is larger than the 16 training images; use 16 or fewer"):
        data.load_animals(s)


def test_presplit_folder_is_used_as_is(make_settings, tmp_path, class_folder):
    root = tmp_path / "pre"
    class_folder(root / "train", per_class=6)
    class_folder(root / "val", per_class=3)
    class_folder(root / "test", per_class=2)
    s = make_settings("04_animals_mobilenetv2_vs_efficientnetv2", data_dir=root, batch_size=4, image_size=32)
    d = data.load_animals(s)
    assert (d.size("train"), d.size("val"), d.size("test")) == (12, 6, 4)
    assert d.class_names == ["blue", "red"]


def test_class_imbalance_is_reported(make_settings, tmp_path, class_folder):
    root = class_folder(tmp_path / "imb", per_class=4)
    for i in range(4, 30):
        write_jpeg(root / "red" / f"extra_{i}.jpg", (200, 30, 30))
    s = make_settings("04_animals_mobilenetv2_vs_efficientnetv2", data_dir=root, batch_size=4, image_size=32)
    d = data.load_animals(s)
    assert d.imbalance() > 5
    assert "class imbalance: the largest training class is" in d.report()


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


# ------------------------------------------------------------------ sources


def test_offline_sources_fail_at_once_naming_where_files_go(make_settings, tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_ROOT", str(tmp_path))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
    full = dict(profile="full", batch_size=4)
    with pytest.raises(DataError, match=r"Cats vs dogs is not in .* cannot be reached; download and unzip"):
        data.load_cats_vs_dogs(make_settings(**full))
    with pytest.raises(DataError, match=r"CIFAR-10 is not on this machine and .* cannot be reached; put"):
        data.load_cifar10(make_settings("01_cifar10_resnet50_vs_mobilenet", **full), 0.3)
    with pytest.raises(DataError, match=r"tf_flowers is not prepared in .* cannot be reached; extract"):
        data.load_tfds_flowers(make_settings("03_tf_flowers_unfreezing_strategies", **full),
                               data_dir=str(tmp_path / "tfds"))
    with pytest.raises(DataError, match=r"No animal images found: put them in .*animals"):
        data.load_animals(make_settings("04_animals_mobilenetv2_vs_efficientnetv2", **full))


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


def test_tf_flowers_through_tfds_mock_data(make_settings, monkeypatch):
    import tensorflow_datasets as tfds

    # mock_data replaces download_and_prepare and as_dataset; let the loader get that far
    monkeypatch.setattr(data, "can_download", lambda url, timeout=3.0: True)
    s = make_settings("03_tf_flowers_unfreezing_strategies", profile="full", image_size=32, batch_size=4)
    with tfds.testing.mock_data(num_examples=60):
        d = data.load_tfds_flowers(s)
        assert sorted(d.class_names) == sorted(data.FLOWER_CLASSES)  # in tfds's own label order
        sizes = (d.size("train"), d.size("val"), d.size("test"))
        assert sum(sizes) == 60 and sizes[0] > sizes[1] > 0 and sizes[2] > 0
        images, labels = data.take_images(d.train, d.size("train"))
        assert images.shape == (sizes[0], 32, 32, 3) and images.dtype == np.uint8
        assert np.array_equal(np.bincount(labels, minlength=5), d.counts["train"])
        assert d.fingerprint == data.load_tfds_flowers(s).fingerprint
        test_a = data.take_images(d.test, 100)[0]
        test_b = data.take_images(d.test, 100)[0]
        assert np.array_equal(test_a, test_b)  # evaluation order never changes
