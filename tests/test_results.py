"""The result record: every field, written atomically, loaded with invalid files named."""

import json

import pandas as pd
import pytest

from helpers import config, results


def _record(make_settings, **values):
    s = make_settings()
    return s, results.new_record(s, "mobilenet_v2", "frozen", test_accuracy=0.9, **values)


def test_new_record_has_every_contract_field(make_settings):
    _, record = _record(make_settings)
    assert set(results.RECORD_FIELDS) <= set(record)
    assert record["notebook"] == "05_cats_vs_dogs_feature_extraction" and record["article"] == (
        "Exploring Transfer Learning for Image Classification with MobileNet")
    assert record["profile"] == "smoke" and record["status"] == "ok"
    with pytest.raises(KeyError, match="Not record fields: accuracy"):
        results.new_record(make_settings(), "mobilenet_v2", "frozen", accuracy=1)


def test_write_is_atomic_and_json_safe(make_settings, tmp_path, monkeypatch):
    s, record = _record(make_settings, val_loss=float("nan"))
    path = results.record_path(s, "mobilenet_v2", "layers:5")
    assert path.name == "mobilenet_v2__layers-5.json"
    results.write_record(record, path)
    assert json.loads(path.read_text())["val_loss"] is None
    before = path.read_text()

    def crash(*args, **kwargs):
        raise KeyboardInterrupt  # killed mid-write

    monkeypatch.setattr(results.json, "dump", crash)
    with pytest.raises(KeyboardInterrupt):
        results.write_record({**record, "test_accuracy": 0.1}, path)
    assert path.read_text() == before  # the old record is intact
    monkeypatch.undo()
    leftovers = [p for p in path.parent.iterdir() if p.name.startswith(".")]
    records, skipped = results.load_records(path.parent)
    assert len(records) == 1 and not skipped  # a stray temp file is never read as a record
    assert all(p.suffix == ".tmp" for p in leftovers)


def test_loader_skips_and_names_invalid_files(make_settings, tmp_path):
    s, record = _record(make_settings)
    folder = s.results_dir
    results.write_record(record, folder / "nb" / "good.json")
    (folder / "nb" / "broken.json").write_text('{"notebook": "05_cats')
    (folder / "nb" / "list.json").write_text("[1, 2]")
    (folder / "nb" / "partial.json").write_text(json.dumps({"notebook": "x"}))
    records, skipped = results.load_records(folder)
    assert [r["model"] for r in records] == ["mobilenet_v2"]
    reasons = {p.split("/")[-1]: why for p, why in skipped}
    assert set(reasons) == {"broken.json", "list.json", "partial.json"}
    assert "not readable JSON" in reasons["broken.json"]
    assert "lacks the field(s) article, dataset" in reasons["partial.json"]


def test_article_table_has_every_notebooks_headline():
    table = results.article_results()
    for notebook in config.NOTEBOOKS:
        if notebook in config.READS_RECORDS:
            continue
        assert notebook in set(table["notebook"]), notebook
    assert len(table[table["notebook"].str.startswith("03")]) == 14
    row = results.article_result("05_cats_vs_dogs_feature_extraction", "mobilenet_v2", "frozen")
    assert row["value"] == 0.9818 and row["metric"] == "test_accuracy"
    assert results.article_result("02_cifar10_resnet50_upsampling_finetune", "resnet50", "from:100")["metric"] == "val_accuracy"
    assert results.article_result("01_cifar10_resnet50_vs_mobilenet", "mobilenet", "all")["epochs"] == 100


def test_summary_puts_each_record_beside_its_article(make_settings):
    s, record = _record(make_settings, val_accuracy=0.8)
    other = results.new_record(s, "resnet50", "all", test_accuracy=0.5)
    full = make_settings(profile="full")
    reproduction = results.new_record(full, "mobilenet_v2", "frozen", test_accuracy=0.97)
    dry = results.new_record(make_settings(profile="full", weights="none"), "mobilenet_v2", "frozen",
                             test_accuracy=0.5)
    table = results.summary_table([record, other, reproduction, dry]).set_index("kind")
    smoke = table.loc["smoke run (sample data, not a reproduction)"]
    smoke = smoke[smoke["model"] == "mobilenet_v2"].iloc[0]
    assert smoke["our_value"] == 0.9  # never an article figure beside a smoke run
    assert pd.isna(smoke["article_value"]) and pd.isna(smoke["difference"])
    assert table.loc["reproduction", "difference"] == pytest.approx(0.97 - 0.9818)
    assert pd.isna(table.loc["full settings, random weights (not a reproduction)", "difference"])
    assert table[table["model"] == "resnet50"]["article_value"].isna().all()
    readers = results.summary_for_readers(results.summary_table([record, reproduction]))
    assert list(readers.columns) == ["notebook", "model", "strategy", "profile", "ours", "article",
                                     "difference", "metric", "epochs", "trainable params",
                                     "ms / image", "images / s", "device"]
    assert list(readers["notebook"]) == ["05", "05"] and set(readers["profile"]) == {"smoke run", "reproduction"}


def test_existing_record_needs_the_same_settings_and_status_ok(make_settings):
    from helpers.experiment import settings_key

    s = make_settings()
    record = results.new_record(s, "mobilenet_v2", "frozen", test_accuracy=0.9, settings_key=settings_key(s))
    path = results.write_record(record, results.record_path(s, "mobilenet_v2", "frozen"))
    assert results.existing_record(path, settings_key(s)) is not None
    assert settings_key(make_settings(image_size=96)) != settings_key(s)
    assert results.existing_record(path, settings_key(make_settings(epochs=3))) is None
    results.write_record({**record, "status": "failed"}, path)
    assert results.existing_record(path, settings_key(s)) is None


def test_check_record_wants_every_field_and_above_chance(make_settings):
    s, record = _record(make_settings)
    path = results.write_record(record, results.record_path(s, "mobilenet_v2", "frozen"))
    with pytest.raises(AssertionError, match="has no value for"):
        results.check_record(path)
    full = {k: 1 for k in results.RECORD_FIELDS} | {"status": "ok", "title": "t", "test_accuracy": 0.55}
    results.write_record(full, path)
    with pytest.raises(AssertionError, match="not clearly above chance"):
        results.check_record(path, num_classes=2, profile="smoke")
    assert results.check_record(path, num_classes=2, profile="full")["test_accuracy"] == 0.55


def test_comparison_puts_extra_columns_on_their_own_rows(make_settings):
    s = make_settings(notebook="04_animals_mobilenetv2_vs_efficientnetv2")
    # Given in the opposite order to the table's (sorted by model).
    records = [results.new_record(s, "mobilenet_v2", "frozen", test_accuracy=0.9, total_params=2_264_389,
                                  title="MobileNetV2 / frozen"),
               results.new_record(s, "efficientnetv2_b0", "frozen", test_accuracy=0.8, total_params=5_925_717,
                                  title="EfficientNetV2-B0 / frozen")]
    table = results.comparison(records, extra={"total params": lambda r: r["total_params"]})
    assert list(table["configuration"]) == [records[1]["title"], records[0]["title"]]
    assert list(table["ours"]) == [0.8, 0.9]
    assert list(table["total params"]) == [5_925_717, 2_264_389]
    with pytest.raises(ValueError, match="share a title"):
        results.comparison([records[0], dict(records[0])], extra={"x": lambda r: 1})


def test_comparison_shows_the_article_beside_real_data_only(make_settings):
    smoke = results.new_record(make_settings(), "mobilenet_v2", "frozen", test_accuracy=0.9)
    laptop = results.new_record(make_settings(profile="laptop"), "mobilenet_v2", "frozen", test_accuracy=0.95)
    real = results.new_record(make_settings(profile="full"), "mobilenet_v2", "frozen", test_accuracy=0.97)
    table = results.comparison([smoke, laptop, real]).set_index("profile")
    smoke_row = table.loc["smoke run (sample data, not a reproduction)"]
    assert smoke_row["article"] == "-" and smoke_row["difference"] == "-"
    laptop_row = table.loc["laptop run (real data, reduced settings)"]
    assert laptop_row["article"] == 0.9818 and laptop_row["difference"] == "n/a (reduced settings)"
    assert table.loc["reproduction", "difference"] == pytest.approx(0.97 - 0.9818, abs=1e-4)


def test_the_article_row_of_notebook_02_says_how_the_article_ran_it(make_settings):
    s = make_settings(notebook="02_cifar10_resnet50_upsampling_finetune", profile="full")
    record = results.new_record(s, "resnet50", "from:100", val_accuracy=0.93, test_accuracy=0.92)
    row = results.comparison([record]).iloc[0]
    assert row["how the article ran it"] == "every layer trained in both phases (fine_tune_at never applied)"


def test_epochs_read_frozen_plus_fine_tuning_on_both_sides(make_settings):
    s = make_settings(notebook="02_cifar10_resnet50_upsampling_finetune", profile="full")
    record = results.new_record(s, "resnet50", "from:100", val_accuracy=0.93, test_accuracy=0.92)
    record.update(epochs=5, fine_tune_epochs=5)
    row = results.comparison([record]).iloc[0]
    assert row["epochs"] == "5 + 5" and row["article epochs"] == "5 + 4"  # read after the 4th
    assert row["article"] == 0.9402 and row["ours"] == 0.93  # validation accuracy, as the article
    readers = results.summary_for_readers(results.summary_table([record])).iloc[0]
    assert readers["epochs"] == "5 + 5"
