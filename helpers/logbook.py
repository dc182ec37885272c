"""The course's bookkeeping around `model.fit`, in the "extra code" cells of notebooks 01-05 that train
(their "fit" steps): a `Logbook` per trained configuration gives callbacks that log, time and back up
every epoch (a rerun after a killed kernel continues where it stopped; a configuration whose record
exists is restored, not trained again), then `finish` writes its record:

    log = logbook.Logbook(settings, "mobilenet_v2", "frozen")
    history = model.fit(train_ds, ..., callbacks=log.callbacks())
    record = log.finish(model, cats_dogs, model.predict(test_ds))

Keras has no public way to continue `fit` at a later epoch or to read a layer's random state: both go
through `keras_private`."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import shutil
import socket
import time
import uuid
from pathlib import Path

import keras
import numpy as np

from helpers import backbones, evaluate, layers, pipelines, records  # noqa: F401  (layers registers InferenceMode)
from helpers.datasets import ImageData
from helpers.errors import CourseError
from helpers.keras_private import seed_generators, start_fit_at
from helpers.records import atomic_write
from helpers.settings import Settings

STALE_SECONDS = 600  # a claim on a configuration not renewed for this long belongs to no one


def settings_key(settings: Settings) -> str:
    """A short hash of the settings a record depends on; a record made with others is redone (`Logbook`, in
    the fit steps of 01-05)."""
    text = repr((settings.profile, settings.image_size, settings.batch_size, settings.seed, settings.limit,
                 settings.weights, sorted(settings.epochs.items()), settings.fine_tune_epochs, str(settings.data_dir)))
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def process_alive(pid) -> bool:
    """Whether a process of this machine with this id exists (a claim's owner, in the fit steps of 01-05;
    `course.run` after a dead kernel)."""
    try:
        os.kill(int(pid or 0), 0)  # signal 0 only asks whether it exists
        return bool(pid)
    except (OSError, ValueError):
        return False


def timing_effort(train_seconds: float) -> float:
    """The share of the full speed measurement (1.5 s of batch-1 calls, 2 s of batches) a record gets:
    all of it from ten minutes of training on, less for shorter runs, at least a few calls: timing a
    smoke or dry run that trained for seconds would cost more than the run (`Logbook.finish`, 01-05)."""
    return min(1.0, max(0.05, train_seconds / 600))


def device_name() -> str:
    """The accelerator, or the CPU: every record's `device` (notebooks 01-05, and 07's "The table")."""
    import tensorflow as tf
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return f"CPU ({os.cpu_count()} cores)"
    try:
        return f"{len(gpus)}x {tf.config.experimental.get_device_details(gpus[0]).get('device_name', 'GPU')}"
    except (ValueError, RuntimeError):
        return f"{len(gpus)}x GPU"


class Logbook:
    """One configuration (model, strategy, optional variant) of a notebook, in the fit steps of 01-05.
    `first_phase`: the logbook whose first phase this one continues (notebook 04's shared head, "All
    configurations, the fast way"); `scratch`: a phase never recorded, in a folder of this run's own."""

    def __init__(self, settings: Settings, model: str, strategy: str, *, variant: str | None = None,
                 first_phase: Logbook | None = None, scratch: bool = False):
        self.settings, self.model_name, self.strategy, self.variant = settings, model, strategy, variant
        self.path = records.record_path(settings, model, strategy, variant)
        self.model_path = self.path.with_suffix(".keras")
        own = f"-{os.getpid()}-{uuid.uuid4().hex[:8]}" if scratch else ""
        self.workdir = settings.record_dir / ".work" / f"{self.path.stem}{own}"
        self.first_phase, self.scratch, self.key, self.trained_now = first_phase, scratch, settings_key(settings), False
        self.record = None if settings.redo or scratch else records.existing_record(self.path, self.key)
        if self.record is not None and not self.model_path.exists():
            self.record = None  # nothing to restore the trained model from: train it again
        self.title = f"{backbones.get(model).title} / {strategy}" + (f" ({variant})" if variant else "")

    @property
    def finished(self) -> bool:
        """Its record exists with the same settings and its model beside it (REDO trains again)."""
        return self.record is not None

    def callbacks(self, *stateful: keras.callbacks.Callback) -> list[keras.callbacks.Callback]:
        """For every `fit` of this configuration: stop on NaN, each epoch's shuffle order, and the
        bookkeeping; the page's `stateful` callbacks (EarlyStopping, ReduceLROnPlateau) are backed
        up with the model, so that a resumed run continues exactly as an uninterrupted one."""
        if not self.finished and not self.scratch:
            self._claim()
            if not self.settings.redo and records.existing_record(self.path, self.key) and self.model_path.exists():
                (self.workdir / "claim.json").unlink(missing_ok=True)  # recorded meanwhile by another run
                raise CourseError(f"{self.title} was recorded by another run into {self.settings.results_dir} "
                                  "since this notebook looked; run this notebook again to reuse that record.")
        return [keras.callbacks.TerminateOnNaN(), pipelines.EpochOrder(), _Bookkeeping(self, stateful)]

    def _claim(self) -> None:
        """Make this run the one training the configuration; refuse while another live run is."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        claim, me = self.workdir / "claim.json", {"host": socket.gethostname(), "pid": os.getpid()}
        for _ in range(2):
            try:
                with os.fdopen(os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY), "w") as file:
                    return json.dump(me, file)
            except FileExistsError:
                try:
                    owner, age = json.loads(claim.read_text()), time.time() - claim.stat().st_mtime
                except (OSError, ValueError):
                    owner, age = {}, 0.0
            if owner == me:
                return  # ours already (a cell run again)
            alive = age < STALE_SECONDS  # on another machine: alive while it renews its claim
            if owner.get("host") == me["host"]:
                alive = process_alive(owner.get("pid"))
            if alive:
                raise CourseError(f"{self.title} is being trained right now by another run (process "
                                  f"{owner.get('pid')} on {owner.get('host')}) into {self.settings.results_dir}; "
                                  "let it finish (this notebook then reuses its record), or give this run "
                                  "another RESULTS_DIR.") from None
            claim.unlink(missing_ok=True)  # its owner is gone: take over and resume its backups

    def phases(self) -> list[dict]:
        """What each `fit` of this configuration was, in order, with its logged epochs."""
        if self.record is not None:
            rows = self.record["history"]["rows"]
            return [{**p, "rows": [r for r in rows if r.get("phase") == p["phase"]]} for p in self.record["phases"]]
        found = [json.loads(p.read_text()) for p in self.workdir.glob("until-*/state.json")]
        earlier = [] if self.first_phase is None else self.first_phase.phases()[:1]
        return earlier + sorted(found, key=lambda p: p["epochs_until"])

    def finish(self, model: keras.Model, data: ImageData, test_logits: np.ndarray | None = None,
               model_file: Path | None = None) -> dict:
        """Write the record of the trained `model`: test metrics from `test_logits` (what `model.predict(test_ds)`
        gave; computed when None), validation from the kept epoch, the timings, and the model saved beside the
        record (or `model_file`, saved by the page)."""
        if self.finished and not self.trained_now:
            print(f"{self.title}: record exists, not trained again (REDO = True trains it again)")
            return self.record
        phases = self.phases()
        first, second = phases[0], (phases[1] if len(phases) > 1 else None)
        rows = [row for phase in phases for row in phase["rows"]]
        record = records.new_record(
            self.settings, self.model_name, self.strategy, dataset=data.name, title=self.title,
            variant=self.variant, settings_key=self.key, epochs=first["epochs_until"],
            fine_tune_epochs=(second["epochs_until"] - first["epochs_until"]) if second else 0,
            optimizer=first["optimizer"] + (f"(momentum={first['momentum']:g})" if first.get("momentum") else ""),
            learning_rate=first["learning_rate"], fine_tune_learning_rate=second and second["learning_rate"],
            skipped_files=len(data.skipped), split_fingerprint=data.fingerprint, class_names=list(data.class_names),
            history={"rows": rows}, resumed_epochs=sum(p.get("resumed_epochs", 0) for p in phases),
            phases=[{k: v for k, v in p.items() if k not in ("rows", "stateful", "seeds", "epoch", "done")}
                    for p in phases])
        bad = next((r for r in rows if not math.isfinite(r.get("loss", 0.0))), None)
        if bad is not None:
            error = (f"The training loss became {bad['loss']} in epoch {bad['epoch']}; lower the learning rate "
                     "or check the data for broken images or labels.")
            print(f"{self.title} FAILED: {error}")
            return self._write({**record, "status": "failed", "error": error})
        kept = next((p["kept_epoch"] for p in reversed(phases) if p.get("kept_epoch")), None)
        final = next((r for r in rows if r["epoch"] == kept), rows[-1] if rows else {})
        test = (evaluate.predict(model, data.test, self.settings.batch_size) if test_logits is None
                else evaluate.Predictions(data.labels["test"], np.asarray(test_logits, np.float32)))
        batch, seconds = (32 if device_name().startswith("CPU") else 128), sum(p["seconds"] for p in phases)
        effort = timing_effort(seconds)
        record.update(
            train_accuracy=final.get("accuracy"), train_loss=final.get("loss"), val_accuracy=final.get("val_accuracy"),
            val_loss=final.get("val_loss"), test_accuracy=test.accuracy, test_loss=test.loss,
            trainable_params=evaluate.count_params(model.trainable_weights),
            total_params=evaluate.count_params(model.weights), train_seconds=seconds,
            inference_ms_per_image=evaluate.latency_ms(model, max_seconds=1.5 * effort), throughput_batch_size=batch,
            throughput_images_per_s=evaluate.throughput(model, batch_size=batch, max_seconds=2.0 * effort),
            device=device_name(),
            history={"rows": rows, "best_epoch": kept})
        if model_file is None and self.settings.save_models:
            model_file = atomic_write(self.model_path, model.save)
        if model_file is not None:
            record.update(model_file=Path(model_file).name, model_size_mb=Path(model_file).stat().st_size / 2**20)
        xla = [p["phase"] for p in phases if p.get("xla")]
        print(f"{self.title}: test accuracy {test.accuracy:.3f}, {record['trainable_params']:,} trainable "
              f"parameters, {record['train_seconds']:.0f} s of training, compiled with XLA: {', '.join(xla) or 'nothing'}")
        return self._write(record)

    def discard(self) -> None:
        """Remove the folder of a scratch phase (notebook 04's shared head when not recorded, "All configurations")."""
        shutil.rmtree(self.workdir, ignore_errors=True)

    def _write(self, record: dict) -> dict:
        records.write_record(record, self.path)
        self.discard()  # the backups, and the claim with them
        self.record = record
        return record


class _Bookkeeping(keras.callbacks.Callback):
    """Logs, times and backs up one `fit` (a phase, known by the epoch it trains until); a fit started
    again restores the backup and continues; a finished configuration is restored and runs no epoch."""

    def __init__(self, log: Logbook, stateful):
        super().__init__()
        self.log, self.stateful = log, list(stateful)

    def _seeds(self) -> list:
        """The random state of Dropout and augmentation layers (not in the weights file)."""
        return [generator.state for generator in seed_generators(self.model)]

    def on_train_begin(self, logs=None):
        until = self.params.get("epochs") or 0
        self.folder, self.started, self.touched = self.log.workdir / f"until-{until}", time.perf_counter(), time.time()
        start_fit_at(self.model, None)  # what an earlier fit's restore set
        saved = self._saved_model() if self.log.finished else None
        if saved is not None:  # restore the trained model, run no epoch
            if [w.shape for w in saved.weights] == [w.shape for w in self.model.weights]:
                self.model.set_weights(saved.get_weights())
            else:  # a part of the saved model (a head on features, notebook 04's trainable part)
                stored = {w.path: w for w in saved.weights}
                for weight in self.model.weights:
                    weight.assign(stored[weight.path])
            self.state = next((p for p in self.log.phases() if p["epochs_until"] == until), {"rows": []})
            start_fit_at(self.model, until)
            return
        self.log.trained_now = True
        path = self.folder / "state.json"
        self.state = json.loads(path.read_text()) if path.exists() else {}
        if self.state.get("epoch"):
            return self._restore()
        optimizer = self.model.optimizer
        self.state = {
            "phase": f"phase {len(self.log.phases()) + 1}", "optimizer": type(optimizer).__name__,
            # as written (1e-3, not the float32 variable's 0.0010000000475)
            "learning_rate": float(str(np.float32(keras.ops.convert_to_numpy(optimizer.learning_rate)))),
            "momentum": getattr(optimizer, "momentum", None) or None, "epochs_until": until,
            "trained_model": self.model.name, "inputs": [list(x.shape[1:]) for x in self.model.inputs],
            "trainable_params": evaluate.count_params(self.model.trainable_weights),
            "xla": bool(self.model.jit_compile), "rows": [], "seconds": 0.0, "epoch": 0, "resumed_epochs": 0,
            "done": False}
        self.folder.mkdir(parents=True, exist_ok=True)

    def _saved_model(self) -> keras.Model | None:
        """The model saved beside the record; None (after saying so) when it cannot be loaded, which
        makes this configuration train again, as when the file is missing."""
        try:
            return keras.saving.load_model(self.log.model_path, compile=False)
        except Exception as error:  # noqa: BLE001 - a truncated or foreign file: train again, lose nothing
            aside = self.log.model_path.with_name(self.log.model_path.name + ".broken")
            with contextlib.suppress(OSError):  # another run may have moved it already
                os.replace(self.log.model_path, aside)
            print(f"{self.log.title}: its saved model {self.log.model_path.name} cannot be loaded "
                  f"({type(error).__name__}); kept as {aside.name}, training it again.")
            self.log.record = None
            self.log._claim()
            return None

    def _restore(self) -> None:
        if self.model.optimizer is not None and not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)
        self.model.load_weights(str(self.folder / "backup.weights.h5"))
        for variable, value in zip(self._seeds(), self.state.get("seeds", [])):
            variable.assign(value)
        arrays = np.load(self.folder / "stateful.npz") if (self.folder / "stateful.npz").exists() else {}
        for k, (callback, values) in enumerate(zip(self.stateful, self.state.get("stateful", []))):
            for name, value in values.items():
                setattr(callback, name, value)
            if f"{k}_0" in arrays:
                callback.best_weights = [arrays[f"{k}_{i}"] for i in range(values["best_weights_count"])]
        self.state["resumed_epochs"] = len(self.state["rows"])
        # fit continues after the last backed-up epoch, or runs none when the phase had ended
        start_fit_at(self.model, self.state["epochs_until"] if self.state["done"] else self.state["epoch"])
        print(f"{self.log.title}: resumed after epoch {self.state['epoch']} from {self.folder}")

    def _backup(self) -> None:
        atomic_write(self.folder / "backup.weights.h5", lambda tmp: self.model.save_weights(str(tmp)))
        self.state["seeds"] = [keras.ops.convert_to_numpy(s).tolist() for s in self._seeds()]
        arrays, self.state["stateful"] = {}, []
        for k, callback in enumerate(self.stateful):
            values = {n: v.item() if isinstance(v, np.generic) else v for n, v in vars(callback).items()
                      if not n.startswith("_") and n not in ("model", "params", "best_weights")}
            weights = getattr(callback, "best_weights", None) or []
            arrays.update({f"{k}_{i}": np.asarray(w) for i, w in enumerate(weights)})
            self.state["stateful"].append({n: v for n, v in values.items() if v is None or isinstance(
                v, (bool, int, float, str))} | {"best_weights_count": len(weights)})
        if arrays:
            atomic_write(self.folder / "stateful.npz", lambda tmp: np.savez(tmp, **arrays))
        atomic_write(self.folder / "state.json", lambda tmp: tmp.write_text(json.dumps(self.state)))

    def on_train_batch_end(self, batch, logs=None):
        if time.time() - self.touched > 60:  # renew the claim on the configuration
            self.touched = time.time()
            (self.log.workdir / "claim.json").touch(exist_ok=True)

    def on_epoch_end(self, epoch, logs=None):
        if self.log.finished:
            return
        row = {"epoch": epoch + 1, "phase": self.state["phase"], **{k: float(v) for k, v in (logs or {}).items()}}
        self.state["rows"] = [r for r in self.state["rows"] if r["epoch"] != epoch + 1] + [row]
        self.state["epoch"], self.state["seconds"] = epoch + 1, self.state["seconds"] + time.perf_counter() - self.started
        self.started = time.perf_counter()
        self._backup()

    def on_train_end(self, logs=None):
        start_fit_at(self.model, None)
        if not self.log.finished:
            self.state["seconds"] += time.perf_counter() - self.started
            for callback in self.stateful:  # runs after them: the weights they restored
                if getattr(callback, "restore_best_weights", False) and callback.best_weights is not None:
                    self.state["kept_epoch"] = callback.best_epoch + 1
            self.state["done"] = True
            self._backup()
        history = keras.callbacks.History()  # every epoch of this phase, resumed or not: what fit returns
        history.set_model(self.model)
        history.set_params(self.params)
        history.epoch = [row["epoch"] - 1 for row in self.state["rows"]]
        for row in self.state["rows"]:
            for key, value in row.items():
                if key not in ("epoch", "phase"):
                    history.history.setdefault(key, []).append(value)
        self.model.history = history
