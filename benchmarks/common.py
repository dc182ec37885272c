"""What the benchmarks of `make bench` share: TensorFlow set up as a notebook's first cell sets it up,
generated images, the notebooks' models, epoch timing, and `Part`: one benchmark's time budget,
its line per figure and its report, reports/bench/<name>.json."""

from __future__ import annotations

import contextlib
import io
import json
import os
import platform
import statistics
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

os.environ.setdefault("COURSE_OFFLINE", "1")
os.environ.setdefault("COURSE_HEADLESS", "1")  # no progress bars from cache.outputs

from helpers.progress import quiet_stderr  # noqa: E402

with quiet_stderr():  # TensorFlow's start-up lines
    import keras
    import tensorflow as tf

from helpers import backbones, pipelines, samples, setup  # noqa: E402
from helpers.layers import InferenceMode  # noqa: E402
from helpers.records import atomic_write, git_commit  # noqa: E402
from helpers.settings import project_root  # noqa: E402

REPORTS = project_root() / "reports" / "bench"
SEED = 42
BATCH = 32
COMMAND: str | None = None  # set by `python -m benchmarks`
QUICK = False  # --quick: a smoke test of the benchmarks themselves, figures not meaningful
_STARTED = False


def start() -> None:
    """Precision policy and op determinism by `helpers.setup.start`, as in a notebook on this machine."""
    global _STARTED
    if not _STARTED:
        namespace = {"__annotations__": {"PROFILE": str, "RESULTS_DIR": str}, "PROFILE": "laptop",
                     "RESULTS_DIR": tempfile.mkdtemp(prefix="bench-")}
        with contextlib.redirect_stdout(io.StringIO()):
            setup.start("04_tf_flowers_unfreezing_strategies", namespace)
        _STARTED = True


def load_average() -> float:
    return round(os.getloadavg()[0], 2)


def examples(count: int, size: int, seed: int = SEED, classes: int = 5):
    """(examples, labels): generated, learnable uint8 images in memory (the smoke profile's shapes)."""
    x, y = samples.sample_arrays(count, classes, size, seed)
    return pipelines.examples_from_arrays(x, y), y.astype("int32")


def classifier(name: str, size: int, classes: int = 5, wrap: bool = True) -> tuple[keras.Model, keras.Model]:
    """(model, base), random weights from the seed: raw pixels -> the backbone's preprocessing -> the
    frozen base -> "pool" -> "logits"; the base in `InferenceMode` as notebook 04 builds it, or called
    with training=False as notebook 02 does (`wrap=False`)."""
    keras.utils.set_random_seed(SEED)
    spec = backbones.get(name)
    base = spec.constructor()(include_top=False, weights=None, input_shape=(size, size, 3))
    base.trainable = False
    inputs = keras.Input((size, size, 3))
    x = spec.preprocess_input()(inputs)
    x = InferenceMode(base)(x) if wrap else base(x, training=False)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = keras.layers.Dense(classes, dtype="float32", name="logits")(x)
    return keras.Model(inputs, outputs, name=name), base


_SHARED: dict = {}


def shared_classifier(name: str, size: int) -> tuple[keras.Model, keras.Model]:
    """`classifier`, built once per process (benchmarks 3 and 4 measure the same models)."""
    if (name, size) not in _SHARED:
        _SHARED[name, size] = classifier(name, size)
    return _SHARED[name, size]


def compile_at(model: keras.Model, learning_rate: float) -> None:
    """The notebooks' compile: Adam, cross-entropy on logits, accuracy."""
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])


class EpochTimes(keras.callbacks.Callback):
    """Wall seconds of each epoch of a `fit` (validation included)."""

    def on_train_begin(self, logs=None):
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self.started)

    def later(self) -> float:
        """The median epoch after the first (which also traces the train and test steps)."""
        return statistics.median(self.seconds[1:] or self.seconds)


def timed(call):
    """(what `call()` returns, its wall seconds)."""
    started = time.perf_counter()
    value = call()
    return value, time.perf_counter() - started


def relative_gap(a, b) -> float:
    """The largest relative difference of two sequences of losses."""
    return max(abs(x - y) / abs(y) for x, y in zip(a, b))


class Part:
    """One benchmark's run: a configuration starts only while the slowest one so far still fits in
    what is left of `budget` seconds; skipped ones and an overrun are said in the output and the
    report."""

    def __init__(self, name: str, title: str, budget: float):
        self.name, self.title, self.budget = name, title, budget
        self.rows: list[dict] = []
        self.skipped: list[str] = []
        self.slowest, self.started, self.load_before = 0.0, time.perf_counter(), load_average()
        start()
        print(f"{title} (budget {budget:.0f} s, load average {self.load_before})", flush=True)

    def spent(self) -> float:
        return time.perf_counter() - self.started

    def allows(self, what: str) -> bool:
        if self.spent() + self.slowest <= self.budget:
            self._began = time.perf_counter()
            return True
        self.skipped.append(what)
        print(f"  {what}: NOT RUN, {self.spent():.0f} s of the {self.budget:.0f} s budget are spent and "
              f"the slowest configuration so far took {self.slowest:.0f} s", flush=True)
        return False

    def add(self, row: dict, line: str) -> None:
        """A measured configuration, and its line of figures."""
        row["seconds"] = round(time.perf_counter() - self._began, 1)
        self.slowest = max(self.slowest, row["seconds"])
        row["load_average"] = load_average()
        self.rows.append(row)
        print(f"  {line}  [{row['seconds']:.0f} s, load {row['load_average']}]", flush=True)

    def write(self, **figures) -> Path:
        """reports/bench/<name>.json: the figures, the budget kept or not, where they were measured."""
        seconds = round(self.spent(), 1)
        within = seconds <= self.budget and not self.skipped
        payload = {
            "benchmark": self.name, "title": self.title, "command": COMMAND or f"python -m benchmarks {self.name}",
            "quick": QUICK, **figures, "rows": self.rows, "budget_seconds": self.budget, "seconds": seconds,
            "within_budget": within, "not_run": self.skipped, "load_average_before": self.load_before,
            "load_average_after": load_average(), "cpu_count": os.cpu_count(), "platform": platform.platform(),
            "tensorflow": tf.__version__, "keras": keras.__version__, "git_commit": git_commit(),
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        REPORTS.mkdir(parents=True, exist_ok=True)
        path = REPORTS / f"{self.name}.json"
        atomic_write(path, lambda tmp: tmp.write_text(json.dumps(payload, indent=2, default=float) + "\n"))
        state = f"{'within' if seconds <= self.budget else 'OVER'} its budget of {self.budget:.0f} s"
        state += f"; NOT RUN for lack of time: {', '.join(self.skipped)}" if self.skipped else ""
        print(f"  {seconds:.0f} s, {state}; load average {self.load_before} -> {payload['load_average_after']} "
              f"-> {path}\n", flush=True)
        return path
