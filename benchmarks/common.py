"""What the benchmarks share: the device set up as the notebooks do, generated data,
models built once per process, timing, FLOP counts, tables and the JSON reports."""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("COURSE_OFFLINE", "1")

from helpers.setup import quiet_stderr  # noqa: E402

with quiet_stderr():  # TensorFlow's start-up lines about oneDNN and CUDA drivers
    import keras
    import numpy as np
    import tensorflow as tf

    tf.config.list_physical_devices()  # initializes the devices, which also prints

from helpers import backbones, config, data, evaluate, models, results, samples, train  # noqa: E402

SCRATCH = Path(os.environ.get("BENCH_SCRATCH", "/tmp/bench"))
REPORTS = config.project_root() / "reports" / "bench"
BACKBONES = ("resnet50", "mobilenet", "mobilenet_v2", "efficientnetv2_b0")
SIZE = 224  # every backbone's default input size
SEED = 42
COMMAND: str | None = None  # set by `python -m benchmarks`

# ---------------------------------------------------------------------- device


_DEVICE: train.Device | None = None


def device() -> train.Device:
    """Set up TensorFlow exactly as a notebook does (precision policy, XLA choice,
    strategy, op determinism on a CPU), once per process."""
    global _DEVICE
    if _DEVICE is None:
        settings = config.resolve("05_cats_vs_dogs_feature_extraction", profile="laptop",
                                  results_dir=SCRATCH / "results")
        _DEVICE = train.configure_device(settings)
    return _DEVICE


def load_average() -> float:
    return round(os.getloadavg()[0], 2)


# ------------------------------------------------------------------------ data


def image_data(train_images: int, val_images: int, size: int, classes: int = 5) -> data.ImageData:
    """Generated, learnable images in memory (the notebooks' sample task), as the
    helpers' `ImageData`: train and validation splits (the test split is the validation one)."""
    x, y = samples.sample_arrays(train_images + val_images, classes, size, seed=SEED)
    train, val = (x[:train_images], y[:train_images]), (x[train_images:], y[train_images:])
    return data.image_data_from_arrays("generated", {"train": train, "val": val, "test": val},
                                       [f"class {k}" for k in range(classes)], "generated sample data")


def arrays(examples: tf.data.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """A split as numpy arrays."""
    xs, ys = zip(*examples.as_numpy_iterator())
    return np.stack(xs), np.asarray(ys)


# ---------------------------------------------------------------------- models


_CLASSIFIERS: dict[tuple, tuple[keras.Model, keras.Model]] = {}


def classifier(name: str, size: int = SIZE, classes: int = 5, *, strategy: str = "frozen",
               dropout: float | None = None, fresh: bool = False) -> tuple[keras.Model, keras.Model]:
    """(model, base): the notebooks' classifier (preprocessing, the base in inference mode with
    `strategy`'s layers trainable, pooling, optional Dropout, Dense logits), random weights
    (speed does not depend on them), built from the same seed under the device's strategy;
    shared within the process unless `fresh`."""
    key = (name, size, classes, strategy, dropout)
    if fresh or key not in _CLASSIFIERS:
        keras.utils.set_random_seed(SEED)
        with device().strategy.scope():
            base = models.build_base(name, size)
            unfreeze(base, name, strategy)
            inputs = keras.Input((size, size, 3))
            x = inputs
            layer = models.preprocessing(name)
            if layer is not None:
                x = layer(x)
            x = models.InferenceMode(base, name="base")(x)
            x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
            if dropout:
                x = keras.layers.Dropout(dropout, name="dropout")(x)
            outputs = keras.layers.Dense(classes, dtype="float32", name="logits")(x)
            built = keras.Model(inputs, outputs, name=f"{name}_classifier"), base
        if fresh:
            return built
        _CLASSIFIERS[key] = built
    return _CLASSIFIERS[key]


def unfreeze(base: keras.Model, name: str, strategy: str) -> None:
    """Make the layers a strategy names trainable and freeze the others, as the notebooks do:
    'frozen', 'all', 'layers:N' (the last N), 'blocks:N' (the last N blocks), 'from:N'."""
    kind, n = config.parse_strategy(strategy)
    layers = base.layers
    if kind == "blocks":
        blocks = [backbones.get(name).block_of(layer.name) for layer in layers]
        last = [b for b in dict.fromkeys(blocks) if b is not None][-n:]
        chosen = [block in last for block in blocks]
    else:
        start = {"frozen": len(layers), "all": 0, "layers": len(layers) - n, "from": n}[kind]
        chosen = [index >= start for index in range(len(layers))]
    for layer, trains in zip(layers, chosen):
        layer.trainable = trains


def compile_model(model: keras.Model, learning_rate: float = 1e-3) -> keras.Model:
    """Adam and sparse cross-entropy on logits, XLA when the device asks for it."""
    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"], jit_compile=device().xla)
    return model


_BARE: dict[int, Callable] = {}


def bare_function(model: keras.Model) -> Callable:
    """A bare `tf.function` of the model, one per model; it traces each input shape anew."""
    if id(model) not in _BARE:
        _BARE[id(model)] = tf.function(lambda x: model(x, training=False))
    return _BARE[id(model)]


def pixels(batch: int, size: int = SIZE) -> tf.Tensor:
    """A batch of random 0-255 float32 pixels, like the helpers' pipelines deliver."""
    return tf.random.uniform((batch, size, size, 3), 0, 255, seed=0)


_FLOPS: dict[int, float] = {}


def gflops_per_image(model: keras.Model) -> float:
    """Forward-pass GFLOPs of one image through `model` (e.g. a backbone without its top),
    counted by TensorFlow's profiler on the traced graph (2 FLOPs per multiply-add)."""
    key = id(model)
    if key not in _FLOPS:
        fn = tf.function(lambda x: model(x, training=False))
        spec = tf.TensorSpec((1, *model.input_shape[1:]), tf.float32)
        graph = fn.get_concrete_function(spec).graph
        options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
        options["output"] = "none"
        logger, level = tf.get_logger(), tf.get_logger().level
        logger.setLevel("ERROR")  # the v1 profiler announces its deprecation
        try:
            profile = tf.compat.v1.profiler.profile(graph=graph, options=options)
        finally:
            logger.setLevel(level)
        _FLOPS[key] = profile.total_float_ops / 1e9
    return _FLOPS[key]


def paper_gflops(name: str, size: int = SIZE) -> float:
    """The published figure (`helpers.backbones`), scaled with the square of the image side."""
    return backbones.get(name).paper_gflops_224 * (size / 224) ** 2


# ---------------------------------------------------------------------- timing


def timed(fn: Callable[[], object]) -> tuple[object, float]:
    """(result, seconds) of one call."""
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def call_times(fn: Callable[[], object], *, repeats: int, warmup: int = 1,
               max_seconds: float | None = None, min_repeats: int = 3) -> list[float]:
    """`evaluate.call_times`, the records' timing loop, with no time limit by default."""
    return evaluate.call_times(fn, repeats=repeats, warmup=warmup, at_least=min_repeats,
                               max_seconds=float("inf") if max_seconds is None else max_seconds)


def median(values) -> float:
    return float(statistics.median(values))


class EpochTimer(keras.callbacks.Callback):
    """Wall seconds of each epoch, from its start to the end of every callback before
    this one (validation, logging, checkpoints included), and of its training part alone
    (from the start of the epoch to the start of its validation)."""

    def __init__(self):
        super().__init__()
        self.seconds: list[float] = []
        self.train_seconds: list[float] = []
        self._start = 0.0
        self._validating = False

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()
        self._validating = False

    def on_test_begin(self, logs=None):
        if not self._validating:
            self.train_seconds.append(time.perf_counter() - self._start)
            self._validating = True

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)
        if not self._validating:
            self.train_seconds.append(self.seconds[-1])

    def steady(self) -> float:
        """Median epoch after the first (which also traces the train and test steps)."""
        later = self.seconds[1:] or self.seconds
        return median(later)

    def fastest(self) -> float:
        """Fastest epoch after the first: other processes can only slow an epoch down."""
        return min(self.seconds[1:] or self.seconds)

    def undisturbed(self, total: float) -> float:
        """A run of `total` seconds with every epoch as fast as its fastest later one: the
        work outside the epochs plus epochs x the fastest epoch. This leaves out the first
        epoch's tracing and whatever other processes took from the later ones."""
        return total - sum(self.seconds) + len(self.seconds) * self.fastest()

    def tracing(self) -> float:
        """What the first epoch took beyond the fastest later one: tracing and warm-up
        (an upper bound, so a run minus it is a lower bound of its steady time)."""
        return max(0.0, self.seconds[0] - self.fastest()) if self.seconds else 0.0


_PEAK: dict[str, float] = {}


def machine_gflops(n: int = 4096, repeats: int = 7) -> dict[str, float]:
    """This machine's float32 limit as TensorFlow reaches it: a large square matmul
    (2 n^3 FLOPs), median and best of `repeats` timed calls after a warm-up."""
    if not _PEAK:
        a = tf.random.normal((n, n), seed=1)
        b = tf.random.normal((n, n), seed=2)
        matmul = tf.function(lambda a, b: tf.matmul(a, b))
        times = call_times(lambda: matmul(a, b).numpy(), repeats=repeats, warmup=2)
        _PEAK.update(median=2 * n**3 / median(times) / 1e9, best=2 * n**3 / min(times) / 1e9, n=n)
    return dict(_PEAK)


# ----------------------------------------------------------------------- output


def table(title: str, columns: list[tuple[str, str, str]], rows: list[dict],
          notes: list[str] = ()) -> str:
    """A plain-text table: `columns` are (key, header, format)."""
    cells = [[header for _, header, _ in columns]]
    for row in rows:
        line = []
        for key, _, fmt in columns:
            value = row.get(key)
            line.append("-" if value is None else format(value, fmt) if fmt else str(value))
        cells.append(line)
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]

    def render(line):
        return "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(line, widths)))

    rule = "-" * len(render(cells[0]))
    out = [title, rule, render(cells[0]), rule] + [render(r) for r in cells[1:]] + [rule]
    out += [f"  {note}" for note in notes]
    text = "\n".join(out)
    print(text, flush=True)
    return text


def write_report(name: str, payload: dict, started: float, load_before: float) -> Path:
    """reports/bench/<name>.json with the figures and where they were measured."""
    dev = device()
    payload = {
        "benchmark": name,
        "command": COMMAND or f"python -m benchmarks.{name}",
        **payload,
        "seconds": round(time.perf_counter() - started, 1),
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "device": dev.describe(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "git_commit": results.git_commit(),
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    REPORTS.mkdir(parents=True, exist_ok=True)
    path = REPORTS / f"{name}.json"
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=float) + "\n")
    os.replace(tmp, path)
    print(f"  -> {path}  ({payload['seconds']:.0f} s, load average {load_before} -> "
          f"{payload['load_average_after']})\n", flush=True)
    return path


def main(run: Callable[..., dict]) -> None:
    """Entry point of `python -m benchmarks.<name>`: `--quick` shrinks the work."""
    quick = "--quick" in sys.argv[1:]
    run(quick=quick)
