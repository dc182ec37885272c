"""The runner: every notebook runs even when one fails; failures are reported; an index links all."""

import json
import os
import subprocess
import sys

import nbformat
import pandas as pd
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from helpers import config, results, run


def _notebook(path, body):
    nb = new_notebook()
    params = new_code_cell('PROFILE = "full"\nGREETING = "hello"')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


def test_a_failing_notebook_is_reported_and_the_others_still_run(tmp_path, monkeypatch, capsys):
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    _notebook(notebooks / "03_tf_flowers_unfreezing_strategies.ipynb",
              'raise ValueError("this notebook is broken on purpose")')
    _notebook(notebooks / "05_cats_vs_dogs_feature_extraction.ipynb",
              'print(f"{GREETING} from {PROFILE}")')
    _notebook(notebooks / "99_not_part_of_the_course.ipynb", "print('never run')")
    monkeypatch.setenv("COURSE_ROOT", str(tmp_path))

    code = run.main(["--profile", "smoke", "--no-progress", "-p", "GREETING", "hi"])

    assert code == 1
    out = capsys.readouterr().out
    assert "[1/2] 03_tf_flowers_unfreezing_strategies: FAILED - ValueError: this notebook is broken on purpose" in out
    assert "[2/2] 05_cats_vs_dogs_feature_extraction: ok" in out
    assert "1 of 2 notebooks failed" in out
    folder = tmp_path / "reports" / "smoke"
    executed = nbformat.read(folder / "05_cats_vs_dogs_feature_extraction.ipynb", 4)
    printed = [o["text"] for c in executed.cells for o in c.get("outputs", []) if o.get("name") == "stdout"]
    assert printed == ["hi from smoke\n"]  # the parameters were injected
    for stem in ("03_tf_flowers_unfreezing_strategies", "05_cats_vs_dogs_feature_extraction"):
        assert (folder / f"{stem}.html").stat().st_size > 1000
    index = (folder / "index.html").read_text()
    assert "05_cats_vs_dogs_feature_extraction.html" in index
    assert "failed: ValueError: this notebook is broken on purpose" in index
    assert "99_not_part" not in index


def test_only_runs_a_subset_and_an_empty_match_is_an_error(tmp_path, monkeypatch, capsys):
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    _notebook(notebooks / "05_cats_vs_dogs_feature_extraction.ipynb", "x = 1")
    monkeypatch.setenv("COURSE_ROOT", str(tmp_path))
    assert run.main(["--only", "02", "--no-progress"]) == 2
    assert run.main(["--only", "05", "--no-progress"]) == 0
    assert "All 1 notebooks ran." in capsys.readouterr().out


def test_index_shows_the_profiles_records_and_keeps_earlier_notebooks(tmp_path):
    smoke = config.resolve("05_cats_vs_dogs_feature_extraction", profile="smoke", results_dir=tmp_path / "results")
    full = config.resolve("05_cats_vs_dogs_feature_extraction", profile="full", results_dir=tmp_path / "results")
    for settings, accuracy in ((smoke, 0.95), (full, 0.97)):
        record = results.new_record(settings, "mobilenet_v2", "frozen", test_accuracy=accuracy)
        results.write_record(record, tmp_path / "results" / settings.profile / f"{accuracy}.json")
    stale = results.new_record(smoke, "mobilenet_v2", "frozen", test_accuracy=0.4321)
    results.write_summary(results.summary_table([stale]), tmp_path / "reports")  # not used
    folder = tmp_path / "reports" / "smoke"
    folder.mkdir(parents=True)
    (folder / "03_tf_flowers_unfreezing_strategies.ipynb").write_text("{}")  # executed by an earlier run
    page = run.write_index(folder, "smoke", [run.Outcome("05_cats_vs_dogs_feature_extraction", True, 12.0)],
                           tmp_path / "results").read_text()
    assert "0.95" in page and "0.97" not in page  # the records, this profile's only
    assert "0.4321" not in page
    assert "smoke run" in page and "not reproductions of the articles" in page
    assert "href='05_cats_vs_dogs_feature_extraction.html'" in page and "12 s" in page
    assert "href='03_tf_flowers_unfreezing_strategies.html'" in page and "from an earlier run" in page
    empty = run.write_index(folder, "full", [], tmp_path / "nothing").read_text()
    assert "No result records for the full profile" in empty


def test_command_line_values_are_read_like_papermill():
    assert [run.parse_value(v) for v in ("3", "0.5", "True", "None", "resnet50")] == [3, 0.5, True, None, "resnet50"]
    assert json.loads(json.dumps(run.parse_value('["a"]'))) == '["a"]'  # lists stay text for config to read


def test_units_split_notebook_03_into_its_configurations_only_when_sharing():
    stems = ["01_cifar10_resnet50_vs_mobilenet", "03_tf_flowers_unfreezing_strategies", "06_results_summary"]
    whole = run.units(stems, "smoke", {}, split=False)
    assert [u.name for u in whole] == stems[:2]
    shared = run.units(stems, "smoke", {"MODELS": '["mobilenet"]'}, split=True)
    assert [u.name for u in shared][:3] == ["01_cifar10_resnet50_vs_mobilenet",
                                            "03_tf_flowers_unfreezing_strategies__mobilenet-frozen",
                                            "03_tf_flowers_unfreezing_strategies__mobilenet-layers-5"]
    assert len(shared) == 1 + 7 and shared[2].parameters == {"MODELS": ["mobilenet"], "STRATEGIES": ["layers:5"]}
    assert run.parse_share("2/4") == (2, 4)
    with pytest.raises(SystemExit, match="--shard must be K/N"):
        run.parse_share("5/4")


@pytest.mark.notebook
def test_two_shares_at_once_train_each_configuration_once_and_the_last_writes_the_report(tmp_path):
    """Two processes share one results folder, as N machines or GPUs would."""
    common = ["--profile", "smoke", "--only", "03", "05", "06", "--no-progress", "--reports", str(tmp_path / "reports"),
              "-p", "RESULTS_DIR", str(tmp_path / "results"), "-p", "MODELS", '["mobilenet"]',
              "-p", "STRATEGIES", '["frozen", "layers:5", "blocks:2"]']
    env = {**os.environ, "COURSE_ROOT": str(config.project_root())}
    shares = [subprocess.Popen([sys.executable, "-m", "helpers.run", "--shard", f"{k}/2", *common], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for k in (1, 2)]
    outputs = [share.communicate(timeout=1500)[0] for share in shares]
    assert [share.returncode for share in shares] == [0, 0], "\n".join(o[-3000:] for o in outputs)

    records, skipped = results.load_records(tmp_path / "results")
    configurations = sorted((r["notebook"][:2], r["model"], r["strategy"]) for r in records)
    assert not skipped and configurations == [("03", "mobilenet", "blocks:2"), ("03", "mobilenet", "frozen"),
                                              ("03", "mobilenet", "layers:5"), ("05", "mobilenet_v2", "frozen")]
    markers = {p.stem: p.read_text().strip() for p in (tmp_path / "reports" / "smoke" / "shares").glob("*.done")}
    # units in plan order go to shares 1, 2, 1, 2: each was run by its own share, once
    assert markers == {"03_tf_flowers_unfreezing_strategies__mobilenet-frozen": "share 1/2",
                       "03_tf_flowers_unfreezing_strategies__mobilenet-layers-5": "share 2/2",
                       "03_tf_flowers_unfreezing_strategies__mobilenet-blocks-2": "share 1/2",
                       "05_cats_vs_dogs_feature_extraction": "share 2/2"}
    reported = [o for o in outputs if "Report: " in o]
    assert reported, "the share that finished last writes the report"
    index = (tmp_path / "reports" / "smoke" / "index.html").read_text()
    assert all(f"{name}.html" in index for name in markers) and "06_results_summary.html" in index
    assert len(pd.read_csv(tmp_path / "reports" / "results.csv")) == 4
