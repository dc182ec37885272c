"""setup: the parameters cell read from the notebook's namespace, names papermill injected that
the notebook does not declare refused, the results folder checked before anything runs, and sizes
beyond what the course can hold refused before anything is made."""

from types import SimpleNamespace

import keras
import pytest
import tensorflow as tf

from helpers import settings, setup
from helpers.errors import SettingsError

NB01 = "01_cats_vs_dogs_feature_extraction"


def _namespace(**values):
    """A notebook's globals() after its parameters cell (PROFILE, EPOCHS, RESULTS_DIR, IMAGE_SIZE)
    and an import or two."""
    namespace = {"__annotations__": {"PROFILE": str, "EPOCHS": int | None, "RESULTS_DIR": str | None,
                                     "IMAGE_SIZE": int | None},
                 "PROFILE": "smoke", "EPOCHS": None, "RESULTS_DIR": None, "IMAGE_SIZE": None,
                 "sys": object()}
    namespace.update(values)
    return namespace


@pytest.fixture
def injected(monkeypatch):
    """Set the names papermill injected: injected([...])."""
    names = []
    monkeypatch.setattr(setup, "injected_names", lambda: list(names))
    return names.extend


@pytest.fixture
def quiet_start(monkeypatch):
    """What `start` changes for the whole process, recorded instead of done."""
    done = []
    monkeypatch.setattr(keras.mixed_precision, "set_global_policy", lambda policy: done.append(policy))
    monkeypatch.setattr(tf.config.experimental, "enable_op_determinism", lambda: done.append("determinism"))
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: [])  # no GPU, whatever is here
    monkeypatch.delenv("NB_RESULTS_DIR", raising=False)
    return done


def test_parameters_are_the_declared_names_with_their_values(injected):
    namespace = _namespace(EPOCHS=3)
    assert setup.parameters(namespace) == {"PROFILE": "smoke", "EPOCHS": 3, "RESULTS_DIR": None,
                                           "IMAGE_SIZE": None}


def test_a_declared_name_without_a_value_is_left_out(injected):
    namespace = _namespace()
    namespace["__annotations__"]["LATER"] = int
    assert "LATER" not in setup.parameters(namespace)


def test_injected_names_the_notebook_declares_pass(injected):
    injected(["PROFILE", "EPOCHS"])
    assert setup.parameters(_namespace(EPOCHS=2))["EPOCHS"] == 2


def test_a_misspelled_injected_name_is_refused_with_one_sentence(injected):
    injected(["PROFILE", "EPOCS"])
    with pytest.raises(SettingsError) as error:
        setup.parameters(_namespace(EPOCS=3))
    message = str(error.value)
    assert message == ("This notebook has no parameter EPOCS; its parameters are PROFILE, EPOCHS, "
                       "RESULTS_DIR, IMAGE_SIZE.")


def test_every_unknown_injected_name_is_named(injected):
    injected(["EPOCS", "PROFILE", "BATCH"])
    with pytest.raises(SettingsError, match="^This notebook has no parameter EPOCS, BATCH; its parameters are "):
        setup.parameters(_namespace())


def _shell(*cells):
    return SimpleNamespace(user_ns={"In": ["", *cells]})


def test_injected_names_are_read_from_papermills_parameters_cell(monkeypatch):
    cells = ['PROFILE: str = "auto"\nEPOCHS: int | None = None',
             '# Parameters\nPROFILE = "smoke"\nEPOCS = 3\n',
             "settings = setup.start(NOTEBOOK, globals())"]
    monkeypatch.setattr(setup, "get_ipython", lambda: _shell(*cells))
    assert setup.injected_names() == ["PROFILE", "EPOCS"]
    with pytest.raises(SettingsError, match="no parameter EPOCS;"):
        setup.parameters(_namespace(EPOCS=3))


def test_the_last_parameters_cell_counts(monkeypatch):
    cells = ['# Parameters\nEPOCS = 3\n', '# Parameters\nEPOCHS = 3\n']
    monkeypatch.setattr(setup, "get_ipython", lambda: _shell(*cells))
    assert setup.injected_names() == ["EPOCHS"]


def test_nothing_is_injected_outside_such_a_run(monkeypatch):
    monkeypatch.setattr(setup, "get_ipython", lambda: None)
    assert setup.injected_names() == []
    monkeypatch.setattr(setup, "get_ipython", lambda: _shell("PROFILE = 'smoke'", "x = 1"))
    assert setup.injected_names() == []
    monkeypatch.setattr(setup, "get_ipython", lambda: _shell("# Parameters\nPROFILE = 'smoke\n"))  # unreadable
    assert setup.injected_names() == []


def test_start_refuses_an_unwritable_results_folder_before_anything_else(tmp_path, injected, quiet_start, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")  # a path under a regular file: unwritable, also for root
    folder = blocker / "results"
    with pytest.raises(SettingsError) as error:
        setup.start(NB01, _namespace(RESULTS_DIR=str(folder)))
    message = str(error.value)
    assert message.startswith(f"The results folder {folder / NB01} cannot be written (")
    assert message.endswith("; set RESULTS_DIR to a folder you can write to.") and "\n" not in message
    assert quiet_start == []  # no precision policy, no determinism set
    assert "results dir" not in capsys.readouterr().out  # the plan (settings.describe) was not printed


def test_start_checks_resolves_and_prints_the_plan(tmp_path, injected, quiet_start, capsys):
    injected(["PROFILE", "EPOCHS"])
    s = setup.start(NB01, _namespace(EPOCHS=2, RESULTS_DIR=str(tmp_path / "results"), MY_IMAGES=None))
    assert s.profile == "smoke" and s.epochs == {"mobilenet_v2": 2} and s.image_size == 64
    assert s.record_dir == tmp_path / "results" / NB01 and s.record_dir.is_dir()
    assert list(s.record_dir.iterdir()) == []  # the write test left nothing behind
    assert quiet_start == ["float32", "determinism"]  # on a CPU
    out = capsys.readouterr().out
    assert out.startswith("Python ") and "No GPU found" in out and s.describe() in out


def test_image_size_beyond_the_bound_is_refused_before_anything_is_made(tmp_path, injected, quiet_start):
    with pytest.raises(SettingsError, match=r"^IMAGE_SIZE 100000 is more than this course can hold in memory or "
                                            r"time; use at most 1024\.$"):
        settings.resolve(NB01, profile="smoke", image_size=100_000, results_dir=tmp_path / "results")
    with pytest.raises(SettingsError, match="^IMAGE_SIZE 100000 is more than"):
        setup.start(NB01, _namespace(IMAGE_SIZE=100_000, RESULTS_DIR=str(tmp_path / "results")))
    assert not (tmp_path / "results").exists() and quiet_start == []


def test_start_refuses_a_misspelled_parameter_before_resolving(tmp_path, injected, quiet_start, monkeypatch):
    injected(["EPOCS"])
    monkeypatch.setattr(setup, "resolve", lambda *a, **k: pytest.fail("resolved"))
    with pytest.raises(SettingsError, match="^This notebook has no parameter EPOCS;"):
        setup.start(NB01, _namespace(EPOCS=3, RESULTS_DIR=str(tmp_path / "results")))


def test_every_setting_of_resolve_can_come_from_the_parameters_cell():
    assert setup.SETTINGS == {"profile", "data_dir", "weights", "epochs", "fine_tune_epochs", "batch_size",
                              "image_size", "models", "limit", "seed", "results_dir", "strategies", "redo",
                              "mixed_precision", "save_models"}


def test_versions_say_what_auto_runs(monkeypatch):
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: [])
    text = setup.versions()
    assert text.startswith("Python ") and f"TensorFlow {tf.__version__}, Keras {keras.__version__}" in text
    assert "No GPU found: PROFILE = 'auto' runs the laptop profile" in text
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: ["GPU:0"])
    assert "GPU: 1 found; mixed precision on by default, PROFILE = 'auto' runs the full profile." in setup.versions()
