"""config.resolve: defaults from the profile, and one clear sentence per bad value."""

import pytest

from helpers import config
from helpers.config import SettingsError

NB05 = "05_cats_vs_dogs_feature_extraction"


def test_profile_defaults_fill_what_is_none(make_settings):
    smoke = make_settings(NB05)
    full = make_settings(NB05, profile="full")
    assert smoke.weights == "standin" and full.weights == "imagenet"
    assert full.image_size == 160 and full.batch_size == 32 and full.epochs == {"mobilenet_v2": 10}
    assert smoke.models == ("mobilenet_v2",)


def test_command_line_strings_are_read_as_numbers_and_lists(make_settings):
    s = make_settings("03_tf_flowers_unfreezing_strategies", epochs="3", batch_size=16.0,
                      models="resnet50, mobilenet", strategies="['frozen', 'blocks:2']", limit="20")
    assert s.epochs == {"resnet50": 3, "mobilenet": 3}
    assert s.batch_size == 16 and s.limit == 20
    assert s.models == ("resnet50", "mobilenet")
    assert s.strategies == ("frozen", "blocks:2")


def test_epochs_per_model_from_a_dict(make_settings):
    s = make_settings("01_cifar10_resnet50_vs_mobilenet", profile="full", epochs={"mobilenet": 7})
    assert s.epochs == {"resnet50": 30, "mobilenet": 7}


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"models": ["resnet51"]}, "Unknown model 'resnet51' in MODELS; choose from resnet50, mobilenet"),
        ({"epochs": 0}, "EPOCHS must be 1 or more, got 0."),
        ({"epochs": -2}, "EPOCHS must be 1 or more, got -2."),
        ({"epochs": "three"}, "EPOCHS must be a whole number, got 'three'."),
        ({"epochs": 2.5}, "EPOCHS must be a whole number, got 2.5."),
        ({"epochs": True}, "EPOCHS must be a whole number, got True."),
        ({"batch_size": 0}, "BATCH_SIZE must be 1 or more, got 0."),
        ({"image_size": 16}, "IMAGE_SIZE 16 is below MobileNetV2's minimum of 32; use 32 or more."),
        ({"profile": "fast"}, "PROFILE must be 'auto', 'full', 'laptop' or 'smoke', got 'fast'."),
        ({"limit": "all"}, "LIMIT must be a whole number, got 'all'."),
        ({"weights": "imagenet21k"}, "WEIGHTS must be 'imagenet', 'standin', None or a weights file"),
        ({"redo": "maybe"}, "REDO must be True or False, got 'maybe'."),
        ({"models": []}, "MODELS must name at least one entry."),
        ({"models": 3}, "MODELS must be a list of names, got 3."),
    ],
)
def test_bad_values_stop_with_one_sentence(make_settings, values, message):
    with pytest.raises(SettingsError) as error:
        make_settings(NB05, **values)
    text = str(error.value)
    assert text.startswith(message)
    assert text.endswith(".") and "\n" not in text


def test_missing_data_folder_names_it(make_settings, tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(SettingsError, match=f"DATA_DIR '{missing}' is not a folder; point it at"):
        make_settings(NB05, data_dir=missing)


def test_unknown_strategy_lists_the_valid_forms(make_settings):
    with pytest.raises(SettingsError, match="Unknown strategy 'top:3'; use 'frozen', 'all', 'layers:N'"):
        make_settings("03_tf_flowers_unfreezing_strategies", strategies=["top:3"])


def test_upsampling_notebook_needs_a_multiple_of_32(make_settings):
    with pytest.raises(SettingsError, match="IMAGE_SIZE must be a multiple of 32"):
        make_settings("02_cifar10_resnet50_upsampling_finetune", image_size=100)
    assert make_settings("02_cifar10_resnet50_upsampling_finetune", image_size=96).image_size == 96


def test_parse_strategy():
    assert config.parse_strategy("blocks:4") == ("blocks", 4)
    assert config.parse_strategy("frozen") == ("frozen", 0)
    assert config.parse_strategy("from:100") == ("from", 100)
    with pytest.raises(SettingsError):
        config.parse_strategy("layers:0")


def test_results_dir_defaults_to_the_profile_and_env_overrides(monkeypatch, tmp_path):
    monkeypatch.delenv("NB_RESULTS_DIR", raising=False)
    s = config.resolve(NB05, profile="smoke")
    assert s.results_dir == config.project_root() / "results" / "smoke"
    monkeypatch.setenv("NB_RESULTS_DIR", str(tmp_path))
    assert config.resolve(NB05, profile="smoke").results_dir == tmp_path.resolve()


def test_every_notebook_has_three_profiles():
    for notebook, profiles in config.PROFILES.items():
        assert set(profiles) == {"full", "laptop", "smoke"}, notebook


def test_laptop_is_the_real_data_with_imagenet_weights_and_fewer_images(make_settings):
    for notebook in config.NOTEBOOKS:
        if notebook in config.READS_RECORDS:
            continue
        laptop, full = make_settings(notebook, profile="laptop"), make_settings(notebook, profile="full")
        assert laptop.weights == full.weights == "imagenet" and laptop.limit is not None, notebook
        assert laptop.models == full.models and laptop.strategies == full.strategies, notebook


def test_auto_is_laptop_without_a_gpu_and_full_stops_there_unless_asked(make_settings, monkeypatch):
    monkeypatch.delenv("COURSE_FULL_ON_CPU")
    assert make_settings(NB05, profile="auto").profile == "laptop"
    with pytest.raises(SettingsError, match="PROFILE 'full' would train for about .* hours on this machine, "
                                            "which has no GPU; use PROFILE = 'laptop'"):
        make_settings(NB05, profile="full")
    assert make_settings(NB05, profile="full", limit=10).profile == "full"  # a dry run
    monkeypatch.setenv("COURSE_FULL_ON_CPU", "1")
    assert make_settings(NB05, profile="full").profile == "full"


@pytest.mark.parametrize("value", ["0", "false", "False", "no", "off", ""])
def test_a_flag_set_to_false_does_not_let_the_full_profile_run_on_a_cpu(make_settings, monkeypatch, value):
    monkeypatch.setenv("COURSE_FULL_ON_CPU", value)
    with pytest.raises(SettingsError, match="which has no GPU"):
        make_settings(NB05, profile="full")
