"""Image folders read the way a careful user expects: what is a class, what is an image, what
is skipped and counted, what stops with one sentence; and a folder with every case at once."""

import io
import struct
import types
import zlib
from collections import Counter

import numpy as np
import pytest
from conftest import jpeg_bytes, write_jpeg
from PIL import Image

from course.predict import find_files
from helpers import datasets, folders, pipelines
from helpers.errors import DataError
from helpers.folders import TOO_LARGE, scan_folder

ANIMALS = "02_animals_mobilenetv2_vs_efficientnetv2"
FIVE = ("cat", "cow", "dog", "elephant", "horse")


def write_bomb(path, width, height):
    """A tiny PNG whose header claims width x height pixels."""
    buffer = io.BytesIO()
    Image.new("L", (1, 1)).save(buffer, format="PNG")
    raw = bytearray(buffer.getvalue())
    raw[16:24] = struct.pack(">II", width, height)  # IHDR width and height
    raw[29:33] = struct.pack(">I", zlib.crc32(bytes(raw[12:29])))  # and its checksum
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(raw))


def write_image(path, colour, size, key):
    """A JPEG of `colour` (as conftest's write_jpeg) with noise seeded by `key`."""
    rng = np.random.default_rng(zlib.crc32(key.encode()))
    noise = rng.integers(-25, 26, size=(size[1], size[0], 3))
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((np.array(colour) + noise).clip(0, 255).astype(np.uint8)).save(path, quality=90)


def write_every_case(root, outside, classes=FIVE):
    """A class-per-subfolder tree with every case a scan meets; returns, per class, the files
    whose pixels must arrive (a link's target in place of the link). The good images' noise
    depends on their path below `root`'s parent, not on the temporary folder's name, so a
    notebook trains on the same pixels in every test run."""
    good = {}
    for k, name in enumerate(classes):
        colour = ((40 * k) % 256, 200 - 30 * k, 90)
        folder = root / name
        files = [folder / f"{name}_{i}.jpg" for i in range(3)] + [
            folder / f"UPPER_{k}.JPG", folder / f"mixed_{k}.Jpeg",
            folder / "nested" / "deeper" / f"inner_{k}.jpg", folder / f"ünïcödé_猫_{k}.jpg",
        ]
        for i, path in enumerate(files):
            write_image(path, colour, (40 + i, 30 + k), path.relative_to(root.parent).as_posix())
        write_image(outside / name / "linked.jpg", colour, (33, 44),
                    "outside/" + (outside / name / "linked.jpg").relative_to(outside.parent).as_posix())
        (folder / "link.jpg").symlink_to(outside / name / "linked.jpg")
        good[name] = files + [outside / name / "linked.jpg"]
        # not data: left out without a word
        (folder / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
        (folder / f"._{name}_0.jpg").write_bytes(b"\x00\x05\x16\x07AppleDouble")
        (folder / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")
        write_jpeg(folder / ".ipynb_checkpoints" / "copy-checkpoint.jpg", colour)
        write_jpeg(folder / "__MACOSX" / "twin.jpg", colour)
        # skipped and counted
        (folder / "gone.jpg").symlink_to(outside / "missing.jpg")
        write_bomb(folder / "bomb.png", 30_000, 30_000)
        (folder / "text.jpg").write_text("not an image")
    for never_a_class in ("__MACOSX", ".ipynb_checkpoints", ".trash"):
        write_jpeg(root / never_a_class / classes[0] / "x.jpg", (1, 2, 3))
    return good


EVERY_CASE_SKIPS = ["link to nothing", "not an image", TOO_LARGE]


# ------------------------------------------------------------------ what a class is


def test_hidden_and_system_folders_are_never_classes(tmp_path, class_folder):
    root = class_folder(tmp_path / "images")
    for name in (".hidden", "__MACOSX", ".ipynb_checkpoints"):
        write_jpeg(root / name / "red" / "x.jpg", (200, 30, 30))
    scan = scan_folder(root)
    assert scan.class_names == ["blue", "red"] and len(scan.paths) == 12 and not scan.skipped


def test_images_in_subfolders_belong_to_their_class(tmp_path, class_folder):
    root = class_folder(tmp_path / "images", per_class=2)
    write_jpeg(root / "red" / "2019" / "summer" / "deep.jpg", (200, 30, 30))
    scan = scan_folder(root)
    assert list(np.bincount(scan.labels)) == [2, 3]
    assert scan.labels[scan.names.index("2019/summer/deep.jpg")] == 1


@pytest.mark.parametrize("content", ["nothing", "only broken files", "only files that are not data"])
def test_a_class_folder_without_a_readable_image_is_named(make_settings, tmp_path, class_folder, content):
    root = class_folder(tmp_path / "animals", classes=FIVE[:4], per_class=5)
    horse = root / "horse"
    horse.mkdir()
    whole = jpeg_bytes()
    if content == "only broken files":
        (horse / "cut.jpg").write_bytes(whole[: len(whole) // 3])
        (horse / "zero.jpg").write_bytes(b"")
    if content == "only files that are not data":
        (horse / ".hidden.jpg").write_bytes(whole)
        (horse / "Thumbs.db").write_bytes(b"\xd0\xcf")
        write_jpeg(horse / "__MACOSX" / "x.jpg", (9, 9, 9))
    with pytest.raises(DataError, match=r"^Class folder .*horse has no readable images; add images to "
                                        r"it or remove it\.$"):
        datasets.animals(make_settings(ANIMALS, data_dir=root, batch_size=4, image_size=32))


def test_folder_errors_say_what_to_do(tmp_path, class_folder):
    with pytest.raises(DataError, match="is not a folder"):
        scan_folder(tmp_path / "missing")
    (tmp_path / "empty_root").mkdir()
    with pytest.raises(DataError, match="has no class subfolders; put each class's images in its own"):
        scan_folder(tmp_path / "empty_root")
    one = class_folder(tmp_path / "one", classes=("only",))
    (one / "__MACOSX").mkdir()
    with pytest.raises(DataError, match=r"has only one class folder \(only/\); a classifier needs"):
        scan_folder(one)
    with pytest.raises(DataError, match="has no cats/ folder; expected one subfolder per class: cats, dogs"):
        scan_folder(class_folder(tmp_path / "three"), expected=("cats", "dogs"))


# ------------------------------------------------------------------ what an image is


def test_files_that_are_not_data_are_left_out_without_a_word(tmp_path, class_folder):
    root = class_folder(tmp_path / "images", per_class=3)
    red = root / "red"
    (red / ".DS_Store").write_bytes(b"\x00\x01")
    (red / "._red_0.jpg").write_bytes(b"\x00\x05\x16\x07")  # AppleDouble twin
    (red / ".hidden.jpg").write_bytes(jpeg_bytes())
    (red / "Thumbs.db").write_bytes(b"\xd0\xcf")
    (red / "desktop.ini").write_text("[.ShellClassInfo]")
    write_jpeg(red / ".ipynb_checkpoints" / "red_0-checkpoint.jpg", (200, 30, 30))
    scan = scan_folder(root)
    assert len(scan.paths) == 6 and scan.skipped == []


def test_image_extensions_match_in_any_case(tmp_path, class_folder):
    root = class_folder(tmp_path / "images", per_class=1)
    for name in ("a.JPG", "b.Jpeg", "c.jpeg", "d.PNG"):
        write_jpeg(root / "red" / name, (200, 30, 30))
    (root / "red" / "e.Txt").write_text("x")
    scan = scan_folder(root)
    assert sorted(scan.names[1:]) == ["a.JPG", "b.Jpeg", "c.jpeg", "d.PNG", "red_0.jpg"]
    assert scan.skipped == [("red/e.Txt", "not an image")]


def test_unicode_names_and_links_to_images_load(tmp_path, class_folder):
    root = class_folder(tmp_path / "images", per_class=2)
    write_jpeg(root / "chaton_été" / "猫 1.jpg", (30, 200, 30))
    write_jpeg(root / "chaton_été" / "ünï.jpg", (30, 200, 30))
    write_jpeg(tmp_path / "elsewhere" / "target.jpg", (200, 30, 30), size=(21, 17))
    (root / "red" / "link.jpg").symlink_to(tmp_path / "elsewhere" / "target.jpg")
    scan = scan_folder(root)
    assert scan.class_names == ["blue", "chaton_été", "red"] and not scan.skipped
    assert {"猫 1.jpg", "ünï.jpg", "link.jpg"} <= set(scan.names)
    images, labels = pipelines.take_images(pipelines.examples_from_files(scan.paths, scan.labels, 16), 7)
    linked = images[scan.names.index("link.jpg")]
    assert images.shape == (7, 16, 16, 3) and linked[..., 0].mean() > linked[..., 2].mean()


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_broken_links_bombs_and_fake_images_are_skipped_and_counted(tmp_path, class_folder):
    root = class_folder(tmp_path / "images", per_class=2)
    blue = root / "blue"
    (blue / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")
    write_bomb(blue / "bomb.png", 40_000, 40_000)  # PIL refuses it on opening
    limit = Image.MAX_IMAGE_PIXELS
    write_bomb(blue / "big.png", limit // 1000 + 1, 1000)  # above PIL's limit, below its refusal
    (blue / "fake.jpg").write_text("<html>an error page saved as .jpg</html>")
    (blue / "notes.txt").write_text("not an image")
    scan = scan_folder(root)
    assert dict(scan.skipped) == {
        "blue/gone.jpg": "link to nothing", "blue/bomb.png": TOO_LARGE, "blue/big.png": TOO_LARGE,
        "blue/fake.jpg": "not an image", "blue/notes.txt": "not an image",
    }
    assert len(scan.paths) == 4


def test_the_scan_never_writes_pils_global_pixel_limit(tmp_path, class_folder, monkeypatch):
    """The scan's threads share PIL's module: none may change Image.MAX_IMAGE_PIXELS."""
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(folders, "MAX_PIXELS", 1000)  # every image here is "very large": converted
    root = class_folder(tmp_path / "images", per_class=6)
    write_bomb(root / "red" / "bomb.png", 40_000, 40_000)
    writes = []

    class Watched(types.ModuleType):
        def __setattr__(self, name, value):
            if name == "MAX_IMAGE_PIXELS":
                writes.append(value)
            super().__setattr__(name, value)

    monkeypatch.setattr(Image, "__class__", Watched)
    scan = scan_folder(root)
    assert scan.converted == 12 and scan.skipped == [("red/bomb.png", TOO_LARGE)]
    assert writes == []


def test_predict_lists_the_files_of_a_folder_by_the_scans_rules(tmp_path):
    root = tmp_path / "photos"
    good = write_every_case(root, tmp_path / "outside", classes=("cat", "dog"))
    listed = find_files([root])
    expected = [p for files in good.values() for p in files if "outside" not in p.parts]
    expected += [root / name / file for name in good for file in ("link.jpg", "bomb.png", "text.jpg")]
    # links are kept as links; a bomb or a fake image is only found out when decoded (check_image)
    assert sorted(listed) == sorted(expected)


def test_a_scan_of_many_files_shows_a_progress_bar(tmp_path, class_folder, monkeypatch, capsys):
    monkeypatch.setattr(folders, "PROGRESS_FROM", 5)
    monkeypatch.setenv("COURSE_HEADLESS", "0")
    scan_folder(class_folder(tmp_path / "images", per_class=3))
    assert "checking the images in images/" in capsys.readouterr().err
    monkeypatch.setattr(folders, "PROGRESS_FROM", 7)
    scan_folder(class_folder(tmp_path / "images", per_class=3))
    assert capsys.readouterr().err == ""


# -------------------------------------------------------------- odd but valid files


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
    scan = scan_folder(odd_folder)
    assert dict(scan.skipped) == {
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
    scan = scan_folder(odd_folder)
    assert scan.converted >= 3  # CMYK, 16-bit and the very large image are converted once
    examples = pipelines.examples_from_files(scan.paths, scan.labels, 32)
    seen = 0
    for _ in range(2):  # two epochs over every file
        for image, _label in pipelines.batches(examples, 4, shuffle_seed=1):
            assert image.shape[1:] == (32, 32, 3)
            seen += int(image.shape[0])
    assert seen == 2 * len(scan.paths)
    images, labels = pipelines.take_images(examples, len(scan.paths))
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
    scan = scan_folder(odd_folder)
    assert ("b/good_0.jpg", "unreadable (permission denied)") in scan.skipped


# --------------------------------------------------------------------- end to end


@pytest.mark.parametrize("splits", [(), ("Train", "valid", "Test"), ("train", "TEST")],
                         ids=["one folder", "pre-split", "train and test only"])
def test_a_folder_with_every_case_yields_exactly_its_classes_and_every_good_image(
        make_settings, tmp_path, splits):
    """What notebook 02 trains on: exactly the class folders, every good image once with its
    pixels and label, nothing else; every bad file counted."""
    root = tmp_path / "animals"
    good: dict[str, list] = {name: [] for name in FIVE}
    for split in splits or ("",):
        for name, files in write_every_case(root / split, tmp_path / "outside" / split).items():
            good[name] += files
    d = datasets.animals(make_settings(ANIMALS, data_dir=root, batch_size=4, image_size=32))
    assert d.class_names == list(FIVE)
    arrived = Counter((image.numpy().tobytes(), d.class_names[int(label)])
                      for split in (d.train, d.val, d.test) for image, label in split)
    expected = Counter()
    for name, files in good.items():
        for image, _ in pipelines.examples_from_files(files, [0] * len(files), 32):
            expected[(image.numpy().tobytes(), name)] += 1
    assert sum(expected.values()) == 40 * max(1, len(splits))
    assert arrived == expected
    assert sorted(reason for _, reason in d.skipped) == sorted(EVERY_CASE_SKIPS * 5 * max(1, len(splits)))
    assert d.converted == 0
    assert all(np.bincount(d.labels[s], minlength=5).min() > 0 for s in ("train", "val", "test"))


@pytest.mark.notebook
def test_notebook_02_trains_on_a_folder_with_every_case_with_exactly_its_classes(tmp_path, make_settings):
    """The same folder, through notebook 02 itself (smoke weights): its records name exactly
    the five classes, count every bad file, and were made on the split of every good image."""
    import papermill

    from helpers import records, settings

    root = tmp_path / "animals"
    write_every_case(root, tmp_path / "outside")
    papermill.execute_notebook(
        str(settings.project_root() / "notebooks" / f"{ANIMALS}.ipynb"), str(tmp_path / "02.ipynb"),
        parameters={"PROFILE": "smoke", "DATA_DIR": str(root), "BATCH_SIZE": 4, "EPOCHS": 10,
                    "RESULTS_DIR": str(tmp_path / "results")},
        cwd=str(settings.project_root() / "notebooks"), progress_bar=False, kernel_name="python3",
    )
    found, skipped = records.load_records(tmp_path / "results")
    expected = datasets.animals(make_settings(ANIMALS, data_dir=root, batch_size=4, image_size=64))
    assert not skipped and {r["model"] for r in found} == {"mobilenet_v2", "efficientnetv2_b0"}
    for record in found:
        assert record["class_names"] == list(FIVE) and record["skipped_files"] == 3 * 5
        assert record["split_fingerprint"] == expected.fingerprint
    assert sum(expected.size(s) for s in ("train", "val", "test")) == 8 * 5  # every good image
