"""Reruns that resume, results that survive bad input, failures that stay contained."""

import json
import os
import subprocess
import sys
import textwrap

import papermill
import pytest

from helpers import config, data, experiment, results, train
from helpers.config import SettingsError
from helpers.data import DataError

ROOT = config.project_root()
SMALL = dict(profile="smoke", limit=24, image_size=32, batch_size=8)

SCRIPT = textwrap.dedent('''
    import os, signal, sys
    import keras
    from helpers import config, data, experiment, train

    class KillAfter(keras.callbacks.Callback):
        """Stands in for a pre-empted machine: SIGKILL once epoch N has been backed up."""
        def on_epoch_end(self, epoch, logs=None):
            if epoch + 1 == int(os.environ["KILL_AFTER_EPOCH"]):
                os.kill(os.getpid(), signal.SIGKILL)

    settings = config.resolve("05_cats_vs_dogs_feature_extraction", profile="smoke", limit=24,
                              image_size=32, batch_size=8, results_dir=sys.argv[1])
    device = train.configure_device(settings)
    cats_dogs = data.load_cats_vs_dogs(settings)
    plan = train.TrainPlan(learning_rate=1e-3, epochs=2, strategy="blocks:1", fine_tune_epochs=3)
    extra = [KillAfter()] if "KILL_AFTER_EPOCH" in os.environ else []
    run = experiment.run_config(settings, cats_dogs, device, model="mobilenet_v2", plan=plan,
                                callbacks=extra, verbose=0)
    print("RESUMED", run.history.resumed_epochs)
''')


def test_a_killed_run_resumes_where_it_stopped_and_ends_with_one_record(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    results_dir = tmp_path / "results"
    env = {**os.environ, "KILL_AFTER_EPOCH": "3"}  # first fine-tuning epoch
    killed = subprocess.run([sys.executable, str(script), str(results_dir)], env=env,
                            capture_output=True, text=True, timeout=600)
    assert killed.returncode == -9, killed.stderr[-2000:]
    folder = results_dir / "05_cats_vs_dogs_feature_extraction"
    assert not list(folder.glob("*.json")), "no record from a killed run"
    work = folder / ".work" / "mobilenet_v2__blocks-1"
    assert (work / "phase1.weights.h5").exists() and (work / "phase2.backup").is_dir()

    env.pop("KILL_AFTER_EPOCH")
    resumed = subprocess.run([sys.executable, str(script), str(results_dir)], env=env,
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "RESUMED 3" in resumed.stdout  # 2 head epochs + 1 fine-tuning epoch were not run again
    records = list(folder.glob("*.json"))
    assert len(records) == 1
    record = results.read_record(records[0])
    assert record["status"] == "ok" and record["resumed_epochs"] == 3
    assert [row["epoch"] for row in record["history"]["rows"]] == [1, 2, 3, 4, 5]
    assert not work.exists(), "the work folder is removed once the record is written"


def test_same_seed_same_split_and_same_metrics(tmp_path):
    outcomes = []
    for attempt in range(2):
        settings = config.resolve("05_cats_vs_dogs_feature_extraction", **SMALL,
                                  results_dir=tmp_path / f"r{attempt}")
        device = train.configure_device(settings)
        assert device.deterministic  # op determinism on the CPU
        cats_dogs = data.load_cats_vs_dogs(settings)
        run = experiment.run_config(
            settings, cats_dogs, device, model="mobilenet_v2", verbose=0,
            plan=train.TrainPlan(learning_rate=1e-3, epochs=2),
            build=dict(dropout=0.2, augmentation={"flip": "horizontal", "rotation": 0.2}),
        )
        keys = ("split_fingerprint", "train_loss", "val_loss", "test_loss", "test_accuracy")
        outcomes.append({k: run.record[k] for k in keys} | {"rows": run.record["history"]["rows"]})
    assert outcomes[0] == outcomes[1]


def test_a_diverging_run_is_recorded_as_failed_and_the_next_goes_on(tmp_path, capsys):
    settings = config.resolve("05_cats_vs_dogs_feature_extraction", **SMALL, results_dir=tmp_path)
    device = train.configure_device(settings)
    cats_dogs = data.load_cats_vs_dogs(settings)
    bad = experiment.run_config(settings, cats_dogs, device, model="mobilenet_v2", verbose=0,
                                plan=train.TrainPlan(optimizer="sgd", learning_rate=1e30,
                                                     first_phase="all", strategy="all", epochs=2))
    assert not bad.ok
    assert "The training loss became nan in epoch 1 (first phase); lower the learning rate" in bad.record["error"]
    assert "FAILED" in capsys.readouterr().out
    good = experiment.run_config(settings, cats_dogs, device, model="mobilenet_v2", verbose=0,
                                 plan=train.TrainPlan(learning_rate=1e-3, epochs=1))
    assert good.ok
    on_disk = {r["strategy"]: r["status"] for r in results.load_records(tmp_path)[0]}
    assert on_disk == {"all": "failed", "frozen": "ok"}


def test_bad_input_never_touches_earlier_records(tmp_path, class_folder):
    settings = config.resolve("04_animals_mobilenetv2_vs_efficientnetv2", **SMALL, results_dir=tmp_path)
    path = results.record_path(settings, "mobilenet_v2", "frozen")
    results.write_record(results.new_record(settings, "mobilenet_v2", "frozen", test_accuracy=0.9), path)
    before = (path.read_bytes(), path.stat().st_mtime_ns)
    with pytest.raises(SettingsError):
        config.resolve("04_animals_mobilenetv2_vs_efficientnetv2", **SMALL, results_dir=tmp_path, epochs=0)
    single = class_folder(tmp_path / "one", classes=("cat",))
    with pytest.raises(DataError):
        data.load_animals(config.resolve("04_animals_mobilenetv2_vs_efficientnetv2", **SMALL,
                                         results_dir=tmp_path, data_dir=single))
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before


def test_rerun_of_03_skips_configurations_whose_records_exist(tmp_path, capsys):
    settings = config.resolve("05_cats_vs_dogs_feature_extraction", **SMALL, results_dir=tmp_path)
    device = train.configure_device(settings)
    cats_dogs = data.load_cats_vs_dogs(settings)
    plan = train.TrainPlan(learning_rate=1e-3, epochs=1)
    first = experiment.run_config(settings, cats_dogs, device, model="mobilenet_v2", plan=plan,
                                  reuse_records=True, verbose=0)
    again = experiment.run_config(settings, cats_dogs, device, model="mobilenet_v2", plan=plan,
                                  reuse_records=True, verbose=0)
    assert not first.reused and again.reused
    assert again.record["created_at"] == first.record["created_at"]
    assert again.history.rows == first.history.rows
    assert "record exists, skipped (REDO = True runs it again)" in capsys.readouterr().out
    redo = config.resolve("05_cats_vs_dogs_feature_extraction", **SMALL, results_dir=tmp_path, redo=True)
    assert not experiment.run_config(redo, cats_dogs, device, model="mobilenet_v2", plan=plan,
                                     reuse_records=True, verbose=0).reused


def test_command_line_type_errors_stop_the_notebook_with_one_sentence(tmp_path):
    with pytest.raises(papermill.PapermillExecutionError) as error:
        papermill.execute_notebook(
            str(ROOT / "notebooks" / "05_cats_vs_dogs_feature_extraction.ipynb"), str(tmp_path / "out.ipynb"),
            parameters={"PROFILE": "smoke", "EPOCHS": "three", "RESULTS_DIR": str(tmp_path)},
            cwd=str(ROOT / "notebooks"), progress_bar=False, kernel_name="python3",
        )
    assert error.value.ename == "SettingsError"
    assert error.value.evalue == "EPOCHS must be a whole number, got 'three'."
    cell = json.loads((tmp_path / "out.ipynb").read_text())
    tracebacks = [o["traceback"] for c in cell["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert tracebacks == [["SettingsError: EPOCHS must be a whole number, got 'three'."]]
