"""One trained configuration's bookkeeping: callbacks that log and resume each `fit`, then
the evaluation, saved model and result record:

    run = experiment.Run(settings, "mobilenet_v2", "frozen")
    model.fit(..., callbacks=run.callbacks("head"))       # logs every epoch, resumes when rerun
    record = run.finish(model, cats_dogs)                 # test metrics, timings, model, record
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import keras
import numpy as np

from helpers import backbones, evaluate, results, train
from helpers.config import Settings
from helpers.data import ImageData


def settings_key(settings: Settings) -> str:
    """A short hash of the settings a record depends on (a record made with others is redone)."""
    text = repr((settings.profile, settings.image_size, settings.batch_size, settings.seed,
                 settings.limit, settings.weights, sorted(settings.epochs.items()),
                 settings.fine_tune_epochs, str(settings.data_dir)))
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def _scope(settings: Settings) -> str:
    """A hash of what this run trains: shares of a notebook run at once keep their folders apart."""
    return hashlib.sha1(repr((settings.models, settings.strategies)).encode()).hexdigest()[:8]


def _checksum(model: keras.Model) -> float:
    """A sum over the first and last trainable weights: which epoch's weights the model holds."""
    weights = model.trainable_weights
    return float(sum(np.abs(keras.ops.convert_to_numpy(w)).sum() for w in weights[:1] + weights[-1:]))


class _Phase(keras.callbacks.Callback):
    """Notes what one `fit` was and which epoch's weights the model ended with."""

    def __init__(self, path: Path, name: str, resume: train.Resume):
        super().__init__()
        self.path, self.name, self.resume = Path(path), name, resume

    def on_train_begin(self, logs=None):
        optimizer = self.model.optimizer
        rate = np.float32(keras.ops.convert_to_numpy(optimizer.learning_rate))
        self.info = {
            "phase": self.name,
            "optimizer": type(optimizer).__name__,
            # as written in the notebook (the variable holds float32: 1e-3 reads 0.0010000000475)
            "learning_rate": float(str(rate)),
            "momentum": getattr(optimizer, "momentum", None) or None,
            "epochs_until": self.params.get("epochs"),
            "trained_model": self.model.name,
            "inputs": [list(x.shape[1:]) for x in self.model.inputs],
            "trainable_params": evaluate.count_params(self.model.trainable_weights),
            "xla": bool(getattr(self.model, "jit_compile", False)),
        }
        self.sums: dict[int, float] = {}

    def on_epoch_end(self, epoch, logs=None):
        self.sums[epoch + 1] = _checksum(self.model)

    def on_train_end(self, logs=None):
        # after EarlyStopping (earlier in the list) restored its best epoch, if it did
        now = _checksum(self.model)
        kept = [e for e, s in self.sums.items() if s == now]
        if self.sums and kept and max(kept) != max(self.sums):
            self.info["kept_epoch"] = max(kept)
        elif self.path.exists():  # a rerun that restored the phase keeps what it knew
            self.info["kept_epoch"] = json.loads(self.path.read_text()).get("kept_epoch")
        self.info["resumed_epochs"] = self.resume.resumed
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(self.info))


class Run:
    """One configuration (model, strategy, optional variant) of a notebook. `first_phase`: the
    `Run` whose first phase this one continues; `save`: keep the model as `<record>.keras`."""

    def __init__(self, settings: Settings, model: str, strategy: str, *, variant: str | None = None,
                 first_phase: Run | None = None, save: bool = True):
        self.settings, self.model_name, self.strategy, self.variant = settings, model, strategy, variant
        self.path = results.record_path(settings, model, strategy, variant)
        self.workdir = settings.record_dir / ".work" / f"{self.path.stem}-{_scope(settings)}"
        self.first_phase = first_phase
        self.save = save if settings.save_models is None else settings.save_models
        self.key = settings_key(settings)
        self.record = None if settings.redo else results.existing_record(self.path, self.key)
        if settings.redo:
            shutil.rmtree(self.workdir, ignore_errors=True)
        self.test: evaluate.Predictions | None = None
        self.history: list[dict] = list(self.record["history"]["rows"]) if self.record else []

    @property
    def title(self) -> str:
        variant = f" ({self.variant})" if self.variant else ""
        return f"{backbones.get(self.model_name).title} / {self.strategy}{variant}"

    @property
    def finished(self) -> bool:
        """Its record exists, made with the same settings (REDO = True trains it again)."""
        return self.record is not None

    def callbacks(self, phase: str) -> list[keras.callbacks.Callback]:
        """For one `fit` (after EarlyStopping): stop on NaN, log, time, and back up every epoch."""
        folder = self.workdir / phase
        folder.mkdir(parents=True, exist_ok=True)
        resume = train.Resume(folder / "backup")
        return [keras.callbacks.TerminateOnNaN(),
                keras.callbacks.CSVLogger(str(folder / "log.csv"), append=True),
                train.Timer(folder / "seconds"), _Phase(folder / "phase.json", phase, resume),
                resume]

    def phases(self) -> list[dict]:
        """What each `fit` of this configuration was, in order, with its logged epochs."""
        if self.record is not None:
            rows = self.record["history"]["rows"]
            return [{**p, "rows": [r for r in rows if r.get("phase") == p["phase"]]}
                    for p in self.record["phases"]]
        phases = []
        for folder in (p for p in self.workdir.glob("*") if (p / "phase.json").exists()):
            info = json.loads((folder / "phase.json").read_text())
            info["rows"] = train.read_log(folder / "log.csv", info["phase"])
            seconds = folder / "seconds"
            info["seconds"] = float(seconds.read_text()) if seconds.exists() else 0.0
            phases.append(info)
        earlier = [] if self.first_phase is None else self.first_phase.phases()[:1]
        return earlier + sorted(phases, key=lambda p: p["epochs_until"])

    def finish(self, model: keras.Model, data: ImageData, **extra) -> dict:
        """Evaluate, time and save the trained `model` and write its record (failed after NaN)."""
        trained_now = any(self.workdir.glob("*/phase.json"))
        if self.finished and not trained_now:
            print(f"{self.title}: record exists, not trained again (REDO = True trains it again)")
            return self.record
        self.record = None  # what was trained now replaces an earlier record
        phases = self.phases()
        first = phases[0]
        second = phases[1] if len(phases) > 1 else None
        record = results.new_record(
            self.settings, self.model_name, self.strategy,
            dataset=data.name, title=self.title, variant=self.variant, settings_key=self.key,
            epochs=first["epochs_until"],
            fine_tune_epochs=(second["epochs_until"] - first["epochs_until"]) if second else 0,
            optimizer=_label(first), learning_rate=first["learning_rate"],
            fine_tune_learning_rate=second["learning_rate"] if second else None,
            skipped_files=len(data.skipped), split_fingerprint=data.fingerprint,
            class_names=list(data.class_names), **extra,
        )
        rows = [row for phase in phases for row in phase["rows"]]
        try:
            for phase in phases:
                train.check_finite(phase["rows"], phase["phase"])
        except train.TrainingDiverged as error:
            print(f"{self.title} FAILED: {error}")
            record.update(status="failed", error=str(error), history={"rows": rows})
            results.write_record(record, self.path)
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.record = record
            return record
        kept = next((p["kept_epoch"] for p in reversed(phases) if p.get("kept_epoch")), None)
        final = next((r for r in rows if r["epoch"] == kept), rows[-1] if rows else {})
        self.test = evaluate.predict(model, data.test, self.settings.batch_size)
        val = evaluate.predict(model, data.val, self.settings.batch_size)
        device = train.device_name()
        throughput_batch = 32 if device.startswith("CPU") else 128
        record.update(
            train_accuracy=final.get("accuracy"), train_loss=final.get("loss"),
            val_accuracy=val.accuracy, val_loss=val.loss,
            test_accuracy=self.test.accuracy, test_loss=self.test.loss,
            trainable_params=evaluate.count_params(model.trainable_weights),
            total_params=evaluate.count_params(model.weights),
            train_seconds=sum(p["seconds"] for p in phases),
            inference_ms_per_image=evaluate.latency_ms(model),
            throughput_images_per_s=evaluate.throughput(model, batch_size=throughput_batch),
            throughput_batch_size=throughput_batch, device=device,
            history={"rows": rows, "best_epoch": kept},
            phases=[{k: v for k, v in p.items() if k != "rows"} for p in phases],
            resumed_epochs=sum(p.get("resumed_epochs", 0) for p in phases),
        )
        if self.save:
            model_path = self.path.with_suffix(".keras")
            tmp = model_path.with_name(f".{model_path.stem}.tmp.keras")
            model.save(tmp)
            tmp.replace(model_path)
            record.update(model_file=model_path.name, model_size_mb=model_path.stat().st_size / 2**20)
        results.write_record(record, self.path)
        shutil.rmtree(self.workdir, ignore_errors=True)
        self.record, self.history = record, rows
        xla = [p["phase"] for p in phases if p["xla"]]
        print(f"{self.title}: test accuracy {self.test.accuracy:.3f}, "
              f"{record['trainable_params']:,} trainable parameters, {record['train_seconds']:.0f} s, "
              f"compiled with XLA: {', '.join(xla) or 'nothing'}")
        return record


def _label(phase: dict) -> str:
    """The optimizer as the record names it, e.g. 'Adam' or 'SGD(momentum=0.9)'."""
    name = phase["optimizer"]
    return f"{name}(momentum={phase['momentum']:g})" if phase.get("momentum") else name


def cleanup(settings: Settings) -> None:
    """Remove the work folders this notebook run left (a shared first phase, unfinished runs)."""
    for folder in (settings.record_dir / ".work").glob(f"*-{_scope(settings)}"):
        shutil.rmtree(folder, ignore_errors=True)
