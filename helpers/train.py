"""The chores around `fit`: the device (precision, XLA, distribution, determinism), and
callbacks that time every phase and resume an interrupted one."""

from __future__ import annotations

import csv
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import keras
import tensorflow as tf

from helpers import data
from helpers.config import CourseError, Settings


@dataclass(frozen=True)
class Device:
    """Where and how training runs."""
    name: str
    gpus: int
    mixed_precision: bool
    xla: bool  # asked for; what each compile really got is in the record's phases
    strategy: tf.distribute.Strategy
    deterministic: bool = False

    def describe(self) -> str:
        """One line for the notebook to print."""
        return (
            f"{self.name}; mixed precision {'on' if self.mixed_precision else 'off'}, "
            f"XLA {'asked for' if self.xla else 'off'}, {self.strategy.num_replicas_in_sync} "
            f"replica(s) ({type(self.strategy).__name__}), deterministic ops "
            f"{'on' if self.deterministic else 'off'}"
        )


def device_name() -> str:
    """A short description of the accelerator, or of the CPU."""
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        try:
            label = tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU")
        except (ValueError, RuntimeError):
            label = "GPU"
        return f"{len(gpus)}x {label}"
    return f"CPU ({os.cpu_count()} cores)"


def precision_policy(mixed_precision: bool | None, has_gpu: bool) -> str:
    """The Keras dtype policy: mixed_float16 on a GPU unless switched off; float32 on a CPU."""
    use = has_gpu if mixed_precision is None else (mixed_precision and has_gpu)
    return "mixed_float16" if use else "float32"


def distribution_strategy() -> tf.distribute.Strategy:
    """MirroredStrategy when several GPUs are visible, else the default one (across machines,
    `helpers.run --shard` splits a rerun: keras-team/keras#20585)."""
    if len(tf.config.list_logical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def configure_device(settings: Settings) -> Device:
    """Set the precision policy and pick the strategy before building models; on a CPU op
    determinism is on unless XLA = True, on a GPU XLA is on and determinism off."""
    gpus = len(tf.config.list_physical_devices("GPU"))
    policy = precision_policy(settings.mixed_precision, bool(gpus))
    keras.mixed_precision.set_global_policy(policy)
    xla = bool(gpus) if settings.xla is None else bool(settings.xla)
    deterministic = not gpus and not xla
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    else:  # no public switch back; matters when one process configures twice (the tests)
        from tensorflow.python.framework import config as tf_config

        tf_config.disable_op_determinism()
    return Device(device_name(), gpus, policy == "mixed_float16", xla, distribution_strategy(),
                  deterministic=deterministic)


class TrainingDiverged(CourseError):
    """The loss became NaN or infinite."""


class Resume(keras.callbacks.Callback):
    """Back the model up into `folder` after every epoch; a `fit` started again with the same
    folder restores weights and optimizer state and continues at the next epoch."""

    def __init__(self, folder: Path):
        super().__init__()
        self.folder = Path(folder)
        self.resumed = 0  # epochs this fit restored instead of running them again

    def _seeds(self) -> list:
        """The random-number state of Dropout and augmentation layers (not in the weights file)."""
        return [generator.state for layer in self.model._flatten_layers()
                for generator in getattr(layer, "_seed_generators", [])]

    def _write(self, **state) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / f"tmp-{os.getpid()}.weights.h5"
        self.model.save_weights(str(tmp))
        os.replace(tmp, self.folder / "backup.weights.h5")
        self.state.update(state, seeds=[keras.ops.convert_to_numpy(s).tolist() for s in self._seeds()])
        path = self.folder / f"tmp-{os.getpid()}.json"
        path.write_text(json.dumps(self.state))
        os.replace(path, self.folder / "state.json")

    def on_train_begin(self, logs=None):
        path = self.folder / "state.json"
        self.model._initial_epoch = None  # Keras keeps what an earlier fit's restore set
        self.state = json.loads(path.read_text()) if path.exists() else {}
        if not self.state:
            return
        if self.model.optimizer is not None and not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)
        self.model.load_weights(str(self.folder / "backup.weights.h5"))
        for variable, value in zip(self._seeds(), self.state.get("seeds", [])):
            variable.assign(value)
        self.resumed = self.state["epoch"] - self.state["start"]
        self.model._initial_epoch = self.state["epoch"]  # where fit continues, as BackupAndRestore

    def on_epoch_begin(self, epoch, logs=None):
        self.state.setdefault("start", epoch)
        data.set_epoch(epoch)  # this epoch's shuffle order, whether resumed or not

    def on_epoch_end(self, epoch, logs=None):
        self._write(epoch=epoch + 1, done=False)

    def on_train_end(self, logs=None):
        # Runs after EarlyStopping (earlier in the list) restored its best weights.
        if self.state and not self.state.get("done"):
            self._write(epoch=max(self.params.get("epochs") or 0, self.state["epoch"]), done=True)
        self.model._initial_epoch = None


class Timer(keras.callbacks.Callback):
    """Seconds spent in `fit`, added to `path` (so a resumed phase counts both runs)."""

    def __init__(self, path: Path):
        super().__init__()
        self.path = Path(path)

    def on_train_begin(self, logs=None):
        self._start = time.perf_counter()

    def on_train_end(self, logs=None):
        earlier = float(self.path.read_text()) if self.path.exists() else 0.0
        self.path.write_text(f"{earlier + time.perf_counter() - self._start:.3f}")


def read_log(path: Path, phase: str) -> list[dict]:
    """The epochs a CSVLogger wrote, 1-based, tagged with the phase (a rerun epoch replaces)."""
    if not Path(path).exists():
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
            rows[epoch] = row
    return [rows[k] for k in sorted(rows)]


def check_finite(rows: list[dict], phase: str) -> None:
    """Stop with one sentence when the training loss of an epoch is NaN or infinite."""
    for row in rows:
        loss = row.get("loss")
        if loss is not None and not math.isfinite(loss):
            raise TrainingDiverged(f"The training loss became {loss} in epoch {row['epoch']} "
                                   f"({phase}); lower the learning rate or check the data for "
                                   "broken images or labels.")
