"""3. Training throughput: the helpers' fit against a bare `model.fit`.

The same classifier (built twice from the same seed, with the same part of the base
trainable: all of MobileNetV2; ResNet50's last two residual blocks, as notebook 03 fine-tunes),
the same generated images in memory, batch size, optimizer and epochs, `model.fit` both ways:
- helpers: the notebooks' way: the pipeline from `helpers.data.batches`, the callbacks of
  `helpers.experiment.Run.callbacks` (NaN check, CSV log, timer, phase record, per-epoch backup);
- bare: `model.fit(x, y, validation_data=...)` on the numpy arrays, no callbacks.

images/s = training images / the training part of an epoch (from its start to the start of
its validation: the input pipeline and the train steps), fastest epoch after the first (the
first also traces the train and test steps; other processes can only slow an epoch down).
The rest of an epoch (validation and callbacks: for the helpers also the CSV log and the
per-epoch backup of the weights, which is what makes an interrupted run resumable) is shown
apart, in seconds, as is the first epoch.
"""

from __future__ import annotations

import time

import numpy as np

from benchmarks import common
from helpers import config, data, experiment

NAME = "training"
BATCH = 32
LEARNING_RATE = 1e-4
# (backbone, image size, what of the base trains, training images, validation images, epochs)
CONFIGS = (("mobilenet_v2", 160, "all", 128, 32, 3), ("resnet50", 224, "blocks:2", 64, 32, 3))
QUICK = (("mobilenet_v2", 96, "all", 64, 32, 3),)


def _rest(timer: common.EpochTimer) -> float:
    """Median seconds of an epoch after its training part (validation, callbacks), after the first."""
    return common.median([e - t for e, t in zip(timer.seconds[1:], timer.train_seconds[1:])])


def measure(name: str, size: int, strategy: str, n_train: int, n_val: int, epochs: int) -> dict:
    image_data = common.image_data(n_train, n_val, size)
    settings = config.resolve("03_tf_flowers_unfreezing_strategies", profile="smoke", redo=True,
                              results_dir=common.SCRATCH / "results")
    run = experiment.Run(settings, name, strategy, variant="bench", save=False)  # redo: no resuming

    ours, _ = common.classifier(name, size, strategy=strategy, fresh=True)
    common.compile_model(ours, LEARNING_RATE)
    ours_timer = common.EpochTimer()
    _, ours_total = common.timed(lambda: ours.fit(
        data.batches(image_data.train, BATCH, shuffle_seed=common.SEED),
        validation_data=data.batches(image_data.val, BATCH), epochs=epochs, verbose=0,
        callbacks=run.callbacks("fine-tune") + [ours_timer]))
    experiment.cleanup(settings)

    bare, _ = common.classifier(name, size, strategy=strategy, fresh=True)
    common.compile_model(bare, LEARNING_RATE)
    x, y = common.arrays(image_data.train)
    x_val, y_val = common.arrays(image_data.val)
    bare_timer = common.EpochTimer()
    _, bare_total = common.timed(lambda: bare.fit(
        x.astype(np.float32), y, batch_size=BATCH, epochs=epochs, shuffle=True,
        validation_data=(x_val.astype(np.float32), y_val), verbose=0, callbacks=[bare_timer]))
    row = {
        "model": name, "image_size": size, "trains": strategy, "train_images": n_train,
        "val_images": n_val, "epochs": epochs, "batch_size": BATCH,
        "ours_images_per_s": n_train / min(ours_timer.train_seconds[1:]),
        "bare_images_per_s": n_train / min(bare_timer.train_seconds[1:]),
        "ours_rest_of_epoch_seconds": _rest(ours_timer), "bare_rest_of_epoch_seconds": _rest(bare_timer),
        "ours_epoch_seconds": ours_timer.seconds, "bare_epoch_seconds": bare_timer.seconds,
        "ours_train_seconds": ours_timer.train_seconds,
        "bare_train_seconds": bare_timer.train_seconds,
        "ours_first_epoch_seconds": ours_timer.seconds[0],
        "bare_first_epoch_seconds": bare_timer.seconds[0],
        "ours_total_seconds": ours_total, "bare_total_seconds": bare_total,
    }
    row["ours_over_bare"] = row["ours_images_per_s"] / row["bare_images_per_s"]
    return row


def run(quick: bool = False) -> dict:
    started, load = time.perf_counter(), common.load_average()
    common.device()
    rows = [measure(*config) for config in (QUICK if quick else CONFIGS)]
    common.table(
        f"3. Training throughput (batch {BATCH}, Adam): model.fit the notebooks' way against a bare "
        "model.fit",
        [("model", "model", ""), ("image_size", "size", "d"), ("trains", "base trains", ""),
         ("train_images", "train", "d"),
         ("val_images", "val", "d"), ("epochs", "epochs", "d"),
         ("ours_images_per_s", "ours img/s", ".1f"), ("bare_images_per_s", "bare img/s", ".1f"),
         ("ours_over_bare", "ours/bare", ".2f"),
         ("ours_rest_of_epoch_seconds", "ours rest s", ".2f"),
         ("bare_rest_of_epoch_seconds", "bare rest s", ".2f"),
         ("ours_first_epoch_seconds", "ours 1st epoch s", ".1f"),
         ("bare_first_epoch_seconds", "bare 1st epoch s", ".1f")],
        rows,
        ["img/s: training images / the training part of the fastest epoch after the first "
         "(input pipeline + train steps)",
         "rest s: the rest of an epoch (validation pass and callbacks; ours also writes the CSV "
         "log and backs the weights up), median after the first",
         "1st epoch: includes tracing the train and test steps"],
    )
    report = {"rows": rows,
              "included": "img/s: training part of the fastest epoch after the first; "
                          "rest: validation and callbacks"}
    common.write_report(NAME, report, started, load)
    return report


if __name__ == "__main__":
    common.main(run)
