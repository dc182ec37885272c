"""Compile and fit: the device setup, two-phase training, the frozen-base fast path,
and resuming an interrupted run.

A `TrainPlan` says what the article did: the optimizer, what trains in the first
phase (usually nothing of the base: only the head), and optionally a second phase in
which part of the base is unfrozen and the model recompiled at a lower learning rate.
`train` runs the plan and returns one `History` across both phases.
"""

from __future__ import annotations

import csv
import math
import os
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from helpers import data as data_module
from helpers.config import CourseError, Settings, SettingsError
from helpers.finetune import apply_strategy
from helpers.models import Classifier

# ------------------------------------------------------------------------- device


@dataclass(frozen=True)
class Device:
    """Where and how training runs."""

    name: str
    gpus: int
    mixed_precision: bool
    xla: bool
    strategy: tf.distribute.Strategy
    deterministic: bool = False

    def describe(self) -> str:
        return (
            f"{self.name}; mixed precision {'on' if self.mixed_precision else 'off'}, "
            f"XLA {'on' if self.xla else 'off'}, {self.strategy.num_replicas_in_sync} replica(s) "
            f"({type(self.strategy).__name__}), deterministic ops {'on' if self.deterministic else 'off'}"
        )


def device_name() -> str:
    """A short description of the accelerator, or of the CPU."""
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        try:
            details = tf.config.experimental.get_device_details(gpus[0])
            label = details.get("device_name", "GPU")
        except (ValueError, RuntimeError):
            label = "GPU"
        return f"{len(gpus)}x {label}"
    return f"CPU ({os.cpu_count()} cores)"


def precision_policy(mixed_precision: bool | None, has_gpu: bool) -> str:
    """The Keras dtype policy: mixed_float16 on a GPU unless switched off; float32 on a CPU."""
    use = has_gpu if mixed_precision is None else (mixed_precision and has_gpu)
    return "mixed_float16" if use else "float32"


def distribution_strategy() -> tf.distribute.Strategy:
    """MultiWorkerMirroredStrategy when TF_CONFIG describes a cluster, MirroredStrategy
    when several GPUs are visible, otherwise the default (single-device) strategy."""
    if os.environ.get("TF_CONFIG"):
        return tf.distribute.MultiWorkerMirroredStrategy()
    if len(tf.config.list_logical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def configure_device(settings: Settings) -> Device:
    """Set the precision policy and pick the distribution strategy. Call before building models.

    On a CPU, TensorFlow's op determinism is switched on (it costs nothing measurable there),
    so the same seed gives the same metrics; on a GPU it would slow training and stays off."""
    has_gpu = bool(tf.config.list_physical_devices("GPU"))
    policy = precision_policy(settings.mixed_precision, has_gpu)
    keras.mixed_precision.set_global_policy(policy)
    xla = has_gpu if settings.xla is None else bool(settings.xla)
    if not has_gpu:
        tf.config.experimental.enable_op_determinism()
    return Device(device_name(), len(tf.config.list_physical_devices("GPU")),
                  policy == "mixed_float16", xla, distribution_strategy(), deterministic=not has_gpu)


# ---------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class TrainPlan:
    """What to train, with what, for how long."""

    optimizer: str = "adam"  # "adam", "sgd" or "rmsprop"
    learning_rate: float = 1e-3
    momentum: float = 0.0
    epochs: int = 5  # first phase
    first_phase: str = "frozen"  # what of the base trains in the first phase
    strategy: str = "frozen"  # what of the base trains in the fine-tuning phase
    fine_tune_epochs: int = 0
    fine_tune_learning_rate: float | None = None  # None: a tenth of learning_rate
    reduce_lr: dict | None = None  # keyword arguments of ReduceLROnPlateau
    early_stopping: int | None = None  # patience on val_loss; best weights are restored
    cached_features: bool = True  # use the frozen-base fast path where it applies

    @property
    def fine_tunes(self) -> bool:
        return self.strategy != self.first_phase and self.fine_tune_epochs > 0

    @property
    def fine_tune_lr(self) -> float:
        return self.fine_tune_learning_rate or self.learning_rate / 10

    def describe(self, augmented: bool = False) -> str:
        """The plan in words; `augmented`: whether the model augments its inputs (then the
        frozen-base fast path cannot apply)."""
        what = {"frozen": "the head trains on the frozen base", "all": "every layer trains"}.get(
            self.first_phase, f"{self.first_phase} and the head train")
        fast = self.cached_features and self.first_phase == "frozen" and not augmented
        lines = [f"phase 1: {what}{' (on cached features: the base runs once)' if fast else ''}, "
                 f"{self.optimizer_label()} at {self.learning_rate:g}, {_epochs(self.epochs)}"]
        if self.reduce_lr:
            r = self.reduce_lr
            lines.append(f"         learning rate x{r.get('factor', 0.1):g} after {r.get('patience', 10)} "
                         f"epochs without a better {r.get('monitor', 'val_loss')} "
                         f"(floor {r.get('min_lr', 0):g})")
        if self.early_stopping:
            lines.append(f"         stops when validation loss has not improved for "
                         f"{_epochs(self.early_stopping)}, keeping the best epoch's weights")
        if self.fine_tunes:
            lines.append(f"phase 2: unfreeze {self.strategy}, recompile at {self.fine_tune_lr:g}, "
                         f"{_epochs(self.fine_tune_epochs, 'more ')}")
        else:
            lines.append("phase 2: none")
        return "\n".join(lines)

    def optimizer_label(self) -> str:
        label = {"adam": "Adam", "sgd": "SGD", "rmsprop": "RMSprop"}[self.optimizer]
        return f"{label}(momentum={self.momentum})" if self.momentum else label


def _epochs(count: int, word: str = "") -> str:
    """'1 epoch', '15 more epochs'."""
    return f"{count} {word}epoch{'' if count == 1 else 's'}"


def make_optimizer(name: str, learning_rate: float, momentum: float = 0.0) -> keras.optimizers.Optimizer:
    """A fresh optimizer by name."""
    if name == "adam":
        return keras.optimizers.Adam(learning_rate=learning_rate)
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate=learning_rate, momentum=momentum)
    if name == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate=learning_rate)
    raise SettingsError(f"Unknown optimizer {name!r}; use 'adam', 'sgd' or 'rmsprop'.")


def loss_and_metrics(classifier: Classifier):
    """Cross-entropy on logits; for one logit, accuracy thresholds the logit at 0."""
    if classifier.binary:
        return keras.losses.BinaryCrossentropy(from_logits=True), [
            keras.metrics.BinaryAccuracy(name="accuracy", threshold=0.0)
        ]
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True), [
        keras.metrics.SparseCategoricalAccuracy(name="accuracy")
    ]


def compile_model(model: keras.Model, classifier: Classifier, optimizer: keras.optimizers.Optimizer,
                  xla: bool = False) -> None:
    """Compile, and build the optimizer's slots now: that is several seconds less tracing."""
    loss, metrics = loss_and_metrics(classifier)
    model.compile(optimizer=optimizer, loss=loss, metrics=metrics, jit_compile=xla)
    model.optimizer.build(model.trainable_variables)


# ------------------------------------------------------------------------ history


@dataclass
class History:
    """Per-epoch metrics across both phases."""

    rows: list[dict] = field(default_factory=list)
    fine_tune_start: int | None = None  # first epoch (1-based) of fine-tuning
    seconds: float = 0.0
    resumed_epochs: int = 0  # epochs restored from an interrupted run instead of run again
    best_epoch: int | None = None  # with early stopping: the epoch whose weights were kept
    cached_features: bool = False

    def frame(self):
        """Long format for plotting: epoch, phase, split, metric, value."""
        import pandas as pd

        records = []
        for row in self.rows:
            for key, value in row.items():
                if key in ("epoch", "phase", "learning_rate"):
                    continue
                split = "validation" if key.startswith("val_") else "training"
                metric = key.removeprefix("val_")
                records.append({"epoch": row["epoch"], "phase": row["phase"], "split": split,
                                "metric": metric, "value": value})
        return pd.DataFrame.from_records(
            records, columns=["epoch", "phase", "split", "metric", "value"]
        )

    def final(self) -> dict:
        """The row of the epoch whose weights the model ends with."""
        if not self.rows:
            return {}
        if self.best_epoch is not None:
            for row in self.rows:
                if row["epoch"] == self.best_epoch:
                    return row
        return self.rows[-1]

    def to_dict(self) -> dict:
        return {"rows": self.rows, "fine_tune_start": self.fine_tune_start,
                "best_epoch": self.best_epoch, "cached_features": self.cached_features}

    @classmethod
    def from_dict(cls, values: dict | None) -> History:
        values = values or {}
        return cls(rows=list(values.get("rows", [])), fine_tune_start=values.get("fine_tune_start"),
                   best_epoch=values.get("best_epoch"), cached_features=bool(values.get("cached_features")))


class TrainingDiverged(CourseError):
    """The loss became NaN or infinite."""


def _read_log(path: Path, phase: str) -> list[dict]:
    if not path.exists():
        return []
    rows: dict[int, dict] = {}
    with open(path, newline="") as handle:
        for raw in csv.DictReader(handle):
            try:
                epoch = int(raw.pop("epoch")) + 1
            except (KeyError, ValueError):
                continue
            row = {"epoch": epoch, "phase": phase}
            for key, value in raw.items():
                try:
                    row[key] = float(value)
                except (TypeError, ValueError):
                    continue
            rows[epoch] = row  # a rerun of the same epoch replaces it
    return [rows[k] for k in sorted(rows)]


def _check_finite(rows: list[dict], phase: str) -> None:
    for row in rows:
        loss = row.get("loss")
        if loss is not None and not math.isfinite(loss):
            raise TrainingDiverged(
                f"The training loss became {loss} in epoch {row['epoch']} ({phase}); "
                "lower the learning rate or check the data for broken images or labels."
            )


# --------------------------------------------------------------------- fast path


def feature_function(classifier: Classifier):
    """The base's forward pass (raw pixels to pooled features), compiled once per classifier
    for any batch size: the splits and their last, smaller batches reuse one trace."""
    model = classifier.features
    fn = getattr(model, "_course_features", None)
    if fn is None:
        spec = tf.TensorSpec((None, *model.input_shape[1:]), tf.float32)
        fn = tf.function(lambda x: model(x, training=False), input_signature=[spec])
        model._course_features = fn
    return fn


def extract_features(classifier: Classifier, examples: tf.data.Dataset, batch_size: int,
                     workdir: Path | None = None, memory_budget: float | None = None) -> tf.data.Dataset:
    """Run the frozen base once over a split, in order; return (features, label) examples,
    in memory when they fit, otherwise saved to `workdir` and read back from disk."""
    infer = feature_function(classifier)
    batched = data_module.batches(examples, batch_size)
    width = int(np.prod(classifier.features.output_shape[1:]))
    count = int(examples.reduce(0, lambda n, _: n + 1)) if examples.cardinality() < 0 else int(
        examples.cardinality())
    budget = memory_budget if memory_budget is not None else 2 * 2**30
    if count * width * 4 <= budget or workdir is None:
        feats, labels = [], []
        for images, y in batched:
            feats.append(infer(images).numpy().astype(np.float32))
            labels.append(y.numpy())
        return tf.data.Dataset.from_tensor_slices((np.concatenate(feats), np.concatenate(labels)))
    path = Path(workdir) / f"features-{os.getpid()}-{id(examples)}"
    shutil.rmtree(path, ignore_errors=True)
    features = batched.map(lambda x, y: (tf.cast(infer(x), tf.float32), y)).unbatch()
    features.save(str(path))
    return tf.data.Dataset.load(str(path))


# ------------------------------------------------------------------------ training


def _callbacks(plan: TrainPlan, log: Path | None, backup: Path | None, extra: list) -> list:
    callbacks: list = [keras.callbacks.TerminateOnNaN()]
    if plan.reduce_lr:
        callbacks.append(keras.callbacks.ReduceLROnPlateau(**plan.reduce_lr))
    if plan.early_stopping:
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=plan.early_stopping, restore_best_weights=True))
    if log is not None:
        callbacks.append(keras.callbacks.CSVLogger(str(log), append=True))
    if backup is not None:
        callbacks.append(keras.callbacks.BackupAndRestore(str(backup)))
    return callbacks + list(extra)


def _best_epoch(rows: list[dict]) -> int | None:
    scored = [r for r in rows if "val_loss" in r and math.isfinite(r["val_loss"])]
    return min(scored, key=lambda r: r["val_loss"])["epoch"] if scored else None


def _epochs_done(backup: Path | None) -> int:
    import json

    meta = backup / "training_metadata.json" if backup else None
    if meta and meta.exists():
        try:
            return int(json.loads(meta.read_text())["epoch"])
        except (ValueError, KeyError):
            return 0
    return 0


def train(
    classifier: Classifier,
    data: data_module.ImageData,
    plan: TrainPlan,
    *,
    batch_size: int,
    seed: int,
    workdir: Path | None = None,
    xla: bool = False,
    verbose: int = 2,
    callbacks: list | None = None,
) -> History:
    """Run the plan: first phase (the head; on cached features when the base is frozen
    and nothing is augmented), then, if the plan fine-tunes, unfreeze the strategy's
    layers, recompile at the lower learning rate and go on from the epoch reached.

    Each epoch is logged and backed up in `workdir`, so a rerun after an interruption
    continues where it stopped and finished phases are not run again. Without a
    `workdir` a temporary one is used and removed."""
    temporary = workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="train-")) if temporary else Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        return _train(classifier, data, plan, batch_size, seed, workdir, xla, verbose,
                      list(callbacks or []))
    finally:
        if temporary:
            shutil.rmtree(workdir, ignore_errors=True)


def _train(classifier, data, plan, batch_size, seed, workdir, xla, verbose, extra) -> History:
    model = classifier.model
    history = History()
    started = time.perf_counter()
    train_batches = data_module.batches(data.train, batch_size, shuffle_seed=seed,
                                        size=data.size("train"))
    val_batches = data_module.batches(data.val, batch_size)

    # Phase 1: the head (or, for plans that train everything from the start, the whole model).
    apply_strategy(classifier.base, classifier.backbone, plan.first_phase)
    done = workdir / "phase1.weights.h5"
    earlier = 0.0  # seconds a finished first phase took in an earlier run
    if done.exists():
        with warnings.catch_warnings():
            # A model reused from an earlier configuration still holds that run's optimizer;
            # the file holds none. Phase 2 compiles a fresh optimizer, so nothing is lost.
            warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
            model.load_weights(str(done))
        history.resumed_epochs += plan.epochs
        seconds = workdir / "phase1.seconds"
        earlier = float(seconds.read_text()) if seconds.exists() else 0.0
    elif plan.epochs > 0:
        history.resumed_epochs += _epochs_done(workdir / "phase1.backup")
        phase_callbacks = _callbacks(plan, workdir / "phase1.csv", workdir / "phase1.backup", extra)
        optimizer = make_optimizer(plan.optimizer, plan.learning_rate, plan.momentum)
        if plan.cached_features and plan.first_phase == "frozen" and not classifier.augmented:
            history.cached_features = True
            train_features = extract_features(classifier, data.train, batch_size, workdir)
            val_features = extract_features(classifier, data.val, batch_size, workdir)
            compile_model(classifier.head, classifier, optimizer, xla)
            classifier.head.fit(
                data_module.batches(train_features, batch_size, shuffle_seed=seed,
                                    size=data.size("train")),
                validation_data=data_module.batches(val_features, batch_size),
                epochs=plan.epochs, verbose=verbose, callbacks=phase_callbacks, shuffle=False,
            )
        else:
            compile_model(model, classifier, optimizer, xla)
            model.fit(train_batches, validation_data=val_batches, epochs=plan.epochs,
                      verbose=verbose, callbacks=phase_callbacks, shuffle=False)
        _check_finite(_read_log(workdir / "phase1.csv", "head"), "first phase")
        tmp = workdir / f"phase1.{os.getpid()}.weights.h5"
        model.save_weights(str(tmp))
        (workdir / "phase1.seconds").write_text(f"{time.perf_counter() - started:.3f}")
        os.replace(tmp, done)
    history.rows = _read_log(workdir / "phase1.csv", "head")

    # Phase 2: unfreeze, recompile at a lower learning rate, continue the epoch count.
    if plan.fine_tunes:
        apply_strategy(classifier.base, classifier.backbone, plan.strategy)
        history.resumed_epochs += max(0, _epochs_done(workdir / "phase2.backup") - plan.epochs)
        compile_model(model, classifier,
                      make_optimizer(plan.optimizer, plan.fine_tune_lr, plan.momentum), xla)
        history.fine_tune_start = plan.epochs + 1
        # A fresh pipeline: the fine-tuning epochs' order then depends on the seed only, not on
        # whether the first phase ran end to end, on cached features, or was restored from disk.
        model.fit(
            data_module.batches(data.train, batch_size, shuffle_seed=seed, size=data.size("train")),
            validation_data=val_batches,
            initial_epoch=plan.epochs, epochs=plan.epochs + plan.fine_tune_epochs,
            verbose=verbose, shuffle=False,
            callbacks=_callbacks(plan, workdir / "phase2.csv", workdir / "phase2.backup", extra),
        )
        rows = _read_log(workdir / "phase2.csv", "fine-tune")
        _check_finite(rows, "fine-tuning")
        history.rows += rows
    if plan.early_stopping:
        history.best_epoch = _best_epoch(history.rows)
    history.seconds = earlier + time.perf_counter() - started
    return history
