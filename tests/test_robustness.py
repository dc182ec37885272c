"""Reruns that resume, results that survive bad input, failures that stay contained."""

import json
import os
import subprocess
import sys
import textwrap

import papermill
import pytest

from helpers import config, data, results
from helpers.config import SettingsError
from helpers.data import DataError

ROOT = config.project_root()
SMALL = dict(profile="smoke", limit=24, image_size=32, batch_size=8, weights="none")

# What a notebook does, in small: a frozen base and a head (phase 1), then the last layers
# unfrozen and recompiled at a lower rate (phase 2), logged and backed up by experiment.Run.
RECIPE = textwrap.dedent('''
    import os, signal, sys
    import keras
    from helpers import config, data, experiment, models, train

    class KillAfter(keras.callbacks.Callback):
        """Stands in for a pre-empted machine: SIGKILL once epoch N has been backed up."""
        def on_epoch_end(self, epoch, logs=None):
            if epoch + 1 == int(os.environ.get("KILL_AFTER_EPOCH", 0)):
                os.kill(os.getpid(), signal.SIGKILL)

    def recipe(settings, learning_rate=1e-3, fine_tune_epochs=3, strategy="layers:4", extra=()):
        train.configure_device(settings)
        cats_dogs = data.load_cats_vs_dogs(settings)
        keras.utils.set_random_seed(settings.seed)
        model, base = models.gap_classifier("resnet50", settings.image_size, 2)
        base.trainable = strategy == "all"  # "all": every layer trains from the first epoch
        run = experiment.Run(settings, "resnet50", strategy)
        loss = keras.losses.BinaryCrossentropy(from_logits=True)
        batches = data.batches(cats_dogs.train, 8, shuffle_seed=settings.seed)
        model.compile(keras.optimizers.SGD(learning_rate), loss, metrics=["accuracy"])
        model.fit(batches, validation_data=data.batches(cats_dogs.val, 8), epochs=2,
                  callbacks=[*run.callbacks("head"), *extra], verbose=0)
        if fine_tune_epochs:
            base.trainable = True
            for layer in base.layers[:-4]:
                layer.trainable = False
            model.compile(keras.optimizers.SGD(learning_rate / 10), loss, metrics=["accuracy"])
            model.fit(batches, validation_data=data.batches(cats_dogs.val, 8), initial_epoch=2,
                      epochs=2 + fine_tune_epochs, callbacks=[*run.callbacks("fine-tune"), *extra], verbose=0)
        return run, run.finish(model, cats_dogs)

    if __name__ == "__main__":
        settings = config.resolve("05_cats_vs_dogs_feature_extraction", profile="smoke", limit=24,
                                  image_size=32, batch_size=8, weights="none", results_dir=sys.argv[1])
        run, record = recipe(settings, extra=[KillAfter()])
        print("RESUMED", record["resumed_epochs"])
''')


@pytest.fixture
def recipe(tmp_path):
    path = tmp_path / "recipe.py"
    path.write_text(RECIPE)
    sys.path.insert(0, str(tmp_path))
    import recipe as module

    yield path, module.recipe
    sys.path.remove(str(tmp_path))
    sys.modules.pop("recipe", None)


def test_a_killed_run_resumes_where_it_stopped_and_ends_with_one_record(tmp_path, recipe):
    script, _ = recipe
    results_dir = tmp_path / "results"
    env = {**os.environ, "KILL_AFTER_EPOCH": "3"}  # the first fine-tuning epoch
    killed = subprocess.run([sys.executable, str(script), str(results_dir)], env=env,
                            capture_output=True, text=True, timeout=600)
    assert killed.returncode == -9, killed.stderr[-2000:]
    folder = results_dir / "05_cats_vs_dogs_feature_extraction"
    assert not list(folder.glob("*.json")), "no record from a killed run"
    work = next((folder / ".work").glob("resnet50__layers-4-*"))
    assert (work / "head" / "backup" / "state.json").exists() and (work / "fine-tune" / "backup").is_dir()

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
    assert [p["phase"] for p in record["phases"]] == ["head", "fine-tune"]
    assert record["epochs"] == 2 and record["fine_tune_epochs"] == 3
    assert not work.exists(), "the work folder is removed once the record is written"


def test_same_seed_same_split_and_same_metrics(tmp_path, recipe):
    _, run_recipe = recipe
    outcomes = []
    for attempt in range(2):
        settings = config.resolve("05_cats_vs_dogs_feature_extraction", **SMALL, results_dir=tmp_path / f"r{attempt}")
        _, record = run_recipe(settings, fine_tune_epochs=1)
        keys = ("split_fingerprint", "train_loss", "val_loss", "test_loss", "test_accuracy")
        outcomes.append({k: record[k] for k in keys} | {"rows": record["history"]["rows"]})
    assert outcomes[0] == outcomes[1]


def test_a_diverging_run_is_recorded_as_failed_and_the_next_goes_on(tmp_path, recipe, capsys):
    _, run_recipe = recipe
    settings = config.resolve("05_cats_vs_dogs_feature_extraction", **SMALL, results_dir=tmp_path)
    _, bad = run_recipe(settings, learning_rate=1e30, fine_tune_epochs=0, strategy="all")
    assert bad["status"] == "failed"
    assert "The training loss became nan in epoch 1 (head); lower the learning rate" in bad["error"]
    assert "FAILED" in capsys.readouterr().out
    _, good = run_recipe(settings, fine_tune_epochs=0, strategy="frozen")
    assert good["status"] == "ok"
    on_disk = {r["strategy"]: r["status"] for r in results.load_records(tmp_path)[0]}
    assert on_disk == {"all": "failed", "frozen": "ok"}


def test_a_finished_configuration_is_skipped_and_redo_trains_it_again(tmp_path, recipe, capsys):
    from helpers import experiment

    _, run_recipe = recipe
    settings = config.resolve("05_cats_vs_dogs_feature_extraction", **SMALL, results_dir=tmp_path)
    _, first = run_recipe(settings, fine_tune_epochs=0, strategy="frozen")
    again = experiment.Run(settings, "resnet50", "frozen")
    assert again.finished and again.history == first["history"]["rows"]
    assert again.finish(model=None, data=None) == first  # nothing trained: the record as it is
    assert "record exists, not trained again (REDO = True trains it again)" in capsys.readouterr().out
    assert not experiment.Run(config.resolve("05_cats_vs_dogs_feature_extraction", **SMALL, results_dir=tmp_path,
                                             redo=True), "resnet50", "frozen").finished
    other = config.resolve("05_cats_vs_dogs_feature_extraction", **{**SMALL, "epochs": 7}, results_dir=tmp_path)
    assert not experiment.Run(other, "resnet50", "frozen").finished  # other settings: trained again


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


def test_command_line_type_errors_stop_the_notebook_with_one_sentence(tmp_path):
    with pytest.raises(papermill.PapermillExecutionError) as error:
        papermill.execute_notebook(
            str(ROOT / "notebooks" / "05_cats_vs_dogs_feature_extraction.ipynb"), str(tmp_path / "out.ipynb"),
            parameters={"PROFILE": "smoke", "EPOCHS": "three", "RESULTS_DIR": str(tmp_path)},
            cwd=str(ROOT / "notebooks"), progress_bar=False, kernel_name="python3",
        )
    assert error.value.ename == "SettingsError"
    assert error.value.evalue == "EPOCHS must be a whole number, got 'three'."
    cells = json.loads((tmp_path / "out.ipynb").read_text())["cells"]
    tracebacks = [o["traceback"] for c in cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert tracebacks == [["SettingsError: EPOCHS must be a whole number, got 'three'."]]


def test_full_profile_on_a_cpu_stops_before_any_training_and_offers_the_others(monkeypatch):
    monkeypatch.delenv("COURSE_FULL_ON_CPU")  # the unit tests allow it; a user's machine does not
    with pytest.raises(SettingsError) as error:
        config.resolve("03_tf_flowers_unfreezing_strategies", profile="full")
    message = str(error.value)
    assert "no GPU" in message and "PROFILE = 'laptop'" in message and "'smoke'" in message
    assert config.resolve("03_tf_flowers_unfreezing_strategies", profile="full", limit=8).profile == "full"
    assert config.resolve("03_tf_flowers_unfreezing_strategies", profile="auto").profile == "laptop"
