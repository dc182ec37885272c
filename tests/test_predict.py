"""Predictions on your own images (`python -m course.predict`): one row per file, broken files
reported, never a crash; bad input is one sentence and exit code 2."""

import contextlib
import io
import os
import subprocess
import sys

import keras
import numpy as np
import pandas as pd
import pytest
from conftest import write_jpeg

from course import predict
from helpers import records, settings
from helpers.layers import InferenceMode

CATS_DOGS = ["cats", "dogs"]
FLOWERS = ["daisy", "dandelion", "roses", "sunflowers", "tulips"]


def _classifier(outputs: int, size: int = 32) -> keras.Model:
    """A small image classifier shaped like the notebooks' (raw pixels in, a base called in
    inference mode, pooled features, a dense head named 'logits')."""
    keras.utils.set_random_seed(0)
    base = keras.Sequential([keras.Input((size, size, 3)), keras.layers.Conv2D(4, 3),
                             keras.layers.BatchNormalization(), keras.layers.ReLU()], name="base")
    inputs = keras.Input((size, size, 3))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs)
    x = InferenceMode(base, name="frozen_base")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(outputs, name="logits")(x))


def _save(model, folder, name, class_names=None):
    """Save a model as a notebook does, with a minimal record beside it."""
    path = folder / f"{name}.keras"
    model.save(path)
    if class_names is not None:
        config = settings.resolve("01_cats_vs_dogs_feature_extraction", profile="smoke",
                                  image_size=32, results_dir=folder)
        record = records.new_record(config, "mobilenet_v2", "frozen", class_names=class_names,
                                    model_file=path.name)
        records.write_record(record, path.with_suffix(".json"))
    return path


def _fixed_head(model, bias):
    """Logits that ignore the image: the head's kernel zero, its bias `bias`."""
    head = model.get_layer("logits")
    kernel, _ = head.get_weights()
    head.set_weights([np.zeros_like(kernel), np.asarray(bias, np.float32)])


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """Small models saved with records (binary, five classes), one without, and one whose record
    names the wrong number of classes."""
    folder = tmp_path_factory.mktemp("models")
    binary = _classifier(1)
    _fixed_head(binary, [0.8])
    five = _classifier(5)
    _fixed_head(five, [0.0, 2.0, -1.0, 1.0, 0.5])
    return {
        "binary": _save(binary, folder, "binary", CATS_DOGS),
        "five": _save(five, folder, "five", FLOWERS),
        "no_record": _save(five, folder, "no_record"),
        "wrong_record": _save(five, folder, "wrong_record", CATS_DOGS),
    }


@pytest.fixture
def photos(tmp_path):
    """Good images of two classes (one in a nested folder), broken files and junk."""
    root = tmp_path / "photos"
    for i in range(2):
        write_jpeg(root / "cats" / f"cat_{i}.jpg", (200, 40, 40), size=(50, 40))
        write_jpeg(root / "dogs" / f"dog_{i}.jpg", (40, 40, 200), size=(30, 45))
    write_jpeg(root / "dogs" / "nested" / "dog_2.jpg", (40, 40, 200))
    whole = (root / "cats" / "cat_0.jpg").read_bytes()
    (root / "truncated.jpg").write_bytes(whole[: len(whole) // 2])
    (root / "empty.jpg").write_bytes(b"")
    (root / "notes.jpg").write_text("not a picture")
    (root / ".DS_Store").write_bytes(b"\0\1junk")
    (root / "cats" / "._cat_0.jpg").write_bytes(b"\0\5resource fork")
    return root


GOOD = {"cat_0.jpg", "cat_1.jpg", "dog_0.jpg", "dog_1.jpg", "dog_2.jpg"}
BROKEN = {"truncated.jpg", "empty.jpg", "notes.jpg"}


def _by_name(table):
    return {os.path.basename(f): row for f, row in zip(table["file"], table.to_dict("records"))}


def test_one_row_per_candidate_file_and_broken_ones_have_a_problem(saved, photos):
    model, names = predict.load_model(saved["binary"])
    table = predict.predict_paths(model, names, [photos])
    rows = _by_name(table)
    assert set(rows) == GOOD | BROKEN  # junk left out, the nested folder searched
    assert list(table.columns) == ["file", "prediction", "probability", "problem"]
    assert os.path.join("dogs", "nested", "dog_2.jpg") in set(table["file"])  # shown inside the folder given
    for name in BROKEN:
        assert rows[name]["problem"] and pd.isna(rows[name]["prediction"]) and pd.isna(rows[name]["probability"])
    assert rows["empty.jpg"]["problem"] == "empty file"
    for name in GOOD:
        assert rows[name]["problem"] == "" and rows[name]["prediction"] in CATS_DOGS


def test_binary_probability_is_the_sigmoid_of_the_single_logit(saved, photos):
    model, names = predict.load_model(saved["binary"])
    assert names == CATS_DOGS  # from the record beside the model
    table = predict.predict_paths(model, names, [photos / "cats"])
    assert (table["prediction"] == "dogs").all()  # a logit of 0.8 favours class_names[1]
    # the model's float32 sigmoid against numpy's float64 one: equal to float32 precision
    np.testing.assert_allclose(table["probability"], 1 / (1 + np.exp(-0.8)), rtol=1e-5)
    _fixed_head(model, [-0.8])
    table = predict.predict_paths(model, names, [photos / "cats"])
    assert (table["prediction"] == "cats").all()
    np.testing.assert_allclose(table["probability"], 1 / (1 + np.exp(-0.8)), rtol=1e-5)


def test_five_class_model_lists_its_top_three(saved, photos):
    model, names = predict.load_model(saved["five"])
    assert names == FLOWERS
    table = predict.predict_paths(model, names, [photos / "dogs" / "dog_0.jpg"], top=3)
    assert list(table.columns) == ["file", "prediction", "probability", "top", "problem"]
    row = table.iloc[0]
    softmax = np.exp([0.0, 2.0, -1.0, 1.0, 0.5]) / np.exp([0.0, 2.0, -1.0, 1.0, 0.5]).sum()
    assert row["prediction"] == "dandelion"
    # float32 logits through float64 softmax against numpy's from the exact biases
    assert row["probability"] == pytest.approx(softmax[1], rel=1e-5)
    assert row["top"] == f"dandelion: {softmax[1]:.3f}, sunflowers: {softmax[3]:.3f}, tulips: {softmax[4]:.3f}"
    assert list(predict.predict_paths(model, names, [photos / "dogs" / "dog_0.jpg"], top=0).columns) == [
        "file", "prediction", "probability", "problem"]


def test_without_a_record_the_classes_are_numbered_and_that_is_said(saved, capsys):
    _, names = predict.load_model(saved["no_record"])
    assert names == [f"class {k}" for k in range(5)]
    assert "no_record.json is not beside the model" in capsys.readouterr().err
    _, names = predict.load_model(saved["wrong_record"])  # two names for five outputs
    assert names == [f"class {k}" for k in range(5)]
    assert "wrong_record.json does not name its 5 classes" in capsys.readouterr().err


def test_images_are_decoded_like_training_in_rgb(tmp_path):
    from PIL import Image

    Image.new("L", (64, 48), 120).save(tmp_path / "gray.png")
    Image.new("CMYK", (20, 20), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg")
    Image.new("RGB", (10, 10), (10, 200, 30)).save(tmp_path / "small.png")
    images, problems = predict.load_images(
        [tmp_path / "gray.png", tmp_path / "cmyk.jpg", tmp_path / "small.png"], 16)
    assert problems == [None, None, None]
    assert images.shape == (3, 16, 16, 3) and images.dtype == np.uint8
    assert (images[0] == 120).all()  # grayscale to three equal channels
    assert images[1, 8, 8, 0] > 200 and images[1, 8, 8, 1] < 60  # CMYK red stays red
    assert (images[2] == (10, 200, 30)).all()  # upscaled bilinear, a flat colour stays flat


def test_cli_prints_the_table_and_writes_the_csv(saved, photos, tmp_path):
    """The command itself, in a fresh process: the saved model's InferenceMode layer loads there."""
    out = tmp_path / "predictions.csv"
    done = subprocess.run(
        [sys.executable, "-m", "course.predict", str(saved["five"]), str(photos), "--csv", str(out)],
        capture_output=True, text=True, env={**os.environ, "COURSE_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr
    assert "dandelion: " in done.stdout and "truncated or corrupt image" in done.stdout
    assert "3 of 8 files could not be read" in done.stdout and f"wrote {out}" in done.stdout
    table = pd.read_csv(out, keep_default_na=False)
    assert len(table) == len(GOOD | BROKEN)
    assert set(table["problem"]) == {"", "empty file", "not an image", "truncated or corrupt image"}


def _one_sentence(text):
    lines = text.strip().splitlines()
    return len(lines) == 1 and lines[0].endswith(".") and "Traceback" not in text


class _Tee(io.StringIO):
    """stderr: kept apart, and copied into the stream that holds both, in order."""

    def __init__(self, both):
        super().__init__()
        self.both = both

    def write(self, text):
        self.both.write(text)
        return super().write(text)


def test_a_csv_in_a_folder_that_does_not_exist_comes_after_the_table(saved, photos, tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_HEADLESS", "1")  # no progress bar on stderr
    target = tmp_path / "no such folder" / "predictions.csv"
    both = io.StringIO()  # stdout and stderr in the order they were written
    err = _Tee(both)
    with contextlib.redirect_stdout(both), contextlib.redirect_stderr(err):
        code = predict.main([str(saved["binary"]), str(photos / "cats"), "--csv", str(target)])
    assert code == 2
    *table, sentence = both.getvalue().strip().splitlines()
    header = next(k for k, line in enumerate(table) if "prediction" in line)  # the table was shown first
    assert table[header].split() == ["file", "prediction", "probability", "problem"]
    assert [line.split()[0] for line in table[header + 1:]] == ["cat_0.jpg", "cat_1.jpg"]
    assert sentence.startswith(f"Cannot write {target}") and sentence.endswith(
        "; give a path in a folder that exists.")
    assert _one_sentence(err.getvalue()) and err.getvalue().strip() == sentence  # on stderr, once
    assert not target.parent.exists()


def test_missing_path_is_one_sentence_and_exit_code_2(saved, tmp_path, capsys):
    missing = tmp_path / "no such folder"
    assert predict.main([str(saved["binary"]), str(missing)]) == 2
    err = capsys.readouterr().err
    assert _one_sentence(err) and str(missing) in err


def test_a_folder_without_files_is_one_sentence_and_exit_code_2(saved, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert predict.main([str(saved["binary"]), str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert _one_sentence(err) and "No files found" in err


def test_a_file_that_is_no_model_is_one_sentence_and_exit_code_2(photos, tmp_path, capsys):
    fake = tmp_path / "model.keras"
    fake.write_text("not a model")
    assert predict.main([str(fake), str(photos)]) == 2
    err = capsys.readouterr().err
    assert _one_sentence(err) and str(fake) in err
    assert predict.main([str(tmp_path / "absent.keras"), str(photos)]) == 2
    assert _one_sentence(capsys.readouterr().err)


def test_a_model_that_is_no_image_classifier_is_one_sentence_and_exit_code_2(photos, tmp_path, capsys):
    inputs = keras.Input((8,))
    path = tmp_path / "tabular.keras"
    keras.Model(inputs, keras.layers.Dense(2)(inputs)).save(path)
    assert predict.main([str(path), str(photos)]) == 2
    err = capsys.readouterr().err
    assert _one_sentence(err) and "is not an image classifier" in err
