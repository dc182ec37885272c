"""Profiles and settings: `resolve` checks a notebook's parameters, fills what is `None` from
its profile in `PROFILES`, and stops with one sentence when a value cannot work. Used by
`setup.start`, the first call of every notebook ("Setup")."""

from __future__ import annotations

import ast
import csv
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from helpers import backbones
from helpers.errors import SettingsError


def project_root() -> Path:
    """The course checkout: $COURSE_ROOT, the folder above an editable `helpers`, or the cwd (06, "Setup")."""
    if os.environ.get("COURSE_ROOT"):
        return Path(os.environ["COURSE_ROOT"]).resolve()
    here = Path(__file__).resolve().parent.parent
    return here if (here / "notebooks").is_dir() else Path.cwd()


def cache_dir() -> Path:
    """Where sample data, stand-in weights and converted images are kept once per machine (01-05, "Setup")."""
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    path = Path(os.environ.get("COURSE_CACHE") or base / "transfer-learning-course")
    path.mkdir(parents=True, exist_ok=True)
    return path


def keras_home() -> Path:
    """Keras's downloads ($KERAS_HOME, else ~/.keras): models/ and datasets/ (01-05, "Setup" and data)."""
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))


def env_flag(name: str) -> bool:
    """Whether environment variable `name` is not '', 0, false, no or off (every notebook's "Setup")."""
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no", "off")


def check_strategy(strategy: str) -> None:
    """Refuse what is not 'frozen', 'all', 'layers:N', 'blocks:N' (N of 1 or more) or 'from:N' (STRATEGIES,
    04's "Setup")."""
    match = re.fullmatch(r"frozen|all|(layers|blocks|from):(\d+)", str(strategy).strip())
    if not match:
        raise SettingsError(f"Unknown strategy {strategy!r}; use 'frozen', 'all', 'layers:N' (last N layers), "
                            "'blocks:N' (last N blocks) or 'from:N' (layer N onwards).")
    if match.group(1) in ("layers", "blocks") and int(match.group(2)) < 1:
        raise SettingsError(f"Strategy {strategy!r} needs N of 1 or more.")


@dataclass(frozen=True)
class Profile:
    """The numbers of one notebook under one profile (a row of helpers/profiles.csv; printed by the "Setup"
    of every notebook)."""
    models: tuple[str, ...]
    epochs: dict[str, int]
    fine_tune_epochs: int
    batch_size: int
    image_size: int
    weights: str | None
    limit: int | None = None
    strategies: tuple[str, ...] = ("frozen",)


ARTICLE_STRATEGIES = ("frozen", "layers:5", "layers:10", "layers:40", "blocks:2", "blocks:4", "blocks:10")
PROFILE_NAMES = ("full", "laptop", "smoke")
# Every notebook's numbers under each profile, a table a reader can open (helpers/profiles.csv):
# full: the article's settings (its bugs fixed), real data, ImageNet weights; meant for a GPU.
# laptop: real data and ImageNet weights, each notebook within 15 minutes on two CPU cores
#   (`make bench-laptop`): LIMIT images per split, fewer epochs, smaller images.
# smoke: offline, generated data, stand-in weights, small images.
PROFILES: dict[str, dict[str, Profile]] = {}
with open(Path(__file__).with_name("profiles.csv"), newline="", encoding="utf-8") as _file:
    for _row in csv.DictReader(_file):
        _models = tuple(_row["models"].split())
        PROFILES.setdefault(_row["notebook"], {})[_row["profile"]] = Profile(
            _models, dict(zip(_models, map(int, _row["epochs"].split()))), int(_row["fine_tune_epochs"]),
            int(_row["batch_size"]), int(_row["image_size"]), _row["weights"] or None,
            int(_row["limit"]) if _row["limit"] else None, tuple(_row["strategies"].split()))
NOTEBOOKS = tuple(PROFILES)
SUMMARY_NOTEBOOK = "06_results_summary"
FINE_TUNING = ("03_cifar10_resnet50_upsampling_finetune", "04_tf_flowers_unfreezing_strategies")
IMAGE_SIZE_MULTIPLE = {"03_cifar10_resnet50_upsampling_finetune": 32}
# Rough hours of the full profile on a two-core CPU, for the sentence that stops it there.
CPU_HOURS = dict(zip(NOTEBOOKS, (2, 20, 200, 90, 60)))
# Bounds checked before anything is allocated (larger values only exhaust memory or time).
LARGEST = {"IMAGE_SIZE": 1024, "BATCH_SIZE": 4096, "EPOCHS": 10_000, "FINE_TUNE_EPOCHS": 10_000}


def has_gpu() -> bool:
    """Whether TensorFlow sees a GPU (PROFILE = 'auto', every notebook's "Setup")."""
    import tensorflow as tf
    return bool(tf.config.list_physical_devices("GPU"))


def choose_profile(profile: Any, notebook: str, limit: Any = None, check_hardware: bool = True) -> str:
    """The profile to run ("auto": $NB_PROFILE, else full with a GPU and laptop without); full on a CPU
    stops unless LIMIT is set, $COURSE_FULL_ON_CPU=1, or nothing trains (every notebook's "Setup")."""
    name = str(profile).strip().lower()
    if name == "auto":  # $NB_PROFILE chooses for every notebook (the notebook tests: smoke)
        name = os.environ.get("NB_PROFILE", "").strip().lower() or ("full" if has_gpu() else "laptop")
    if name not in PROFILE_NAMES:
        source = "$NB_PROFILE" if str(profile).strip().lower() == "auto" else "PROFILE"
        raise SettingsError(f"{source} must be 'auto', 'full', 'laptop' or 'smoke', got {name!r}.")
    hours = CPU_HOURS.get(notebook, 0)
    if (name == "full" and hours and limit is None and check_hardware and not has_gpu()
            and not env_flag("COURSE_FULL_ON_CPU")):
        raise SettingsError(f"PROFILE 'full' would train for about {hours:g} hours on this machine, which has "
                            "no GPU; use PROFILE = 'laptop' (the real data, within 15 minutes on two cores) or "
                            "'smoke' (offline, a minute or two), or set COURSE_FULL_ON_CPU=1 to go ahead.")
    return name


@dataclass(frozen=True)
class Settings:
    """Everything a notebook run needs to know, checked; plain values (`setup.start`, every "Setup")."""
    notebook: str
    profile: str
    data_dir: Path | None
    weights: str | None  # "imagenet", "standin", a weights file, or None (random)
    epochs: dict[str, int]  # frozen-phase epochs per model
    fine_tune_epochs: int
    batch_size: int
    image_size: int
    models: tuple[str, ...]
    limit: int | None
    seed: int
    results_dir: Path
    strategies: tuple[str, ...] = ("frozen",)
    redo: bool = False
    mixed_precision: bool | None = None
    save_models: bool = True

    @property
    def record_dir(self) -> Path:
        """Where this notebook's result records go."""
        return self.results_dir / self.notebook

    def describe(self) -> str:
        """What this run will do, a line per setting (printed by `setup.start`)."""
        shown = {k: v for k, v in vars(self).items() if k not in ("notebook", "redo", "mixed_precision")}
        return "\n".join(f"{k.replace('_', ' '):17s}{v}" for k, v in shown.items())


def _int(name: str, value: Any, minimum: int) -> int:
    """A whole number from the notebook or the command line ('3', 3.0 and 3 all work)."""
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise SettingsError(f"{name} must be a whole number, got {value.strip()!r}.") from None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise SettingsError(f"{name} must be a whole number, got {value!r}.")
    if value < minimum:
        raise SettingsError(f"{name} must be {minimum} or more, got {value}.")
    largest = LARGEST.get(name.split("[")[0])
    if largest and value > largest:
        raise SettingsError(f"{name} {value} is more than this course can hold in memory or time; "
                            f"use at most {largest}.")
    return value


def names(name: str, value: Any) -> tuple[str, ...]:
    """A list of names: a list, a tuple, 'a,b' or "['a', 'b']" (MODELS, STRATEGIES; 02, 04, 05 "Setup")."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith(("[", "(")):
            try:
                value = ast.literal_eval(text)
            except (ValueError, SyntaxError) as error:
                raise SettingsError(f"{name} could not be read as a list: {text!r}.") from error
        else:
            value = [part for part in re.split(r"[,\s]+", text) if part]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise SettingsError(f"{name} must be a list of names, got {value!r}.")
    if not value:
        raise SettingsError(f"{name} must name at least one entry.")
    return tuple(v.strip() for v in value)


def flag(name: str, value: Any) -> bool | None:
    """True, False or None from 'true', '0', 'no', ... (REDO, MIXED_PRECISION: every notebook's "Setup")."""
    if value is None or isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name} must be True or False, got {value!r}.")


def _epochs(value: Any, models: tuple[str, ...], default: dict[str, int]) -> dict[str, int]:
    if isinstance(value, str) and value.strip().startswith("{"):
        try:
            value = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            raise SettingsError(f"EPOCHS could not be read as a number per model: {value.strip()!r}; write it "
                                """as {"mobilenet_v2": 10, ...}.""") from None
    if value is None:
        return {m: default.get(m, max(default.values(), default=1)) for m in models}
    if isinstance(value, dict):
        unknown = sorted(set(value) - set(models))
        if unknown:
            raise SettingsError(f"EPOCHS names {', '.join(unknown)}, which is not in MODELS ({', '.join(models)}).")
        return {m: default.get(m, 1) for m in models} | {m: _int(f"EPOCHS[{m!r}]", v, 1) for m, v in value.items()}
    return dict.fromkeys(models, _int("EPOCHS", value, 1))


def resolve(notebook: str, *, profile: str = "auto", data_dir: Any = None, weights: Any = None, epochs: Any = None,
            fine_tune_epochs: Any = None, batch_size: Any = None, image_size: Any = None, models: Any = None,
            limit: Any = None, seed: Any = 42, results_dir: Any = None, strategies: Any = None, redo: Any = False,
            mixed_precision: Any = None, save_models: Any = True, check_hardware: bool = True) -> Settings:
    """Check the parameters' values and fill what is None from the profile (every notebook's "Setup",
    through `setup.start`); `check_hardware`: whether the full profile on a CPU stops (notebook 07,
    "Each model, and the data it was trained on", rebuilds data sets and trains nothing)."""
    if notebook not in PROFILES:
        raise SettingsError(f"Unknown notebook {notebook!r}; expected one of {', '.join(NOTEBOOKS)}.")
    profile = choose_profile(profile, notebook, limit, check_hardware)
    defaults = PROFILES[notebook][profile]
    chosen = defaults.models if models is None else names("MODELS", models)
    size = defaults.image_size if image_size is None else _int("IMAGE_SIZE", image_size, 1)
    for spec in map(backbones.get, chosen):
        if size < spec.min_size:
            raise SettingsError(f"IMAGE_SIZE {size} is below {spec.title}'s minimum of {spec.min_size}; use "
                                f"{spec.min_size} or more.")
    multiple = IMAGE_SIZE_MULTIPLE.get(notebook)
    if multiple and size % multiple:
        raise SettingsError(f"IMAGE_SIZE must be a multiple of {multiple} here (the images are upsampled by a "
                            f"whole factor), got {size}.")
    chosen_strategies = defaults.strategies if strategies is None else names("STRATEGIES", strategies)
    for strategy in chosen_strategies:
        check_strategy(strategy)
    path = None
    if data_dir is not None and str(data_dir).strip():
        path = Path(str(data_dir)).expanduser()
        if not path.is_dir():
            raise SettingsError(f"DATA_DIR {str(path)!r} is not a folder; point it at the data set (layouts in "
                                "data/README.md) or set DATA_DIR = None for the default source.")
    weights = defaults.weights if weights is None else str(weights)
    if weights in ("none", "None"):
        weights = None
    elif weights not in (None, "imagenet", "standin") and not Path(weights).expanduser().is_file():
        raise SettingsError(f"WEIGHTS must be 'imagenet', 'standin', 'none' or a weights file, got {weights!r}.")
    if results_dir is None or not str(results_dir).strip():
        # The summary reads every profile's records; the others write to their profile's folder.
        results_dir = os.environ.get("NB_RESULTS_DIR") or (
            project_root() / "results" / ("" if notebook == SUMMARY_NOTEBOOK else profile))
    minimum_fine_tune = 1 if notebook in FINE_TUNING else 0
    return Settings(
        notebook=notebook, profile=profile, data_dir=path, weights=weights,
        epochs=_epochs(epochs, chosen, defaults.epochs),
        fine_tune_epochs=(defaults.fine_tune_epochs if fine_tune_epochs is None
                          else _int("FINE_TUNE_EPOCHS", fine_tune_epochs, minimum_fine_tune)),
        batch_size=defaults.batch_size if batch_size is None else _int("BATCH_SIZE", batch_size, 1),
        image_size=size, models=chosen, limit=defaults.limit if limit is None else _int("LIMIT", limit, 1),
        seed=_int("SEED", seed, 0), results_dir=Path(results_dir).expanduser().resolve(), strategies=chosen_strategies,
        redo=bool(flag("REDO", redo)), mixed_precision=flag("MIXED_PRECISION", mixed_precision),
        save_models=flag("SAVE_MODELS", save_models) is not False)
