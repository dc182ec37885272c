"""settings.resolve: defaults from the profile, and one clear sentence per bad value."""

import pytest

from helpers import backbones, settings
from helpers.errors import CourseError, SettingsError

NB01 = "01_cats_vs_dogs_feature_extraction"
NB03 = "03_cifar10_resnet50_upsampling_finetune"
NB04 = "04_tf_flowers_unfreezing_strategies"
NB05 = "05_cifar10_resnet50_vs_mobilenet"


@pytest.fixture
def no_gpu(monkeypatch):
    """This machine as one without a GPU, whatever it has, and no profile chosen by the environment."""
    monkeypatch.setattr(settings, "has_gpu", lambda: False)
    monkeypatch.delenv("NB_PROFILE", raising=False)


def test_notebooks_are_numbered_in_reading_order():
    assert settings.NOTEBOOKS == (
        "01_cats_vs_dogs_feature_extraction", "02_animals_mobilenetv2_vs_efficientnetv2",
        "03_cifar10_resnet50_upsampling_finetune", "04_tf_flowers_unfreezing_strategies",
        "05_cifar10_resnet50_vs_mobilenet", "06_results_summary", "07_light_models_on_device")


def test_profile_defaults_fill_what_is_none(make_settings):
    smoke = make_settings(NB01)
    full = make_settings(NB01, profile="full")
    assert smoke.weights == "standin" and full.weights == "imagenet"
    assert full.image_size == 160 and full.batch_size == 32 and full.epochs == {"mobilenet_v2": 10}
    assert smoke.models == ("mobilenet_v2",) and smoke.image_size == 64
    assert smoke.save_models is True and smoke.redo is False and smoke.mixed_precision is None


def test_command_line_strings_are_read_as_numbers_and_lists(make_settings):
    s = make_settings(NB04, epochs="3", batch_size=16.0, models="resnet50, mobilenet",
                      strategies="['frozen', 'blocks:2']", limit="20", seed="7")
    assert s.epochs == {"resnet50": 3, "mobilenet": 3}
    assert s.batch_size == 16 and s.limit == 20 and s.seed == 7
    assert s.models == ("resnet50", "mobilenet")
    assert s.strategies == ("frozen", "blocks:2")


def test_epochs_per_model_from_a_dict(make_settings):
    s = make_settings(NB05, profile="full", epochs={"mobilenet": 7})
    assert s.epochs == {"resnet50": 30, "mobilenet": 7}
    assert make_settings(NB05, epochs="{'resnet50': 2}").epochs == {"resnet50": 2, "mobilenet": 8}


def test_epochs_dict_naming_a_model_not_in_models_is_refused(make_settings):
    with pytest.raises(SettingsError, match=r"^EPOCHS names resnet50, which is not in MODELS \(mobilenet\)\.$"):
        make_settings(NB05, models=["mobilenet"], epochs={"resnet50": 3})


@pytest.mark.parametrize("text", ["{resnet50: 3}", "{'resnet50': 3"])
def test_unreadable_epochs_text_stops_with_one_sentence(make_settings, text):
    with pytest.raises(SettingsError, match="^EPOCHS "):
        make_settings(NB05, epochs=text)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"models": ["resnet51"]}, "Unknown model 'resnet51' in MODELS; choose from resnet50, mobilenet"),
        ({"epochs": 0}, "EPOCHS must be 1 or more, got 0."),
        ({"epochs": -2}, "EPOCHS must be 1 or more, got -2."),
        ({"epochs": "three"}, "EPOCHS must be a whole number, got 'three'."),
        ({"epochs": 2.5}, "EPOCHS must be a whole number, got 2.5."),
        ({"epochs": True}, "EPOCHS must be a whole number, got True."),
        ({"epochs": {"mobilenet_v2": 0}}, "EPOCHS['mobilenet_v2'] must be 1 or more, got 0."),
        ({"batch_size": 0}, "BATCH_SIZE must be 1 or more, got 0."),
        ({"image_size": 16}, "IMAGE_SIZE 16 is below MobileNetV2's minimum of 32; use 32 or more."),
        ({"profile": "fast"}, "PROFILE must be 'auto', 'full', 'laptop' or 'smoke', got 'fast'."),
        ({"limit": "all"}, "LIMIT must be a whole number, got 'all'."),
        ({"limit": 0}, "LIMIT must be 1 or more, got 0."),
        ({"seed": -1}, "SEED must be 0 or more, got -1."),
        ({"weights": "imagenet21k"}, "WEIGHTS must be 'imagenet', 'standin', 'none' or a weights file"),
        ({"redo": "maybe"}, "REDO must be True or False, got 'maybe'."),
        ({"save_models": "sometimes"}, "SAVE_MODELS must be True or False, got 'sometimes'."),
        ({"models": []}, "MODELS must name at least one entry."),
        ({"models": 3}, "MODELS must be a list of names, got 3."),
        ({"models": "[resnet50"}, "MODELS could not be read as a list: '[resnet50'."),
    ],
)
def test_bad_values_stop_with_one_sentence(make_settings, values, message):
    with pytest.raises(SettingsError) as error:
        make_settings(NB01, **values)
    text = str(error.value)
    assert text.startswith(message)
    assert text.endswith(".") and "\n" not in text


def test_unknown_notebook_lists_the_notebooks(make_settings):
    with pytest.raises(SettingsError, match="^Unknown notebook '05_cats_vs_dogs_feature_extraction'; "
                                            "expected one of 01_cats_vs_dogs_feature_extraction, "):
        make_settings("05_cats_vs_dogs_feature_extraction")  # its number before the renumbering


@pytest.mark.parametrize(("name", "largest"), sorted(settings.LARGEST.items()))
def test_values_beyond_what_the_course_can_hold_are_refused_before_anything_is_made(make_settings, name, largest):
    assert make_settings(NB04, **{name.lower(): largest})  # the bound itself is allowed
    with pytest.raises(SettingsError) as error:
        make_settings(NB04, **{name.lower(): largest + 1})
    assert str(error.value) == (f"{name} {largest + 1} is more than this course can hold in memory or time; "
                                f"use at most {largest}.")


def test_a_per_model_epoch_count_is_bounded_too(make_settings):
    with pytest.raises(SettingsError, match=r"^EPOCHS\['mobilenet'\] 10001 is more than this course can hold"):
        make_settings(NB05, epochs={"mobilenet": 10_001})


def test_fine_tuning_notebooks_need_at_least_one_fine_tuning_epoch(make_settings):
    for notebook in settings.FINE_TUNING:
        with pytest.raises(SettingsError, match="^FINE_TUNE_EPOCHS must be 1 or more, got 0.$"):
            make_settings(notebook, fine_tune_epochs=0)
    assert make_settings(NB05, fine_tune_epochs=0).fine_tune_epochs == 0  # trains in one phase


def test_save_models_is_a_bool(make_settings):
    assert make_settings(NB01, save_models="false").save_models is False
    assert make_settings(NB01, save_models=0).save_models is False
    assert make_settings(NB01, save_models="yes").save_models is True
    assert make_settings(NB01, save_models=None).save_models is True  # None: the default, saved


def test_weights_none_a_file_or_the_profiles(make_settings, tmp_path):
    assert make_settings(NB01, weights="none").weights is None
    assert make_settings(NB01, weights="None").weights is None
    mine = tmp_path / "mine.weights.h5"
    mine.write_bytes(b"x")
    assert make_settings(NB01, weights=str(mine)).weights == str(mine)
    assert make_settings(NB01, weights=None).weights == "standin"


def test_missing_data_folder_names_it(make_settings, tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(SettingsError, match=f"DATA_DIR '{missing}' is not a folder; point it at"):
        make_settings(NB01, data_dir=missing)
    assert make_settings(NB01, data_dir=tmp_path).data_dir == tmp_path
    assert make_settings(NB01, data_dir="  ").data_dir is None  # blank: the default source


def test_unknown_strategy_lists_the_valid_forms(make_settings):
    with pytest.raises(SettingsError, match="Unknown strategy 'top:3'; use 'frozen', 'all', 'layers:N'"):
        make_settings(NB04, strategies=["top:3"])


def test_upsampling_notebook_needs_a_multiple_of_32(make_settings):
    with pytest.raises(SettingsError, match="IMAGE_SIZE must be a multiple of 32"):
        make_settings(NB03, image_size=100)
    assert make_settings(NB03, image_size=96).image_size == 96
    assert make_settings(NB04, image_size=100).image_size == 100  # only notebook 03 upsamples


def test_check_strategy():
    for strategy in ("blocks:4", " layers:10 ", "frozen", "all", "from:100", "from:0"):  # from:0: every layer
        settings.check_strategy(strategy)
    with pytest.raises(SettingsError, match="^Strategy 'layers:0' needs N of 1 or more.$"):
        settings.check_strategy("layers:0")
    with pytest.raises(SettingsError, match="^Unknown strategy 'blocks'"):
        settings.check_strategy("blocks")


def test_names_reads_lists_tuples_and_command_line_text():
    assert settings.names("MODELS", ["a", " b "]) == ("a", "b")
    assert settings.names("MODELS", "a, b c") == ("a", "b", "c")
    assert settings.names("MODELS", "('a', 'b')") == ("a", "b")
    with pytest.raises(SettingsError, match=r"^MODELS must be a list of names, got \[1\]\.$"):
        settings.names("MODELS", "[1]")


@pytest.mark.parametrize(("value", "expected"), [
    (None, None), (True, True), (False, False), ("1", True), ("True", True), (" yes ", True), ("on", True),
    (1, True), ("0", False), ("false", False), ("NO", False), ("off", False), (0, False),
])
def test_flag(value, expected):
    assert settings.flag("REDO", value) is expected


@pytest.mark.parametrize(("value", "expected"), [
    ("1", True), ("true", True), ("yes", True), ("anything", True),
    ("", False), ("0", False), ("false", False), ("False", False), (" no ", False), ("off", False),
])
def test_env_flag(monkeypatch, value, expected):
    monkeypatch.setenv("COURSE_SOME_FLAG", value)
    assert settings.env_flag("COURSE_SOME_FLAG") is expected
    monkeypatch.delenv("COURSE_SOME_FLAG")
    assert settings.env_flag("COURSE_SOME_FLAG") is False


def test_results_dir_defaults_to_the_profile_and_env_overrides(monkeypatch, tmp_path, no_gpu):
    monkeypatch.delenv("NB_RESULTS_DIR", raising=False)
    s = settings.resolve(NB01, profile="smoke")
    assert s.results_dir == settings.project_root() / "results" / "smoke"
    assert s.record_dir == s.results_dir / NB01
    # the summary reads every profile's records
    assert settings.resolve("06_results_summary", profile="smoke").results_dir == settings.project_root() / "results"
    monkeypatch.setenv("NB_RESULTS_DIR", str(tmp_path))
    assert settings.resolve(NB01, profile="smoke").results_dir == tmp_path.resolve()
    assert settings.resolve(NB01, profile="smoke", results_dir=tmp_path / "mine").results_dir == tmp_path / "mine"


def test_project_root_and_cache_dir_follow_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("COURSE_ROOT", str(tmp_path))
    assert settings.project_root() == tmp_path.resolve()
    monkeypatch.delenv("COURSE_ROOT")
    assert (settings.project_root() / "notebooks").is_dir()  # this checkout
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path / "cache"))
    assert settings.cache_dir() == tmp_path / "cache" and (tmp_path / "cache").is_dir()
    monkeypatch.delenv("COURSE_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert settings.cache_dir() == tmp_path / "xdg" / "transfer-learning-course"


def test_every_notebook_has_three_profiles():
    assert set(settings.PROFILES) == set(settings.NOTEBOOKS)
    for notebook, profiles in settings.PROFILES.items():
        assert set(profiles) == set(settings.PROFILE_NAMES) == {"full", "laptop", "smoke"}, notebook


def test_every_profiles_models_and_strategies_are_known_and_fit_their_checks():
    for notebook, profiles in settings.PROFILES.items():
        for name, profile in profiles.items():
            for model in profile.models:
                spec = backbones.get(model)
                assert profile.image_size >= spec.min_size, (notebook, name, model)
                assert profile.epochs[model] >= 1, (notebook, name, model)
            for strategy in profile.strategies:
                settings.check_strategy(strategy)


def test_laptop_is_the_real_data_with_imagenet_weights_and_fewer_images(make_settings):
    trained = [nb for nb in settings.NOTEBOOKS if settings.PROFILES[nb]["full"].models]
    assert len(trained) == 5  # 01-05 train; 06 and 07 read their records
    for notebook in trained:
        laptop, full = make_settings(notebook, profile="laptop"), make_settings(notebook, profile="full")
        assert laptop.weights == full.weights == "imagenet" and laptop.limit is not None, notebook
        assert full.limit is None, notebook
        assert laptop.models == full.models and laptop.strategies == full.strategies, notebook
        smoke = make_settings(notebook, profile="smoke")
        assert smoke.weights == "standin", notebook


def test_auto_is_laptop_without_a_gpu_full_with_one(make_settings, monkeypatch, no_gpu):
    assert make_settings(NB01, profile="auto").profile == "laptop"
    assert make_settings(NB01, profile=" AUTO ").profile == "laptop"
    monkeypatch.setattr(settings, "has_gpu", lambda: True)
    assert make_settings(NB01, profile="auto").profile == "full"


def test_nb_profile_picks_the_profile_when_auto(make_settings, monkeypatch, no_gpu):
    monkeypatch.setenv("NB_PROFILE", "smoke")
    s = make_settings(NB01, profile="auto")
    assert s.profile == "smoke" and s.weights == "standin"
    assert make_settings(NB01, profile="laptop").profile == "laptop"  # a profile named wins
    monkeypatch.setenv("NB_PROFILE", "Laptop ")
    assert make_settings(NB01, profile="auto").profile == "laptop"
    monkeypatch.setenv("NB_PROFILE", "quick")
    with pytest.raises(SettingsError, match=r"^\$NB_PROFILE must be 'auto', 'full', 'laptop' or 'smoke', got 'quick'\.$"):
        make_settings(NB01, profile="auto")


def test_full_stops_on_a_cpu_unless_asked(make_settings, monkeypatch, no_gpu):
    monkeypatch.delenv("COURSE_FULL_ON_CPU")
    with pytest.raises(SettingsError, match="PROFILE 'full' would train for about 2 hours on this machine, "
                                            "which has no GPU; use PROFILE = 'laptop'"):
        make_settings(NB01, profile="full")
    assert make_settings(NB01, profile="full", limit=10).profile == "full"  # a dry run
    # notebook 07 rebuilds data sets and trains nothing
    assert make_settings(NB01, profile="full", check_hardware=False).profile == "full"
    assert make_settings("06_results_summary", profile="full").profile == "full"  # trains nothing
    monkeypatch.setenv("NB_PROFILE", "full")  # the environment's choice stops there as well
    with pytest.raises(SettingsError, match="which has no GPU"):
        make_settings(NB01, profile="auto")
    monkeypatch.setenv("COURSE_FULL_ON_CPU", "1")
    assert make_settings(NB01, profile="full").profile == "full"
    monkeypatch.delenv("COURSE_FULL_ON_CPU")
    monkeypatch.setattr(settings, "has_gpu", lambda: True)
    assert make_settings(NB01, profile="full").profile == "full"


@pytest.mark.parametrize("value", ["0", "false", "False", "no", "off", ""])
def test_a_flag_set_to_false_does_not_let_the_full_profile_run_on_a_cpu(make_settings, monkeypatch, no_gpu, value):
    monkeypatch.setenv("COURSE_FULL_ON_CPU", value)
    with pytest.raises(SettingsError, match="which has no GPU"):
        make_settings(NB01, profile="full")


def test_settings_describe_a_line_per_setting(make_settings):
    s = make_settings(NB01, epochs=3)
    lines = s.describe().splitlines()
    assert lines[0].split() == ["profile", "smoke"]
    assert any(line.split()[:1] == ["epochs"] and "'mobilenet_v2': 3" in line for line in lines)
    assert any(line.startswith("save models") for line in lines)
    assert not any(line.startswith(("notebook", "redo", "mixed precision")) for line in lines)


def test_every_error_is_a_course_error():
    from helpers import errors

    kinds = [errors.SettingsError, errors.DataError, errors.CannotSplit, errors.CheckFailed]
    assert all(issubclass(kind, CourseError) for kind in kinds)
    assert issubclass(SettingsError, ValueError) and issubclass(errors.CheckFailed, AssertionError)
    assert settings.SettingsError is errors.SettingsError  # one class, wherever it is imported from
