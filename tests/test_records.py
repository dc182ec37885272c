"""The result record: every field, written atomically, loaded with invalid files named; and the
tables that set records beside their article's numbers (the article's figure beside real-data
runs only, a difference for reproductions only), written to results.csv and results.md."""

import json

import pandas as pd
import pytest

from helpers import articles, records, settings
from helpers.errors import CheckFailed
from helpers.logbook import settings_key

CATS_DOGS = "01_cats_vs_dogs_feature_extraction"
ANIMALS = "02_animals_mobilenetv2_vs_efficientnetv2"
UPSAMPLING = "03_cifar10_resnet50_upsampling_finetune"
SMOKE_KIND = "smoke run (sample data, not a reproduction)"
LAPTOP_KIND = "laptop run (real data, reduced settings)"


def _record(make_settings, **values):
    s = make_settings()
    return s, records.new_record(s, "mobilenet_v2", "frozen", test_accuracy=0.9, **values)


def test_new_record_has_every_contract_field(make_settings):
    _, record = _record(make_settings)
    assert set(records.RECORD_FIELDS) <= set(record)
    assert set(records.EXTRA_FIELDS) <= set(record)
    assert record["notebook"] == CATS_DOGS and record["article"] == (
        "Exploring Transfer Learning for Image Classification with MobileNet")
    assert record["profile"] == "smoke" and record["status"] == "ok"
    assert record["test_accuracy"] == 0.9 and record["val_accuracy"] is None
    with pytest.raises(KeyError, match="Not record fields: accuracy"):
        records.new_record(make_settings(), "mobilenet_v2", "frozen", accuracy=1)


def test_every_training_notebook_has_an_article_title_and_the_others_none(make_settings):
    trainers = [n for n in settings.NOTEBOOKS if n not in ("06_results_summary", "07_light_models_on_device")]
    assert sorted(records.ARTICLES) == trainers
    summary = records.new_record(make_settings("06_results_summary"), "x", "y")
    assert summary["article"] is None


def test_write_is_atomic_and_json_safe(make_settings, monkeypatch):
    s, record = _record(make_settings, val_loss=float("nan"))
    path = records.record_path(s, "mobilenet_v2", "layers:5")
    assert path.name == "mobilenet_v2__layers-5.json" and path.parent == s.record_dir
    assert records.record_path(s, "mobilenet_v2", "frozen", "equal-epochs").name == (
        "mobilenet_v2__frozen__equal-epochs.json")
    records.write_record(record, path)
    assert json.loads(path.read_text())["val_loss"] is None
    before = path.read_text()

    def crash(*args, **kwargs):
        raise KeyboardInterrupt  # killed mid-write

    monkeypatch.setattr(records.json, "dump", crash)
    with pytest.raises(KeyboardInterrupt):
        records.write_record({**record, "test_accuracy": 0.1}, path)
    assert path.read_text() == before  # the old record is intact
    monkeypatch.undo()
    leftovers = [p for p in path.parent.iterdir() if p != path]
    assert len(leftovers) == 1 and leftovers[0].name.startswith(".")  # the killed write's temporary file
    found, skipped = records.load_records(path.parent)
    assert len(found) == 1 and not skipped  # a stray temporary file is never read as a record


def test_each_write_has_a_temporary_file_of_its_own(make_settings, monkeypatch):
    """Two runs writing the same record at once never write into the same temporary file."""
    s, record = _record(make_settings)
    path = records.record_path(s, "mobilenet_v2", "frozen")
    moved = []
    replace = records.os.replace

    def spy(source, target):
        moved.append((source, target))
        replace(source, target)

    monkeypatch.setattr(records.os, "replace", spy)
    records.write_record(record, path)
    records.write_record({**record, "test_accuracy": 0.8}, path)
    (first, target), (second, _) = moved
    assert target == path and first != second
    assert first.parent == path.parent and first.name.startswith(".") and second.name.startswith(".")
    assert json.loads(path.read_text())["test_accuracy"] == 0.8
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_loader_skips_and_names_invalid_files(make_settings):
    s, record = _record(make_settings)
    folder = s.results_dir
    records.write_record(record, folder / "nb" / "good.json")
    (folder / "nb" / "broken.json").write_text('{"notebook": "01_cats')
    (folder / "nb" / "list.json").write_text("[1, 2]")
    (folder / "nb" / "partial.json").write_text(json.dumps({"notebook": "x"}))
    found, skipped = records.load_records(folder)
    assert [r["model"] for r in found] == ["mobilenet_v2"]
    reasons = {p.split("/")[-1]: why for p, why in skipped}
    assert set(reasons) == {"broken.json", "list.json", "partial.json"}
    assert "not readable JSON" in reasons["broken.json"]
    assert "does not hold a record" in reasons["list.json"]
    assert "lacks the field(s) article, dataset" in reasons["partial.json"]


def test_loader_skips_the_work_folders_of_runs_under_way(make_settings):
    s, record = _record(make_settings)
    records.write_record(record, s.record_dir / "mobilenet_v2__frozen.json")
    records.write_record({**record, "model": "resnet50"}, s.record_dir / ".work" / "resnet50__frozen" / "state.json")
    (s.record_dir / ".work" / "broken.json").write_text("{")
    found, skipped = records.load_records(s.results_dir)
    assert [r["model"] for r in found] == ["mobilenet_v2"] and skipped == []


def test_article_table_has_every_notebooks_headline():
    table = articles.article_results()
    assert set(table["notebook"]) == set(records.ARTICLES)  # 06 and 07 report nothing of their own
    assert "article" not in table.columns  # the titles are records.ARTICLES
    assert len(table[table["notebook"].str.startswith("04")]) == 14
    row = articles.article_result(CATS_DOGS, "mobilenet_v2", "frozen")
    assert row["value"] == 0.9818 and row["metric"] == "test_accuracy" and row["epochs"] == 10
    assert articles.article_result(UPSAMPLING, "resnet50", "from:100")["metric"] == "val_accuracy"
    assert articles.article_result("05_cifar10_resnet50_vs_mobilenet", "mobilenet", "all")["epochs"] == 100
    assert articles.article_result(CATS_DOGS, "mobilenet_v2", "all") is None


def test_run_kind_calls_only_the_full_profile_with_imagenet_weights_a_reproduction():
    assert articles.run_kind("full", "imagenet") == "reproduction"
    assert articles.run_kind("laptop", "imagenet") == LAPTOP_KIND
    assert articles.run_kind("full", None) == "full settings, random weights (not a reproduction)"
    assert articles.run_kind("laptop", "standin") == "laptop settings, standin weights (not a reproduction)"
    assert articles.run_kind("smoke", "imagenet") == SMOKE_KIND
    assert set(articles.SHOWS_ARTICLE) == {"reproduction", LAPTOP_KIND}


def test_summary_puts_each_record_beside_its_article(make_settings):
    s, record = _record(make_settings, val_accuracy=0.8)
    other = records.new_record(s, "resnet50", "all", test_accuracy=0.5)
    full = make_settings(profile="full")
    reproduction = records.new_record(full, "mobilenet_v2", "frozen", test_accuracy=0.97)
    laptop = records.new_record(make_settings(profile="laptop"), "mobilenet_v2", "frozen", test_accuracy=0.95)
    dry = records.new_record(make_settings(profile="full", weights="none"), "mobilenet_v2", "frozen",
                             test_accuracy=0.5)
    table = articles.summary_table([record, other, reproduction, laptop, dry]).set_index("kind")
    smoke = table.loc[SMOKE_KIND]
    smoke = smoke[smoke["model"] == "mobilenet_v2"].iloc[0]
    assert smoke["our_value"] == 0.9  # the test accuracy, as the article reports
    assert pd.isna(smoke["article_value"]) and pd.isna(smoke["difference"])  # no article figure beside a smoke run
    # pandas' subtraction against Python's of the same two numbers: equal up to rounding
    assert table.loc["reproduction", "difference"] == pytest.approx(0.97 - 0.9818)
    assert table.loc["reproduction", "article_value"] == 0.9818
    assert table.loc[LAPTOP_KIND, "article_value"] == 0.9818  # shown for orientation ...
    assert pd.isna(table.loc[LAPTOP_KIND, "difference"])  # ... but not compared
    dry_row = table.loc["full settings, random weights (not a reproduction)"]
    assert pd.isna(dry_row["article_value"]) and pd.isna(dry_row["difference"])
    assert table[table["model"] == "resnet50"]["article_value"].isna().all()  # the article has no such row
    readers = articles.summary_for_readers(articles.summary_table([record, reproduction]))
    assert list(readers.columns) == ["notebook", "model", "strategy", "profile", "ours", "article",
                                     "difference", "metric", "epochs", "trainable params",
                                     "ms / image", "images / s", "device"]
    assert list(readers["notebook"]) == ["01", "01"] and set(readers["profile"]) == {"smoke run", "reproduction"}


def test_a_variant_is_named_beside_its_strategy_for_readers(make_settings):
    s = make_settings(ANIMALS)
    plain = records.new_record(s, "mobilenet_v2", "frozen", test_accuracy=0.9)
    equal = records.new_record(s, "mobilenet_v2", "frozen", test_accuracy=0.8, variant="equal-epochs")
    readers = articles.summary_for_readers(articles.summary_table([equal, plain]))
    assert list(readers["strategy"]) == ["frozen", "frozen (equal-epochs)"]  # the plain run first
    assert list(readers["ours"]) == [0.9, 0.8]


def test_existing_record_needs_the_same_settings_and_status_ok(make_settings):
    s = make_settings()
    record = records.new_record(s, "mobilenet_v2", "frozen", test_accuracy=0.9, settings_key=settings_key(s))
    path = records.write_record(record, records.record_path(s, "mobilenet_v2", "frozen"))
    assert records.existing_record(path, settings_key(s)) is not None
    assert settings_key(make_settings(image_size=96)) != settings_key(s)
    assert records.existing_record(path, settings_key(make_settings(epochs=3))) is None
    records.write_record({**record, "status": "failed"}, path)
    assert records.existing_record(path, settings_key(s)) is None
    path.write_text("{")
    assert records.existing_record(path, settings_key(s)) is None
    assert records.existing_record(path.with_name("absent.json"), settings_key(s)) is None


def test_check_record_wants_every_field_and_above_chance(make_settings):
    s, record = _record(make_settings)
    path = records.write_record(record, records.record_path(s, "mobilenet_v2", "frozen"))
    with pytest.raises(CheckFailed, match="has no value for"):
        records.check_record(path)
    full = {k: 1 for k in records.RECORD_FIELDS} | {"status": "ok", "title": "t", "test_accuracy": 0.55}
    records.write_record(full, path)
    with pytest.raises(CheckFailed, match="not clearly above chance"):
        records.check_record(path, num_classes=2, profile="smoke")
    assert records.check_record(path, num_classes=2, profile="full")["test_accuracy"] == 0.55
    records.write_record({**full, "git_commit": None}, path)  # outside a git checkout
    assert records.check_record(path)["git_commit"] is None
    records.write_record({**full, "status": "failed", "error": "NaN loss"}, path)
    with pytest.raises(CheckFailed, match="marked failed: NaN loss"):
        records.check_record(path)


def test_comparison_puts_extra_columns_on_their_own_rows(make_settings):
    s = make_settings(ANIMALS)
    # Given in the opposite order to the table's (sorted by model).
    given = [records.new_record(s, "mobilenet_v2", "frozen", test_accuracy=0.9, total_params=2_264_389,
                                title="MobileNetV2 / frozen"),
             records.new_record(s, "efficientnetv2_b0", "frozen", test_accuracy=0.8, total_params=5_925_717,
                                title="EfficientNetV2-B0 / frozen")]
    table = articles.comparison(given, extra={"total params": lambda r: r["total_params"]})
    assert list(table["configuration"]) == [given[1]["title"], given[0]["title"]]
    assert list(table["ours"]) == [0.8, 0.9]
    assert list(table["total params"]) == [5_925_717, 2_264_389]


def test_comparison_shows_the_article_beside_real_data_only(make_settings):
    smoke = records.new_record(make_settings(), "mobilenet_v2", "frozen", test_accuracy=0.9, title="smoke")
    laptop = records.new_record(make_settings(profile="laptop"), "mobilenet_v2", "frozen", test_accuracy=0.95,
                                title="laptop")
    real = records.new_record(make_settings(profile="full"), "mobilenet_v2", "frozen", test_accuracy=0.97,
                              title="full")
    table = articles.comparison([smoke, laptop, real]).set_index("profile")
    smoke_row = table.loc[SMOKE_KIND]
    assert smoke_row["article"] == "-" and smoke_row["difference"] == "-"
    assert smoke_row["how the article ran it"] == "-" and smoke_row["article epochs"] == "-"
    laptop_row = table.loc[LAPTOP_KIND]
    assert laptop_row["article"] == 0.9818 and laptop_row["difference"] == "n/a (reduced settings)"
    assert table.loc["reproduction", "difference"] == pytest.approx(0.97 - 0.9818, abs=1e-4)  # rounded to 4 places
    assert table.loc["reproduction", "metric"] == "test accuracy"


def test_the_article_row_of_notebook_03_says_how_the_article_ran_it(make_settings):
    s = make_settings(UPSAMPLING, profile="full")
    record = records.new_record(s, "resnet50", "from:100", val_accuracy=0.93, test_accuracy=0.92)
    row = articles.comparison([record]).iloc[0]
    assert row["how the article ran it"] == "every layer trained in both phases (fine_tune_at never applied)"


def test_epochs_read_frozen_plus_fine_tuning_on_both_sides(make_settings):
    s = make_settings(UPSAMPLING, profile="full")
    record = records.new_record(s, "resnet50", "from:100", val_accuracy=0.93, test_accuracy=0.92)
    record.update(epochs=5, fine_tune_epochs=5)
    row = articles.comparison([record]).iloc[0]
    assert row["epochs"] == "5 + 5" and row["article epochs"] == "5 + 4"  # read after the 4th
    assert row["article"] == 0.9402 and row["ours"] == 0.93  # validation accuracy, as the article
    assert row["metric"] == "validation accuracy"
    readers = articles.summary_for_readers(articles.summary_table([record])).iloc[0]
    assert readers["epochs"] == "5 + 5"
    record.update(fine_tune_epochs=0)
    assert articles.comparison([record]).iloc[0]["epochs"] == "5"


def test_write_summary_writes_every_column_and_a_table_per_profile(make_settings, tmp_path):
    smoke = records.new_record(make_settings(), "mobilenet_v2", "frozen", test_accuracy=0.9123)
    real = records.new_record(make_settings(profile="full"), "mobilenet_v2", "frozen", test_accuracy=0.9712)
    table = articles.summary_table([smoke, real])
    csv_path, md_path = articles.write_summary(table, tmp_path / "reports")
    assert (csv_path.name, md_path.name) == ("results.csv", "results.md")
    assert sorted(p.name for p in (tmp_path / "reports").iterdir()) == ["results.csv", "results.md"]
    written = pd.read_csv(csv_path)
    assert list(written.columns) == list(table.columns) and len(written) == 2
    assert sorted(written["test_accuracy"]) == [0.9123, 0.9712]

    text = md_path.read_text()
    full_part, smoke_part = text.split("## The smoke profile")
    assert full_part.startswith("## The full profile\n\n") and "## The laptop profile" not in text
    assert "0.9712" in full_part and "0.9123" not in full_part
    assert "0.9123" in smoke_part and "0.9712" not in smoke_part
    header = next(line for line in smoke_part.splitlines() if line.startswith("|"))
    assert [cell.strip() for cell in header.strip("|").split("|")] == list(
        articles.summary_for_readers(table).columns)
    smoke_row = next(line for line in smoke_part.splitlines() if "0.9123" in line)
    assert "| -" in smoke_row  # no article figure beside the smoke run: a dash, not "nan"
    assert "nan" not in text.lower()


def test_write_summary_without_records_says_so(tmp_path):
    _, md_path = articles.write_summary(articles.summary_table([]), tmp_path)
    assert md_path.read_text() == "No records yet.\n"
