"""1. The frozen phase on cached features against end to end.

The same classifier (built twice from the same seed: base frozen, pooling, Dropout, Dense),
the same generated images, batch size, optimizer and epochs, trained with `model.fit` both ways:
- end to end: `model.fit` on the images; every epoch runs the frozen base over the training
  and validation images;
- cached: `cache.split(model)` cuts it after the pooling; `cache.outputs` runs the frozen part
  once per split (in memory) and the head (Dropout, Dense) trains on the stored features.

Figures:
- steady: wall time with every epoch as fast as the run's fastest epoch after the first, i.e.
  the work outside the epochs (for the cached path: the pass over the images, compiling) plus
  epochs x the fastest epoch. This leaves out tracing (the first epoch's excess; the cached
  pass is timed again once traced, fastest of three) and what other processes on the machine
  took (they can only slow an epoch down). `speedup` = steady end to end / steady cached.
- cold: wall time of the first run of each path, tracing included (cached: from `split` on).
- agreement: the two paths' per-epoch validation losses and final weights (they train the
  same head on the same features in the same order, with the same dropout masks).
"""

from __future__ import annotations

import time

import keras
import numpy as np

from benchmarks import common
from helpers import cache, data

NAME = "cached_features"
EPOCHS = 10
BATCH = 32
# (backbone, image size, training images, validation images)
CONFIGS = (("mobilenet_v2", 160, 640, 64), ("resnet50", 224, 64, 32))
QUICK = (("mobilenet_v2", 96, 64, 32),)
PASSES = 3


def _fit(model: keras.Model, train, val, epochs: int, timer: common.EpochTimer):
    data.set_epoch(0)  # the same shuffle orders on both paths
    return model.fit(data.batches(train, BATCH, shuffle_seed=common.SEED),
                     validation_data=data.batches(val, BATCH), epochs=epochs, verbose=0,
                     callbacks=[timer])


def _cached(model: keras.Model, image_data: data.ImageData, epochs: int):
    """split, one pass over the images, compile, fit the head: (history, seconds of the pass,
    seconds in all, frozen part, head)."""
    start = time.perf_counter()
    frozen_part, head = cache.split(model)
    train_cut = cache.outputs(frozen_part, image_data.train, BATCH)
    val_cut = cache.outputs(frozen_part, image_data.val, BATCH)
    features = time.perf_counter() - start
    common.compile_model(head)
    timer = common.EpochTimer()
    history = _fit(head, train_cut, val_cut, epochs, timer)
    return history, features, time.perf_counter() - start, frozen_part, head


def measure(name: str, size: int, n_train: int, n_val: int, epochs: int) -> dict:
    image_data = common.image_data(n_train, n_val, size)

    end_to_end, _ = common.classifier(name, size, dropout=0.2, fresh=True)
    common.compile_model(end_to_end)
    e2e_timer = common.EpochTimer()
    e2e_history, e2e_cold = common.timed(
        lambda: _fit(end_to_end, image_data.train, image_data.val, epochs, e2e_timer))

    model, _ = common.classifier(name, size, dropout=0.2, fresh=True)
    history, cold_features, cached_cold, frozen_part, head = _cached(model, image_data, epochs)
    val_gap = max(abs(a - b) for a, b in zip(history.history["val_loss"],
                                             e2e_history.history["val_loss"]))
    weight_gap = max(float(np.max(np.abs(keras.ops.convert_to_numpy(a) - keras.ops.convert_to_numpy(b))))
                     for a, b in zip(model.trainable_weights, end_to_end.trainable_weights))

    # Warm: the pass over the images again with the traced function (the fastest of
    # PASSES, as end to end counts its fastest epoch), then the head's epochs (twice).
    passes = []
    for _ in range(PASSES):
        start = time.perf_counter()
        train_cut = cache.outputs(frozen_part, image_data.train, BATCH)
        val_cut = cache.outputs(frozen_part, image_data.val, BATCH)
        passes.append(time.perf_counter() - start)
    heads = []
    for _ in range(2):
        start = time.perf_counter()
        common.compile_model(head)  # a fresh optimizer; the speed does not depend on the weights
        timer = common.EpochTimer()
        _fit(head, train_cut, val_cut, epochs, timer)
        heads.append((timer.undisturbed(time.perf_counter() - start), timer))
    features = min(passes)
    head_seconds, timer = min(heads, key=lambda h: h[0])

    e2e_steady = e2e_timer.undisturbed(e2e_cold)
    cached_steady = features + head_seconds
    return {
        "model": name, "image_size": size, "train_images": n_train, "val_images": n_val,
        "epochs": epochs, "batch_size": BATCH,
        "end_to_end_seconds": e2e_steady,
        "end_to_end_epoch_seconds": e2e_timer.fastest(),
        "end_to_end_all_epoch_seconds": e2e_timer.seconds,
        "cached_seconds": cached_steady,
        "cached_feature_seconds": features,
        "cached_head_seconds": head_seconds,
        "cached_head_epoch_seconds": timer.fastest(),
        "cached_all_head_epoch_seconds": timer.seconds,
        "speedup": e2e_steady / cached_steady,
        "end_to_end_cold_seconds": e2e_cold,
        "cached_cold_seconds": cached_cold,
        "cached_cold_feature_seconds": cold_features,
        "speedup_cold": e2e_cold / cached_cold,
        "max_val_loss_difference": val_gap,
        "max_weight_difference": weight_gap,
        "cached_all_feature_seconds": passes,
        "load_average": common.load_average(),
    }


def run(quick: bool = False) -> dict:
    started, load = time.perf_counter(), common.load_average()
    common.device()
    epochs = 3 if quick else EPOCHS
    rows = [measure(*config, epochs) for config in (QUICK if quick else CONFIGS)]
    common.table(
        f"1. Frozen phase: cached features against end to end ({epochs} epochs, batch {BATCH}, "
        "model.fit both ways)",
        [("model", "model", ""), ("image_size", "size", "d"), ("train_images", "train", "d"),
         ("val_images", "val", "d"), ("end_to_end_epoch_seconds", "e2e s/epoch", ".2f"),
         ("end_to_end_seconds", "e2e s", ".1f"), ("cached_feature_seconds", "features s", ".2f"),
         ("cached_head_seconds", "head s", ".2f"),
         ("cached_seconds", "cached s", ".2f"), ("speedup", "speedup", ".1f"),
         ("end_to_end_cold_seconds", "e2e cold s", ".1f"),
         ("cached_cold_seconds", "cached cold s", ".1f"), ("speedup_cold", "cold", ".1f"),
         ("max_val_loss_difference", "max |dval_loss|", ".1e"), ("load_average", "load", ".1f")],
        rows,
        ["e2e s: model.fit with every epoch as fast as its fastest after the first (no tracing, "
         "no interference); cached s = features s + head s; speedup = e2e s / cached s",
         f"features s: cache.outputs over the training and validation images, traced already, "
         f"fastest of {PASSES}; head s: compile and fit of the head, every epoch as fast as its "
         "fastest, faster of 2",
         "cold: the first run of each path, all tracing included (cached: split, the pass, "
         "compile, fit)",
         "max |dval_loss|: largest per-epoch validation-loss difference between the two paths"],
    )
    report = {"epochs": epochs, "batch_size": BATCH, "rows": rows,
              "speedup": {f"{r['model']}@{r['image_size']}": r["speedup"] for r in rows},
              "included": "speedup: each epoch at the run's fastest later epoch, the cached pass "
                          "traced already (tracing and interference left out); cold: everything"}
    common.write_report(NAME, report, started, load)
    return report


if __name__ == "__main__":
    common.main(run)
