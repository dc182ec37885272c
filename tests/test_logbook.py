"""The course's bookkeeping around fit: a killed run resumes exactly where it stopped (early stopping
and the learning-rate schedule included), a recorded configuration is restored instead of trained
again, two runs never train one configuration at once, a diverging run is recorded as failed, and the
model saved beside its record reloads with the same predictions."""

import json
import os
import socket
import subprocess
import sys
import textwrap

import keras
import numpy as np
import papermill
import pytest

from helpers import datasets, layers, logbook, pipelines, records, settings
from helpers.errors import CourseError, DataError, SettingsError

ROOT = settings.project_root()
SMALL = dict(profile="smoke", limit=24, image_size=32, batch_size=8, weights="none")

# What a notebook does, in small: a frozen base and a head (phase 1), then the last layers unfrozen
# and recompiled at a lower rate (phase 2), the course's bookkeeping on both fits.
RECIPE = textwrap.dedent('''
    import os, signal, sys
    import keras
    from helpers import datasets, layers, logbook, settings

    class KillAfter(keras.callbacks.Callback):
        """Stands in for a pre-empted machine: SIGKILL once epoch N has been backed up."""
        def on_epoch_end(self, epoch, logs=None):
            if epoch + 1 == int(os.environ.get("KILL_AFTER_EPOCH", 0)):
                os.kill(os.getpid(), signal.SIGKILL)

    def recipe(config, learning_rate=1e-3, fine_tune_epochs=3, strategy="layers:4", extra=()):
        keras.mixed_precision.set_global_policy("float32")
        cats_dogs = datasets.cats_vs_dogs(config)
        train_ds, val_ds, test_ds = cats_dogs.batches(8, shuffle_seed=config.seed)
        log = logbook.Logbook(config, "resnet50", strategy)
        keras.utils.set_random_seed(config.seed)
        base = keras.applications.ResNet50(include_top=False, weights=None, input_shape=(32, 32, 3))
        base.trainable = strategy == "all"  # "all": every layer trains from the first epoch
        inputs = keras.Input((32, 32, 3))
        x = layers.InferenceMode(base)(keras.applications.resnet50.preprocess_input(inputs))
        x = keras.layers.Dropout(0.3)(keras.layers.GlobalAveragePooling2D()(x))
        model = keras.Model(inputs, keras.layers.Dense(1)(x))
        loss = keras.losses.BinaryCrossentropy(from_logits=True)
        model.compile(keras.optimizers.SGD(learning_rate), loss, metrics=["accuracy"])
        model.fit(train_ds, validation_data=val_ds, epochs=2, callbacks=[*log.callbacks(), *extra], verbose=0)
        if fine_tune_epochs:
            base.trainable = True
            for layer in base.layers[:-4]:
                layer.trainable = False
            model.compile(keras.optimizers.SGD(learning_rate / 10), loss, metrics=["accuracy"])
            model.fit(train_ds, validation_data=val_ds, initial_epoch=2, epochs=2 + fine_tune_epochs,
                      callbacks=[*log.callbacks(), *extra], verbose=0)
        return log, model, log.finish(model, cats_dogs, model.predict(test_ds, verbose=0))

    if __name__ == "__main__":
        config = settings.resolve("01_cats_vs_dogs_feature_extraction", profile="smoke", limit=24, image_size=32,
                                  batch_size=8, weights="none", results_dir=sys.argv[1])
        log, model, record = recipe(config, extra=[KillAfter()])
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
    killed = subprocess.run([sys.executable, str(script), str(results_dir)], env=env, capture_output=True,
                            text=True, timeout=600)
    assert killed.returncode == -9, killed.stderr[-2000:]
    folder = results_dir / "01_cats_vs_dogs_feature_extraction"
    assert not list(folder.glob("*.json")), "no record from a killed run"
    work = folder / ".work" / "resnet50__layers-4"
    assert (work / "until-2" / "state.json").exists() and (work / "until-5" / "backup.weights.h5").exists()
    assert json.loads((work / "claim.json").read_text())["pid"] != os.getpid()  # the dead run's claim

    env.pop("KILL_AFTER_EPOCH")
    resumed = subprocess.run([sys.executable, str(script), str(results_dir)], env=env, capture_output=True,
                             text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "RESUMED 3" in resumed.stdout  # 2 epochs of phase 1 and 1 of phase 2 were not run again
    (path,) = folder.glob("*.json")
    record = records.read_record(path)
    assert record["status"] == "ok" and record["resumed_epochs"] == 3
    assert [row["epoch"] for row in record["history"]["rows"]] == [1, 2, 3, 4, 5]
    assert [p["phase"] for p in record["phases"]] == ["phase 1", "phase 2"]
    assert record["epochs"] == 2 and record["fine_tune_epochs"] == 3
    assert not work.exists(), "the work folder and its claim go once the record is written"


def test_same_seed_same_split_and_same_metrics(tmp_path, recipe):
    _, run_recipe = recipe
    outcomes = []
    for attempt in range(2):
        config = settings.resolve("01_cats_vs_dogs_feature_extraction", **SMALL, results_dir=tmp_path / f"r{attempt}")
        _, _, record = run_recipe(config, fine_tune_epochs=1)
        keys = ("split_fingerprint", "train_loss", "val_loss", "test_loss", "test_accuracy")
        outcomes.append({k: record[k] for k in keys} | {"rows": record["history"]["rows"]})
    assert outcomes[0] == outcomes[1]  # the same process, the same computation: the same numbers


def test_a_recorded_configuration_is_restored_not_trained_and_redo_trains_it(tmp_path, recipe, capsys):
    _, run_recipe = recipe
    config = settings.resolve("01_cats_vs_dogs_feature_extraction", **SMALL, results_dir=tmp_path)
    _, trained, first = run_recipe(config, fine_tune_epochs=1)
    log, again, second = run_recipe(config, fine_tune_epochs=1)
    assert log.finished and second == first and not log.trained_now
    assert "record exists, not trained again (REDO = True trains it again)" in capsys.readouterr().out
    assert again.optimizer.iterations.numpy() == 0  # restored, never trained
    for a, b in zip(again.get_weights(), trained.get_weights()):
        np.testing.assert_array_equal(a, b)  # loaded from the saved model: the very numbers
    assert [row for phase in log.phases() for row in phase["rows"]] == first["history"]["rows"]
    assert not logbook.Logbook(settings.resolve("01_cats_vs_dogs_feature_extraction", **SMALL, results_dir=tmp_path,
                                                redo=True), "resnet50", "layers:4").finished
    other = settings.resolve("01_cats_vs_dogs_feature_extraction", **{**SMALL, "epochs": 7}, results_dir=tmp_path)
    assert not logbook.Logbook(other, "resnet50", "layers:4").finished  # other settings: trained again
    log.model_path.unlink()
    assert not logbook.Logbook(config, "resnet50", "layers:4").finished  # nothing to restore from


def test_a_recorded_configuration_whose_saved_model_cannot_be_loaded_is_trained_again(tmp_path, recipe, capsys):
    _, run_recipe = recipe
    config = settings.resolve("01_cats_vs_dogs_feature_extraction", **SMALL, results_dir=tmp_path)
    _, _, first = run_recipe(config, fine_tune_epochs=1)
    log = logbook.Logbook(config, "resnet50", "layers:4")
    content = log.model_path.read_bytes()
    log.model_path.write_bytes(content[: len(content) // 3])  # a copy cut short
    log, model, second = run_recipe(config, fine_tune_epochs=1)
    assert ("its saved model resnet50__layers-4.keras cannot be loaded (ValueError); kept as "
            "resnet50__layers-4.keras.broken, training it again.") in capsys.readouterr().out
    assert log.model_path.with_name(log.model_path.name + ".broken").read_bytes() == content[: len(content) // 3]
    assert log.trained_now and model.optimizer.iterations.numpy() > 0  # trained, not restored
    assert second["created_at"] >= first["created_at"] and second["history"] == first["history"]
    assert keras.saving.load_model(log.model_path).count_params() == model.count_params()  # saved whole again


def test_a_diverging_run_is_recorded_as_failed_and_the_next_goes_on(tmp_path, recipe, capsys):
    _, run_recipe = recipe
    config = settings.resolve("01_cats_vs_dogs_feature_extraction", **SMALL, results_dir=tmp_path)
    _, _, bad = run_recipe(config, learning_rate=1e30, fine_tune_epochs=0, strategy="all")
    assert bad["status"] == "failed"
    assert "The training loss became nan in epoch 1; lower the learning rate" in bad["error"]
    assert "FAILED" in capsys.readouterr().out
    _, _, good = run_recipe(config, fine_tune_epochs=0, strategy="frozen")
    assert good["status"] == "ok"
    assert {r["strategy"]: r["status"] for r in records.load_records(tmp_path)[0]} == {"all": "failed", "frozen": "ok"}


# ------------------------------------------------------------------ exact resume, small and fast

def small_fit(folder_settings, epochs, extra=(), early=True, schedule=False):
    """A small model under the bookkeeping, with early stopping (and a learning-rate schedule):
    the same model and data every time, as a rerun of the notebook builds them."""
    keras.utils.set_random_seed(3)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(96, 8)).astype("float32"), rng.integers(0, 2, 96)
    x[:, 0] += y  # learnable, but noisy enough that the validation loss turns
    inputs = keras.Input((8,))
    hidden = keras.layers.Dropout(0.3)(keras.layers.Dense(32, activation="relu")(inputs))
    model = keras.Model(inputs, keras.layers.Dense(2)(hidden))  # Dropout: its random state resumes too
    model.compile(keras.optimizers.Adam(0.05), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    train = pipelines.batches(pipelines.examples_from_arrays(x[:64], y[:64]), 16, shuffle_seed=1)
    val = pipelines.batches(pipelines.examples_from_arrays(x[64:], y[64:]), 16)
    stateful = [keras.callbacks.EarlyStopping(monitor="val_loss", patience=3, restore_best_weights=True)] if early else []
    if schedule:
        stateful.append(keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=1))
    log = logbook.Logbook(folder_settings, "resnet50", "frozen")
    history = model.fit(train, validation_data=val, epochs=epochs, verbose=0,
                        callbacks=[*stateful, *log.callbacks(*stateful), *extra])
    return model, history, log, stateful


class Interrupt(keras.callbacks.Callback):
    """Stands in for a killed kernel: raises once epoch `after` has been backed up."""

    def __init__(self, after):
        super().__init__()
        self.after = after

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.after:
            raise KeyboardInterrupt


@pytest.mark.parametrize("schedule", [False, True], ids=["early stopping", "early stopping and a schedule"])
def test_a_resumed_early_stopping_run_ends_exactly_as_an_uninterrupted_one(tmp_path, schedule):
    config = lambda name: settings.resolve("01_cats_vs_dogs_feature_extraction", profile="smoke",  # noqa: E731
                                           results_dir=tmp_path / name)
    whole, whole_history, _, (stop, *_) = small_fit(config("whole"), 30, schedule=schedule)
    assert 0 < stop.stopped_epoch < 29 and stop.best_epoch < stop.stopped_epoch  # it stopped early
    interrupt_at = stop.best_epoch + 2  # after the best epoch, before the stop: the state matters
    with pytest.raises(KeyboardInterrupt):
        small_fit(config("cut"), 30, extra=[Interrupt(interrupt_at)], schedule=schedule)
    resumed, history, log, (resumed_stop, *_) = small_fit(config("cut"), 30, schedule=schedule)
    assert log.phases()[0]["resumed_epochs"] == interrupt_at
    assert resumed_stop.stopped_epoch == stop.stopped_epoch and resumed_stop.best_epoch == stop.best_epoch
    assert log.phases()[0]["kept_epoch"] == stop.best_epoch + 1
    # the same computation after a restore from the files: equal up to float rounding
    assert history.history["val_loss"] == pytest.approx(whole_history.history["val_loss"], rel=1e-6)
    for a, b in zip(resumed.get_weights(), whole.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_without_the_early_stopping_state_a_resumed_run_would_differ(tmp_path):
    """What the backup of the page's callbacks is for: resumed without them, the run goes elsewhere."""
    config = lambda name: settings.resolve("01_cats_vs_dogs_feature_extraction", profile="smoke",  # noqa: E731
                                           results_dir=tmp_path / name)
    _, _, _, (stop,) = small_fit(config("whole"), 30)
    with pytest.raises(KeyboardInterrupt):
        small_fit(config("cut"), 30, extra=[Interrupt(stop.best_epoch + 2)])
    state = next((tmp_path / "cut").rglob("state.json"))
    saved = json.loads(state.read_text())
    saved["stateful"] = []  # as if EarlyStopping had not been handed to the bookkeeping
    state.write_text(json.dumps(saved))
    (state.parent / "stateful.npz").unlink()
    _, _, _, (resumed_stop,) = small_fit(config("cut"), 30)
    assert (resumed_stop.stopped_epoch, resumed_stop.best_epoch) != (stop.stopped_epoch, stop.best_epoch)


def test_fit_returns_every_epoch_of_a_resumed_phase(tmp_path):
    config = settings.resolve("01_cats_vs_dogs_feature_extraction", profile="smoke", results_dir=tmp_path)
    with pytest.raises(KeyboardInterrupt):
        small_fit(config, 4, early=False, extra=[Interrupt(2)])
    _, history, _, _ = small_fit(config, 4, early=False)
    assert history.epoch == [0, 1, 2, 3] and len(history.history["val_loss"]) == 4


# ------------------------------------------------------------------------ one run per configuration

def test_a_live_run_elsewhere_keeps_its_configuration_and_a_dead_ones_claim_is_taken_over(tmp_path):
    config = settings.resolve("01_cats_vs_dogs_feature_extraction", profile="smoke", results_dir=tmp_path)
    log = logbook.Logbook(config, "mobilenet_v2", "frozen")
    log.workdir.mkdir(parents=True)
    claim = log.workdir / "claim.json"
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        claim.write_text(json.dumps({"host": socket.gethostname(), "pid": live.pid}))
        with pytest.raises(CourseError) as error:
            log.callbacks()
        message = str(error.value)
        assert f"process {live.pid}" in message and "another RESULTS_DIR" in message and message.count(". ") == 0
    finally:
        live.kill()
        live.wait()
    log.callbacks()  # its owner is dead: taken over
    assert json.loads(claim.read_text()) == {"host": socket.gethostname(), "pid": os.getpid()}

    claim.write_text(json.dumps({"host": "another-machine", "pid": 1}))
    with pytest.raises(CourseError):
        log.callbacks()  # renewed a moment ago, on another machine: alive
    old = claim.stat().st_mtime - logbook.STALE_SECONDS - 60
    os.utime(claim, (old, old))
    log.callbacks()  # not renewed for longer than STALE_SECONDS: taken over
    assert json.loads(claim.read_text())["pid"] == os.getpid()


def test_a_configuration_recorded_by_another_run_after_this_one_looked_is_not_trained_again(tmp_path):
    config = settings.resolve("01_cats_vs_dogs_feature_extraction", profile="smoke", results_dir=tmp_path)
    log = logbook.Logbook(config, "mobilenet_v2", "frozen")
    assert not log.finished
    # meanwhile another run finishes the same configuration with the same settings
    log.path.parent.mkdir(parents=True, exist_ok=True)
    records.write_record(records.new_record(config, "mobilenet_v2", "frozen", settings_key=log.key, test_accuracy=0.9),
                         log.path)
    log.model_path.write_bytes(b"a model")
    with pytest.raises(CourseError) as error:
        log.callbacks()
    message = str(error.value)
    assert "recorded by another run" in message and "run this notebook again" in message and message.count(". ") == 0
    assert not (log.workdir / "claim.json").exists()
    assert logbook.Logbook(config, "mobilenet_v2", "frozen").finished  # the next look reuses it


def test_temporary_files_have_names_of_their_own(tmp_path):
    target = tmp_path / "backup.weights.h5"
    names = {records.unique(target).name for _ in range(50)}
    assert len(names) == 50 and all(n.endswith(".weights.h5") and n.startswith(".backup.") for n in names)


# ------------------------------------------------------------------------- saved models

@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Notebook 01 on the smoke profile, tiny: a frozen MobileNetV2 with the article's augmentation and
    dropout, one epoch, finished by a Logbook. Its random weights get BatchNorm statistics from the
    training images (as the stand-in weights do): without them a random MobileNetV2's features at 32x32
    are ~1e-13 and all logits ~0."""
    from helpers import weights
    config = settings.resolve("01_cats_vs_dogs_feature_extraction", profile="smoke", limit=24, image_size=32,
                              batch_size=8, epochs=1, results_dir=tmp_path_factory.mktemp("results"))
    keras.mixed_precision.set_global_policy("float32")
    cats_dogs = datasets.cats_vs_dogs(config)
    train_ds, val_ds, test_ds = cats_dogs.batches(8, shuffle_seed=config.seed)
    keras.utils.set_random_seed(config.seed)
    base = keras.applications.MobileNetV2(input_shape=(32, 32, 3), include_top=False, weights=None)
    images, _ = pipelines.take_images(cats_dogs.train, 24)
    weights.reset_batchnorm_statistics(base, base, images.astype(np.float32) / 127.5 - 1)
    base.trainable = False
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.RandomRotation(0.2)(keras.layers.RandomFlip("horizontal")(inputs))
    x = base(keras.layers.Rescaling(1 / 127.5, offset=-1)(x), training=False)
    x = keras.layers.Dropout(0.2)(keras.layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inputs, keras.layers.Dense(1)(x))
    model.compile(keras.optimizers.Adam(1e-4), keras.losses.BinaryCrossentropy(from_logits=True),
                  metrics=[keras.metrics.BinaryAccuracy(threshold=0.0)])
    log = logbook.Logbook(config, "mobilenet_v2", "frozen")
    model.fit(train_ds, validation_data=val_ds, epochs=1, callbacks=log.callbacks(), verbose=0)
    record = log.finish(model, cats_dogs, model.predict(test_ds, verbose=0))
    return config, cats_dogs, model, record


def test_short_runs_are_timed_briefly_and_long_ones_in_full():
    assert logbook.timing_effort(3) == 0.05 and logbook.timing_effort(60) == 0.1
    assert logbook.timing_effort(600) == logbook.timing_effort(7200) == 1.0


def test_a_short_run_still_records_its_speed(trained):
    record = trained[3]
    assert record["train_seconds"] < 60 and record["inference_ms_per_image"] > 0
    assert record["throughput_images_per_s"] > 0 and record["throughput_batch_size"] == 32


def test_the_saved_model_is_beside_its_record_and_reloads_with_the_same_predictions(trained):
    config, cats_dogs, model, record = trained
    record_file = records.record_path(config, "mobilenet_v2", "frozen")
    assert json.loads(record_file.read_text())["model_file"] == record["model_file"] == "mobilenet_v2__frozen.keras"
    assert record["class_names"] == cats_dogs.class_names and record["model_size_mb"] > 1
    images = pipelines.take_images(cats_dogs.test, 16)[0].astype(np.float32)
    reloaded = keras.saving.load_model(config.record_dir / record["model_file"])
    assert np.std(model.predict(images, verbose=0)) > 0.01  # logits that tell images apart
    # the same model in two objects and two calls: equal up to float rounding
    np.testing.assert_allclose(reloaded.predict(images, verbose=0), model.predict(images, verbose=0), rtol=1e-6,
                               atol=1e-6)


def test_a_model_holding_inference_mode_saves_and_reloads(tmp_path):
    base = keras.applications.ResNet50(include_top=False, weights=None, input_shape=(32, 32, 3))
    inputs = keras.Input((32, 32, 3))
    x = layers.InferenceMode(base, name="base")(keras.applications.resnet50.preprocess_input(inputs))
    model = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(x)))
    model.save(tmp_path / "resnet50.keras")
    reloaded = keras.saving.load_model(tmp_path / "resnet50.keras")
    assert isinstance(reloaded.get_layer("base"), layers.InferenceMode)
    images = np.random.default_rng(1).uniform(0, 255, (4, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(reloaded.predict(images, verbose=0), model.predict(images, verbose=0), rtol=1e-6,
                               atol=1e-6)


# ------------------------------------------------------------------------- bad input

def test_bad_input_never_touches_earlier_records(tmp_path, class_folder):
    config = settings.resolve("02_animals_mobilenetv2_vs_efficientnetv2", **SMALL, results_dir=tmp_path)
    path = records.record_path(config, "mobilenet_v2", "frozen")
    records.write_record(records.new_record(config, "mobilenet_v2", "frozen", test_accuracy=0.9), path)
    before = (path.read_bytes(), path.stat().st_mtime_ns)
    with pytest.raises(SettingsError):
        settings.resolve("02_animals_mobilenetv2_vs_efficientnetv2", **SMALL, results_dir=tmp_path, epochs=0)
    single = class_folder(tmp_path / "one", classes=("cat",))
    with pytest.raises(DataError):
        datasets.animals(settings.resolve("02_animals_mobilenetv2_vs_efficientnetv2", **SMALL, results_dir=tmp_path,
                                          data_dir=single))
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before


@pytest.mark.notebook
def test_a_bad_or_unknown_parameter_stops_the_notebook_before_any_work_with_one_sentence(tmp_path):
    notebook = ROOT / "notebooks" / "01_cats_vs_dogs_feature_extraction.ipynb"
    for parameters, expected in (
            ({"EPOCHS": "three"}, "EPOCHS must be a whole number, got 'three'."),
            ({"EPOCS": 3}, "This notebook has no parameter EPOCS; its parameters are PROFILE, DATA_DIR, EPOCHS, ")):
        output = tmp_path / "out.ipynb"
        with pytest.raises(papermill.PapermillExecutionError) as error:
            papermill.execute_notebook(str(notebook), str(output), cwd=str(notebook.parent), progress_bar=False,
                                       parameters={"PROFILE": "smoke", "RESULTS_DIR": str(tmp_path), **parameters},
                                       kernel_name="python3")
        assert error.value.ename == "SettingsError" and error.value.evalue.startswith(expected)
        cells = json.loads(output.read_text())["cells"]
        tracebacks = [o["traceback"] for c in cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
        assert len(tracebacks) == 1 and len(tracebacks[0]) == 1  # one sentence, no stack trace
        assert not list(tmp_path.glob("01_*/*.json"))  # nothing trained


def test_full_profile_on_a_cpu_stops_before_any_training_and_offers_the_others(monkeypatch):
    monkeypatch.delenv("COURSE_FULL_ON_CPU")  # the unit tests allow it; a user's machine does not
    monkeypatch.delenv("NB_PROFILE", raising=False)
    with pytest.raises(SettingsError) as error:
        settings.resolve("04_tf_flowers_unfreezing_strategies", profile="full")
    message = str(error.value)
    assert "no GPU" in message and "PROFILE = 'laptop'" in message and "'smoke'" in message
    assert settings.resolve("04_tf_flowers_unfreezing_strategies", profile="full", limit=8).profile == "full"
    assert settings.resolve("04_tf_flowers_unfreezing_strategies", profile="auto").profile == "laptop"
    assert settings.resolve("04_tf_flowers_unfreezing_strategies", profile="full", check_hardware=False).profile == "full"
