"""Profiles and settings: `resolve` checks a notebook's parameters cell, fills what is `None`
from its profile in `PROFILES`, and stops with one clear sentence when a value cannot work."""

from __future__ import annotations

import ast
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from helpers import backbones


class CourseError(Exception):
    """An error the user can fix; its message is one sentence that says how."""


class SettingsError(CourseError, ValueError):
    """A parameter that cannot work."""


def project_root() -> Path:
    """The course checkout: $COURSE_ROOT, the folder above an editable `helpers`, or the cwd."""
    if os.environ.get("COURSE_ROOT"):
        return Path(os.environ["COURSE_ROOT"]).resolve()
    here = Path(__file__).resolve().parent.parent
    if (here / "notebooks").is_dir():
        return here
    return Path.cwd()


def cache_dir() -> Path:
    """Where generated sample data and stand-in weights are kept (outside git)."""
    if os.environ.get("COURSE_CACHE"):
        path = Path(os.environ["COURSE_CACHE"])
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
        path = base / "transfer-learning-course"
    path.mkdir(parents=True, exist_ok=True)
    return path


def keras_home() -> Path:
    """Keras's folder for downloads ($KERAS_HOME, else ~/.keras): models/ and datasets/."""
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))


def reports_dir(value: Any = None) -> Path:
    """Where reports go: the given folder, $NB_REPORTS_DIR, or reports/ in the checkout."""
    path = Path(value or os.environ.get("NB_REPORTS_DIR") or project_root() / "reports")
    path.mkdir(parents=True, exist_ok=True)
    return path.resolve()


def env_flag(name: str) -> bool:
    """Whether an environment variable is set to something other than '', 0, false, no or off."""
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no", "off")


def offline() -> bool:
    """True when downloads must not even be tried ($COURSE_OFFLINE=1)."""
    return env_flag("COURSE_OFFLINE")


STRATEGY_HELP = (
    "'frozen', 'all', 'layers:N' (last N layers), 'blocks:N' (last N blocks) "
    "or 'from:N' (layer N onwards)"
)
_STRATEGY = re.compile(r"^(frozen|all|(layers|blocks|from):(\d+))$")


def parse_strategy(strategy: str) -> tuple[str, int]:
    """Split 'blocks:4' into ('blocks', 4); 'frozen' and 'all' give N = 0."""
    text = str(strategy).strip()
    match = _STRATEGY.match(text)
    if not match:
        raise SettingsError(f"Unknown strategy {strategy!r}; use {STRATEGY_HELP}.")
    if match.group(2):
        count = int(match.group(3))
        if count < 1 and match.group(2) != "from":
            raise SettingsError(f"Strategy {strategy!r} needs N of 1 or more.")
        return match.group(2), count
    return text, 0


@dataclass(frozen=True)
class Profile:
    """The numbers of one notebook under one profile."""
    models: tuple[str, ...]
    epochs: dict[str, int]
    fine_tune_epochs: int
    batch_size: int
    image_size: int
    weights: str | None
    limit: int | None = None
    strategies: tuple[str, ...] = ("frozen",)


ARTICLE_STRATEGIES = ("frozen", "layers:5", "layers:10", "layers:40", "blocks:2", "blocks:4",
                      "blocks:10")
PROFILE_NAMES = ("full", "laptop", "smoke")
_BOTH = ("resnet50", "mobilenet")
_V2_EFF = ("mobilenet_v2", "efficientnetv2_b0")

# full: the article's settings (bugs fixed), real data, ImageNet weights, meant for a GPU.
# laptop: real data and ImageNet weights, within 15 minutes per notebook on two CPU cores
#   (`make bench-laptop`): LIMIT images per split, fewer epochs, smaller images.
# smoke: offline, generated data, stand-in weights, small images, about two minutes.
PROFILES: dict[str, dict[str, Profile]] = {
    "01_cifar10_resnet50_vs_mobilenet": {
        "full": Profile(_BOTH, {"resnet50": 30, "mobilenet": 100}, 0, 100, 32, "imagenet",
                        strategies=("all",)),
        "laptop": Profile(_BOTH, {"resnet50": 3, "mobilenet": 10}, 0, 100, 32, "imagenet",
                          limit=4000, strategies=("all",)),
        "smoke": Profile(_BOTH, {"resnet50": 3, "mobilenet": 8}, 0, 50, 32, "standin",
                         strategies=("all",)),
    },
    "02_cifar10_resnet50_upsampling_finetune": {
        "full": Profile(("resnet50",), {"resnet50": 5}, 5, 20, 224, "imagenet",
                        strategies=("from:100",)),
        "laptop": Profile(("resnet50",), {"resnet50": 3}, 2, 20, 128, "imagenet", limit=2000,
                          strategies=("from:100",)),
        "smoke": Profile(("resnet50",), {"resnet50": 4}, 2, 20, 64, "standin",
                         strategies=("from:100",)),
    },
    "03_tf_flowers_unfreezing_strategies": {
        "full": Profile(_BOTH, {"resnet50": 5, "mobilenet": 5}, 15, 32, 224, "imagenet",
                        strategies=ARTICLE_STRATEGIES),
        "laptop": Profile(_BOTH, {"resnet50": 5, "mobilenet": 5}, 3, 32, 128, "imagenet",
                          limit=800, strategies=ARTICLE_STRATEGIES),
        "smoke": Profile(_BOTH, {"resnet50": 5, "mobilenet": 5}, 1, 32, 48, "standin",
                         strategies=ARTICLE_STRATEGIES),
    },
    "04_animals_mobilenetv2_vs_efficientnetv2": {
        "full": Profile(_V2_EFF, {"mobilenet_v2": 10, "efficientnetv2_b0": 25}, 0, 32, 224,
                        "imagenet"),
        "laptop": Profile(_V2_EFF, {"mobilenet_v2": 10, "efficientnetv2_b0": 25}, 0, 32, 160,
                          "imagenet", limit=1500),
        "smoke": Profile(_V2_EFF, {"mobilenet_v2": 4, "efficientnetv2_b0": 10}, 0, 32, 64,
                         "standin"),
    },
    "05_cats_vs_dogs_feature_extraction": {
        "full": Profile(("mobilenet_v2",), {"mobilenet_v2": 10}, 0, 32, 160, "imagenet"),
        "laptop": Profile(("mobilenet_v2",), {"mobilenet_v2": 5}, 0, 32, 160, "imagenet",
                          limit=1000),
        "smoke": Profile(("mobilenet_v2",), {"mobilenet_v2": 10}, 0, 32, 64, "standin"),
    },
    "06_results_summary": dict.fromkeys(PROFILE_NAMES, Profile((), {}, 0, 1, 32, None)),
    "07_light_models_on_device": dict.fromkeys(PROFILE_NAMES, Profile((), {}, 0, 1, 32, None)),
}

NOTEBOOKS = tuple(PROFILES)
SUMMARY_NOTEBOOK = "06_results_summary"
READS_RECORDS = (SUMMARY_NOTEBOOK, "07_light_models_on_device")  # they train nothing

IMAGE_SIZE_MULTIPLE = {"02_cifar10_resnet50_upsampling_finetune": 32}

# Rough hours of the full profile per notebook: on one recent GPU, and on a two-core CPU.
FULL_HOURS = {"01_cifar10_resnet50_vs_mobilenet": (1.0, 60),
              "02_cifar10_resnet50_upsampling_finetune": (2.0, 200),
              "03_tf_flowers_unfreezing_strategies": (1.5, 90),
              "04_animals_mobilenetv2_vs_efficientnetv2": (0.5, 20),
              "05_cats_vs_dogs_feature_extraction": (0.1, 2)}


def has_gpu() -> bool:
    """Whether TensorFlow sees a GPU."""
    import tensorflow as tf
    return bool(tf.config.list_physical_devices("GPU"))


def choose_profile(profile: Any, notebook: str, limit: Any = None) -> str:
    """The profile to run ("auto": full with a GPU, laptop without); full on a CPU stops unless
    LIMIT is set or $COURSE_FULL_ON_CPU=1."""
    name = str(profile).strip().lower()
    if name == "auto":
        return "full" if has_gpu() else "laptop"
    if name not in PROFILE_NAMES:
        raise SettingsError(f"PROFILE must be 'auto', 'full', 'laptop' or 'smoke', got {profile!r}.")
    hours = FULL_HOURS.get(notebook, (0, 0))[1]
    if (name == "full" and hours and limit is None and not has_gpu()
            and not env_flag("COURSE_FULL_ON_CPU")):
        raise SettingsError(f"PROFILE 'full' would train for about {hours:g} hours on this "
                            "machine, which has no GPU; use PROFILE = 'laptop' (the real data, "
                            "within 15 minutes on two cores) or 'smoke' (offline, two minutes), "
                            "or set COURSE_FULL_ON_CPU=1 to go ahead.")
    return name


@dataclass(frozen=True)
class Settings:
    """Everything a notebook run needs to know, checked."""
    notebook: str
    profile: str
    data_dir: Path | None
    weights: str | None
    epochs: dict[str, int]
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
    xla: bool | None = None
    save_models: bool | None = None  # None: those the notebook reports; True: all; False: none

    def epochs_for(self, model: str) -> int:
        """Frozen-phase epochs of one model."""
        return self.epochs[model]

    @property
    def verbose(self) -> int:
        """`verbose=` for `fit`: a bar per epoch when watched, one line per epoch when headless."""
        from helpers.progress import keras_verbose
        return keras_verbose()

    @property
    def record_dir(self) -> Path:
        """Where this notebook's result records go."""
        return self.results_dir / self.notebook

    def describe(self) -> str:
        """A few lines for the notebook to print."""
        lines = [
            f"notebook    {self.notebook}",
            f"profile     {self.profile}",
            f"models      {', '.join(self.models) or '-'}",
            f"epochs      {self.epochs or '-'} (+{self.fine_tune_epochs} fine-tuning)",
            f"batch size  {self.batch_size}",
            f"image size  {self.image_size}x{self.image_size}",
            f"weights     {self.weights}",
            f"data        {self.data_dir or 'the profile default'}"
            + (f" (at most {self.limit} images per split)" if self.limit else ""),
            f"seed        {self.seed}",
            f"results     {self.results_dir}",
        ]
        if self.strategies != ("frozen",):
            lines.insert(4, f"strategies  {', '.join(self.strategies)}")
        return "\n".join(lines)


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
    return value


def names(name: str, value: Any) -> tuple[str, ...]:
    """A list of names: a list, a tuple, 'a,b' or "['a', 'b']" from the command line."""
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


def _bool(name: str, value: Any) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name} must be True or False, got {value!r}.")


def _epochs(value: Any, models: tuple[str, ...], default: dict[str, int]) -> dict[str, int]:
    if value is None:
        return {m: default.get(m, max(default.values(), default=1)) for m in models}
    if isinstance(value, dict):
        unknown = sorted(set(value) - set(models))
        if unknown:
            raise SettingsError(f"EPOCHS names {', '.join(unknown)}, which is not in MODELS "
                                f"({', '.join(models)}).")
        merged = {m: default.get(m, 1) for m in models}
        merged.update({m: _int(f"EPOCHS[{m!r}]", v, 1) for m, v in value.items()})
        return merged
    epochs = _int("EPOCHS", value, 1)
    return {m: epochs for m in models}


def resolve(notebook: str, *, profile: str = "auto", data_dir: Any = None, weights: Any = None,
            epochs: Any = None, fine_tune_epochs: Any = None, batch_size: Any = None,
            image_size: Any = None, models: Any = None, limit: Any = None, seed: Any = 42,
            results_dir: Any = None, strategies: Any = None, redo: Any = False,
            mixed_precision: Any = None, xla: Any = None, save_models: Any = None) -> Settings:
    """Check the parameters cell's values and fill the rest from the profile."""
    if notebook not in PROFILES:
        raise SettingsError(f"Unknown notebook {notebook!r}; expected one of {', '.join(NOTEBOOKS)}.")
    profile = choose_profile(profile, notebook, limit)
    defaults = PROFILES[notebook][profile]
    chosen = defaults.models if models is None else names("MODELS", models)
    size = defaults.image_size if image_size is None else _int("IMAGE_SIZE", image_size, 1)
    for spec in map(backbones.get, chosen):
        if size < spec.min_size:
            raise SettingsError(f"IMAGE_SIZE {size} is below {spec.title}'s minimum of "
                                f"{spec.min_size}; use {spec.min_size} or more.")
    multiple = IMAGE_SIZE_MULTIPLE.get(notebook)
    if multiple and size % multiple:
        raise SettingsError(f"IMAGE_SIZE must be a multiple of {multiple} here (the images are "
                            f"upsampled by a whole factor), got {size}.")

    chosen_strategies = defaults.strategies if strategies is None else names("STRATEGIES", strategies)
    for strategy in chosen_strategies:
        parse_strategy(strategy)

    path = None
    if data_dir is not None and str(data_dir).strip():
        path = Path(str(data_dir)).expanduser()
        if not path.is_dir():
            raise SettingsError(f"DATA_DIR {str(path)!r} is not a folder; point it at the data set "
                                "(layouts in data/README.md) or set DATA_DIR = None for the "
                                "default source.")

    weights = defaults.weights if weights is None else str(weights)
    if weights in ("none", "None"):
        weights = None
    elif weights not in (None, "imagenet", "standin") and not Path(weights).expanduser().is_file():
        raise SettingsError("WEIGHTS must be 'imagenet', 'standin', None or a weights file, got "
                            f"{weights!r}.")

    if results_dir is None:
        # The summary reads every profile's records; the others write to their profile's folder.
        results_dir = os.environ.get("NB_RESULTS_DIR") or (
            project_root() / "results" / ("" if notebook == SUMMARY_NOTEBOOK else profile)
        )

    return Settings(
        notebook=notebook,
        profile=profile,
        data_dir=path,
        weights=weights,
        epochs=_epochs(epochs, chosen, defaults.epochs),
        fine_tune_epochs=(defaults.fine_tune_epochs if fine_tune_epochs is None
                          else _int("FINE_TUNE_EPOCHS", fine_tune_epochs, 0)),
        batch_size=defaults.batch_size if batch_size is None else _int("BATCH_SIZE", batch_size, 1),
        image_size=size,
        models=chosen,
        limit=defaults.limit if limit is None else _int("LIMIT", limit, 1),
        seed=_int("SEED", seed, 0),
        results_dir=Path(results_dir).expanduser().resolve(),
        strategies=chosen_strategies,
        redo=bool(_bool("REDO", redo)),
        mixed_precision=_bool("MIXED_PRECISION", mixed_precision),
        xla=_bool("XLA", xla),
        save_models=_bool("SAVE_MODELS", save_models),
    )
