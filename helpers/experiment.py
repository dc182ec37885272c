"""One trained configuration, end to end: build, train, evaluate, record.

`run_config` is what every notebook calls per (model, strategy). It skips a
configuration whose record already exists with the same settings (unless
``REDO``), resumes an interrupted one, turns a diverged run into a record marked
``failed`` (the other configurations go on), and writes the record atomically.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path

import keras

from helpers import evaluate, finetune, models, results, train
from helpers.config import Settings
from helpers.data import ImageData
from helpers.evaluate import Predictions
from helpers.models import Classifier
from helpers.train import Device, History, TrainPlan


@dataclass
class Run:
    """What a configuration produced. `classifier` and `test` are None when the record
    was reused from an earlier run (or the run failed)."""

    record: dict
    history: History
    classifier: Classifier | None = None
    test: Predictions | None = None
    reused: bool = False

    @property
    def ok(self) -> bool:
        return self.record.get("status") == "ok"


def _first_phase_key(settings: Settings, model: str, plan: TrainPlan, build: dict) -> str:
    text = repr((settings.profile, settings.image_size, settings.batch_size, settings.seed,
                 settings.limit, settings.weights, model, plan.optimizer, plan.learning_rate,
                 plan.momentum, plan.epochs, plan.first_phase, sorted(build.items())))
    return hashlib.sha1(text.encode()).hexdigest()[:10]


def _share_first_phase(shared: Path, workdir: Path, direction: str) -> None:
    names = ("phase1.weights.h5", "phase1.csv", "phase1.seconds")
    source, target = (shared, workdir) if direction == "in" else (workdir, shared)
    if direction == "in" and not (source / names[0]).exists():
        return
    if direction == "out" and (target / names[0]).exists():
        return
    target.mkdir(parents=True, exist_ok=True)
    for name in names:
        if (source / name).exists():
            shutil.copy2(source / name, target / name)


def new_classifier(settings: Settings, data: ImageData, device: Device, model: str,
                   build: dict | None = None) -> Classifier:
    """The classifier of one configuration, seeded and built under the device's strategy."""
    build = dict(build or {})
    upsample = build.get("upsample", 1)
    if settings.weights == "standin":
        # Made once per machine, and making them draws random numbers: do it before seeding,
        # so the first run on a fresh machine starts like every later one.
        models.standin_weights(model, settings.image_size)
    keras.utils.set_random_seed(settings.seed)
    with device.strategy.scope():
        return models.build_classifier(
            model, settings.image_size, data.num_classes, weights=settings.weights,
            input_size=settings.image_size // upsample, **build,
        )


def run_config(
    settings: Settings,
    data: ImageData,
    device: Device,
    *,
    model: str,
    plan: TrainPlan,
    build: dict | None = None,
    share_first_phase: bool = False,
    classifier: Classifier | None = None,
    reuse_records: bool = False,
    variant: str | None = None,
    measure_size: bool = False,
    verbose: int = 2,
    callbacks: list | None = None,
) -> Run:
    """Train and evaluate one configuration and write its record.

    `build` holds the keyword arguments of `models.build_classifier` beyond the
    backbone, size and classes (pooling, hidden, dropout, augmentation, upsample).
    With `share_first_phase`, configurations of the same model that differ only in
    what they fine-tune reuse one first phase (it is identical for all of them); pass
    the same `classifier` (from `new_classifier`) to each of them to also skip rebuilding the model
    and re-tracing its inference function: every run starts from the shared first phase.
    With `reuse_records`, a configuration whose record exists with the same settings
    is not trained again (unless ``settings.redo``); its record and history are returned.
    A `variant` names a second run of the same model and strategy (its own record file)."""
    build = dict(build or {})
    path = results.record_path(settings, model, plan.strategy, variant)
    expected = {"epochs": plan.epochs, "fine_tune_epochs": plan.fine_tune_epochs if plan.fine_tunes else 0}
    if reuse_records and not settings.redo:
        found = results.existing_record(path, settings, **expected)
        if found is not None:
            print(f"{model} / {plan.strategy}: record exists, skipped (REDO = True runs it again)")
            return Run(found, History.from_dict(found.get("history")), reused=True)

    label = f"{model} / {plan.strategy}" + (f" ({variant})" if variant else "")
    workdir = settings.record_dir / ".work" / path.stem
    shared = settings.record_dir / ".work" / f"{model}__first-phase-{_first_phase_key(settings, model, plan, build)}"
    if share_first_phase:
        _share_first_phase(shared, workdir, "in")

    if classifier is None:
        classifier = new_classifier(settings, data, device, model, build)
    elif share_first_phase:
        keras.utils.set_random_seed(settings.seed)
    record = results.new_record(
        settings, model, plan.strategy,
        dataset=data.name,
        title=f"{models.backbone(model).title} / {plan.strategy}" + (f" ({variant})" if variant else ""),
        variant=variant,
        epochs=plan.epochs,
        fine_tune_epochs=plan.fine_tune_epochs if plan.fine_tunes else 0,
        optimizer=plan.optimizer_label(),
        learning_rate=plan.learning_rate,
        fine_tune_learning_rate=plan.fine_tune_lr if plan.fine_tunes else None,
        skipped_files=len(data.skipped),
        split_fingerprint=data.fingerprint,
        class_names=list(data.class_names),
        device=device.name,
    )
    print(f"--- {label}: training")
    try:
        history = train.train(
            classifier, data, plan, batch_size=settings.batch_size, seed=settings.seed,
            workdir=workdir, xla=device.xla, verbose=verbose, callbacks=callbacks,
        )
    except train.TrainingDiverged as error:
        print(f"{label} FAILED: {error}")
        record.update(status="failed", error=str(error))
        results.write_record(record, path)
        return Run(record, History(), classifier)
    if share_first_phase:
        _share_first_phase(shared, workdir, "out")

    final = history.final()
    throughput_batch = 128 if device.gpus else 32  # "large" for the device
    test = evaluate.predict(classifier.model, data.test, settings.batch_size)
    val = evaluate.predict(classifier.model, data.val, settings.batch_size)
    record.update(
        train_accuracy=final.get("accuracy"),
        train_loss=final.get("loss"),
        val_accuracy=val.accuracy,
        val_loss=val.loss,
        test_accuracy=test.accuracy,
        test_loss=test.loss,
        trainable_params=finetune.trainable_params(classifier.model),
        total_params=finetune.total_params(classifier.model),
        train_seconds=history.seconds,
        inference_ms_per_image=evaluate.latency_ms(classifier.model),
        throughput_images_per_s=evaluate.throughput(classifier.model, batch_size=throughput_batch),
        throughput_batch_size=throughput_batch,
        model_size_mb=evaluate.model_size_mb(classifier.model) if measure_size else None,
        history=history.to_dict(),
        resumed_epochs=history.resumed_epochs,
        cached_features=history.cached_features,
    )
    results.write_record(record, path)
    shutil.rmtree(workdir, ignore_errors=True)
    print(f"--- {label}: test accuracy {test.accuracy:.3f}, "
          f"{record['trainable_params']:,} trainable parameters, {history.seconds:.0f} s")
    return Run(record, history, classifier, test)


def cleanup(settings: Settings) -> None:
    """Remove the shared first phases once a notebook has run every configuration."""
    shutil.rmtree(settings.record_dir / ".work", ignore_errors=True)
