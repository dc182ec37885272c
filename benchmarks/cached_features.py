"""1. The frozen phase on cached features against end to end.

Same classifier (built twice from the same seed), same generated data, batch size and
epochs, both through `helpers.train.train`: once with `cached_features=False` (every
epoch runs the frozen base over the training and validation images), once on the
fast path (the base runs once per split, the head trains on the stored features).

Figures:
- steady: wall time of `train()` with every epoch as fast as the run's fastest epoch after
  the first, i.e. the work outside the epochs (for the cached path: extracting the
  features, compiling, saving the weights) plus epochs x the fastest epoch. This leaves
  out the first epoch's tracing and what other processes on the machine took (they can only
  slow an epoch down). End to end: one run. Cached: the faster of two further runs on the
  same classifier (its feature function is compiled once per classifier, so they trace only
  the head's steps, which the estimate leaves out as for end to end).
  `speedup` = steady end to end / steady cached; `speedup_measured` uses the plain wall
  times minus the first epoch's excess over the fastest later epoch instead.
- cold: wall time of the first `train()` call of each path, tracing included.
- agreement: the two paths' per-epoch validation losses and final head weights (they
  train the same head on the same features in the same order).
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from benchmarks import common
from helpers import train

NAME = "cached_features"
EPOCHS = 10
BATCH = 32
# (backbone, image size, training images, validation images)
CONFIGS = (("mobilenet_v2", 160, 640, 64), ("resnet50", 224, 64, 32))
QUICK = (("mobilenet_v2", 96, 64, 32),)


def _run(classifier, image_data, plan):
    timer = common.EpochTimer()
    history, seconds = common.timed(lambda: train.train(
        classifier, image_data, plan, batch_size=BATCH, seed=common.SEED, verbose=0,
        xla=common.device().xla, callbacks=[timer]))
    return history, seconds, timer


def measure(name: str, size: int, n_train: int, n_val: int, epochs: int) -> dict:
    image_data = common.image_data(n_train, n_val, size)
    plan = train.TrainPlan(optimizer="adam", learning_rate=1e-3, epochs=epochs,
                           cached_features=False)

    end_to_end = common.classifier(name, size, fresh=True, dropout=0.2)
    e2e_history, e2e_cold, e2e_timer = _run(end_to_end, image_data, plan)
    assert not e2e_history.cached_features

    cached = common.classifier(name, size, fresh=True, dropout=0.2)
    fast = replace(plan, cached_features=True)
    cached_history, cached_cold, _ = _run(cached, image_data, fast)
    assert cached_history.cached_features
    weight_gap = max(float(np.max(np.abs(a - b))) for a, b in
                     zip(end_to_end.head.get_weights(), cached.head.get_weights()))
    warm = [_run(cached, image_data, fast)[1:] for _ in range(2)]
    cached_total, cached_timer = min(warm, key=lambda run: run[1].undisturbed(run[0]))

    e2e_steady = e2e_timer.undisturbed(e2e_cold)
    cached_steady = cached_timer.undisturbed(cached_total)
    head_epochs = len(cached_timer.seconds) * cached_timer.fastest()
    val_gap = max(abs(a["val_loss"] - b["val_loss"])
                  for a, b in zip(e2e_history.rows, cached_history.rows))
    e2e_measured = e2e_cold - e2e_timer.tracing()
    cached_measured = cached_total - cached_timer.tracing()
    return {
        "model": name, "image_size": size, "train_images": n_train, "val_images": n_val,
        "epochs": epochs, "batch_size": BATCH,
        "end_to_end_seconds": e2e_steady,
        "end_to_end_epoch_seconds": e2e_timer.fastest(),
        "end_to_end_all_epoch_seconds": e2e_timer.seconds,
        "cached_seconds": cached_steady,
        "cached_feature_seconds": cached_steady - head_epochs,
        "cached_head_epoch_seconds": cached_timer.fastest(),
        "cached_all_head_epoch_seconds": cached_timer.seconds,
        "speedup": e2e_steady / cached_steady,
        "end_to_end_measured_seconds": e2e_measured,
        "cached_measured_seconds": cached_measured,
        "speedup_measured": e2e_measured / cached_measured,
        "end_to_end_cold_seconds": e2e_cold,
        "cached_cold_seconds": cached_cold,
        "speedup_cold": e2e_cold / cached_cold,
        "max_val_loss_difference": val_gap,
        "max_head_weight_difference": weight_gap,
    }


def run(quick: bool = False) -> dict:
    started, load = time.perf_counter(), common.load_average()
    common.device()
    epochs = 3 if quick else EPOCHS
    rows = [measure(*config, epochs) for config in (QUICK if quick else CONFIGS)]
    common.table(
        f"1. Frozen phase: cached features against end to end ({epochs} epochs, batch {BATCH}, "
        "helpers.train.train both ways)",
        [("model", "model", ""), ("image_size", "size", "d"), ("train_images", "train", "d"),
         ("val_images", "val", "d"), ("end_to_end_epoch_seconds", "e2e s/epoch", ".2f"),
         ("end_to_end_seconds", "e2e s", ".1f"), ("cached_feature_seconds", "features s", ".1f"),
         ("cached_seconds", "cached s", ".1f"), ("speedup", "speedup", ".1f"),
         ("speedup_measured", "measured", ".1f"),
         ("end_to_end_cold_seconds", "e2e cold s", ".1f"),
         ("cached_cold_seconds", "cached cold s", ".1f"), ("speedup_cold", "cold", ".1f"),
         ("max_val_loss_difference", "max |dval_loss|", ".1e")],
        rows,
        ["e2e s, cached s: train() with every epoch as fast as its fastest after the first "
         "(no tracing, no interference); speedup = e2e s / cached s",
         "e2e s/epoch: that fastest epoch; features s: the cached run minus its head epochs "
         "(one pass of the base over train and validation images, compiling, saving the weights)",
         "measured: plain wall times minus the first epoch's excess; cold: the first train() call "
         "of each path, all tracing included",
         "max |dval_loss|: largest per-epoch validation-loss difference between the two paths"],
    )
    report = {"epochs": epochs, "batch_size": BATCH, "rows": rows,
              "speedup": {f"{r['model']}@{r['image_size']}": r["speedup"] for r in rows},
              "included": "speedup: train() with each epoch at the run's fastest later epoch "
                          "(tracing and interference left out); cold: everything"}
    common.write_report(NAME, report, started, load)
    return report


if __name__ == "__main__":
    common.main(run)
