"""Predictions on your own images: one row per file, broken files reported, never a crash."""

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from conftest import write_jpeg

from helpers import config, models, predict, results

CATS_DOGS = ["cats", "dogs"]
FLOWERS = ["daisy", "dandelion", "roses", "sunflowers", "tulips"]


def _save(model, folder, name, class_names=None):
    """Save a model as a notebook does, with a minimal record beside it."""
    path = folder / f"{name}.keras"
    model.save(path)
    if class_names is not None:
        settings = config.resolve("05_cats_vs_dogs_feature_extraction", profile="smoke",
                                  image_size=32, results_dir=folder)
        record = results.new_record(settings, "mobilenet_v2", "frozen", class_names=class_names,
                                    model_file=path.name)
        results.write_record(record, path.with_suffix(".json"))
    return path


def _fixed_head(model, bias):
    """Logits that ignore the image: the head's kernel zero, its bias `bias`."""
    head = model.get_layer("logits")
    kernel, _ = head.get_weights()
    head.set_weights([np.zeros_like(kernel), np.asarray(bias, np.float32)])


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """Two small models saved with records (binary, five classes) and one without."""
    folder = tmp_path_factory.mktemp("models")
    binary, _ = models.gap_classifier("mobilenet_v2", 32, 2)
    _fixed_head(binary, [0.8])
    five, _ = models.gap_classifier("mobilenet_v2", 32, 5)
    _fixed_head(five, [0.0, 2.0, -1.0, 1.0, 0.5])
    return {
        "binary": _save(binary, folder, "binary", CATS_DOGS),
        "five": _save(five, folder, "five", FLOWERS),
        "no_record": _save(five, folder, "no_record"),
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
    for name in BROKEN:
        assert rows[name]["problem"] and pd.isna(rows[name]["prediction"])
    assert rows["empty.jpg"]["problem"] == "empty file"
    for name in GOOD:
        assert rows[name]["problem"] == "" and rows[name]["prediction"] in CATS_DOGS


def test_binary_probability_is_the_sigmoid_of_the_single_logit(saved, photos):
    model, names = predict.load_model(saved["binary"])
    assert names == CATS_DOGS  # from the record beside the model
    table = predict.predict_paths(model, names, [photos / "cats"])
    assert (table["prediction"] == "dogs").all()  # a logit of 0.8 favours class_names[1]
    np.testing.assert_allclose(table["probability"], 1 / (1 + np.exp(-0.8)), rtol=1e-5)
    _fixed_head(model, [-0.8])
    table = predict.predict_paths(model, names, [photos / "cats"])
    assert (table["prediction"] == "cats").all()
    np.testing.assert_allclose(table["probability"], 1 / (1 + np.exp(-0.8)), rtol=1e-5)


def test_five_class_model_lists_its_top_three(saved, photos):
    model, names = predict.load_model(saved["five"])
    assert names == FLOWERS
    table = predict.predict_paths(model, names, [photos / "dogs" / "dog_0.jpg"], top=3)
    row = table.iloc[0]
    softmax = np.exp([0.0, 2.0, -1.0, 1.0, 0.5]) / np.exp([0.0, 2.0, -1.0, 1.0, 0.5]).sum()
    assert row["prediction"] == "dandelion"
    assert row["probability"] == pytest.approx(softmax[1], rel=1e-5)
    assert row["top"] == f"dandelion: {softmax[1]:.3f}, sunflowers: {softmax[3]:.3f}, tulips: {softmax[4]:.3f}"


def test_without_a_record_the_classes_are_numbered_and_that_is_said(saved, capsys):
    _, names = predict.load_model(saved["no_record"])
    assert names == [f"class {k}" for k in range(5)]
    assert "no_record.json is not beside the model" in capsys.readouterr().err


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
    out = tmp_path / "predictions.csv"
    done = subprocess.run(
        [sys.executable, "-m", "helpers.predict", str(saved["five"]), str(photos), "--csv", str(out)],
        capture_output=True, text=True, env={**os.environ, "COURSE_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr
    assert "dandelion: " in done.stdout and "truncated or corrupt image" in done.stdout
    table = pd.read_csv(out, keep_default_na=False)
    assert len(table) == len(GOOD | BROKEN)
    assert set(table["problem"]) == {"", "empty file", "not an image", "truncated or corrupt image"}


def _one_sentence(text):
    lines = text.strip().splitlines()
    return len(lines) == 1 and lines[0].endswith(".") and "Traceback" not in text


def test_missing_path_is_one_sentence_and_exit_code_2(saved, tmp_path, capsys):
    missing = tmp_path / "no such folder"
    assert predict.main([str(saved["binary"]), str(missing)]) == 2
    err = capsys.readouterr().err
    assert _one_sentence(err) and str(missing) in err


def test_a_file_that_is_no_model_is_one_sentence_and_exit_code_2(photos, tmp_path, capsys):
    fake = tmp_path / "model.keras"
    fake.write_text("not a model")
    assert predict.main([str(fake), str(photos)]) == 2
    err = capsys.readouterr().err
    assert _one_sentence(err) and str(fake) in err
    assert predict.main([str(tmp_path / "absent.keras"), str(photos)]) == 2
    assert _one_sentence(capsys.readouterr().err)


def test_write_examples_names_files_by_class(tmp_path):
    import tensorflow as tf

    images = np.stack([np.full((8, 8, 3), 40 * k, np.uint8) for k in range(4)])
    examples = tf.data.Dataset.from_tensor_slices((images, np.array([0, 1, 1, 0], np.int32)))
    folder = predict.write_examples(examples, tmp_path / "examples", 3, ["cats", "big dogs"])
    assert sorted(p.name for p in folder.iterdir()) == ["big_dogs_1.jpg", "big_dogs_2.jpg", "cats_0.jpg"]
    loaded, problems = predict.load_images([folder / "big_dogs_2.jpg"], 8)
    assert problems == [None] and abs(int(loaded[0, 4, 4, 0]) - 80) <= 2
